"""A seeded, streaming generator of OneRoster districts (TESTING.md sizes S, M, L, XL).

Every value is a pure function of (seed, epoch, index), so nothing is held in
memory: rows are produced one at a time, a file of any size is written in constant
memory, and the same district can be replayed in CSV 1.1, CSV 1.2 or as REST pages.

Shape: schools of up to 500 students; six periods a day; sections of about 25;
one teacher per 20 students; one administrator per school; optionally one parent
per student (linked both ways through agentSourcedIds). That gives about 6.24
enrollments per student (2,500 students -> ~15.6K, 50,000 -> ~312K).

Epochs model what happens between two nightly exports: at each epoch after 0 a
seeded share of students change name, withdraw, or move section in one period,
and (optionally) some are re-keyed by the SIS (new sourcedId, same state id).
``rows(entity, mode="delta")`` yields exactly what changed since the epoch before.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIZES = {"S": 2_500, "M": 10_000, "L": 50_000, "XL": 200_000}
STUDENTS_PER_SCHOOL = 500
CLASS_SIZE = 25
STUDENTS_PER_TEACHER = 20
PERIODS = 6
SUBJECTS = ("Mathematics", "English", "Science", "History", "Art", "Physical Education")
SUBJECT_CODES = ("MATH", "ENG", "SCI", "HIST", "ART", "PE")
GIVEN = (
    "Ava",
    "Liam",
    "Maya",
    "Noah",
    "Zoe",
    "Ethan",
    "Isla",
    "Mateo",
    "Aria",
    "Leo",
    "Nora",
    "Kai",
    "Luna",
    "Omar",
    "Ivy",
    "Elias",
    "Mila",
    "Ravi",
    "Sofia",
    "Theo",
    "Amara",
    "Jonah",
    "Priya",
    "Yusuf",
)
FAMILY = (
    "Nguyen",
    "Garcia",
    "Okafor",
    "Smith",
    "Kowalski",
    "Haddad",
    "Johnson",
    "Tanaka",
    "Silva",
    "Müller",
    "O'Brien",
    "Patel",
    "Rossi",
    "Kim",
    "Novak",
    "Adeyemi",
    "Larsen",
    "Chen",
    "Dubois",
    "Fernández",
    "Cohen",
    "Ivanova",
    "Mensah",
    "Walker",
)
ENTITY_ENDPOINTS = {
    "org": "orgs",
    "academicSession": "academicSessions",
    "course": "courses",
    "class": "classes",
    "user": "users",
    "enrollment": "enrollments",
}
_MASK = (1 << 64) - 1
YEAR = "as-2026"
SEMESTERS = ("as-2026-s1", "as-2026-s2")
BASE_TIME = dt.datetime(2026, 8, 1, 2, 0, tzinfo=dt.UTC)


def mix(*parts: int) -> int:
    """splitmix64 folded over the parts: fast, seedable, good enough spread."""
    x = 0x9E3779B97F4A7C15
    for part in parts:
        x = (x ^ (part & _MASK)) & _MASK
        x = (x + 0x9E3779B97F4A7C15) & _MASK
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        x = z ^ (z >> 31)
    return x


@dataclass(frozen=True)
class School:
    index: int
    first_student: int
    n_students: int
    sections: int  # per period
    first_class: int
    first_teacher: int
    n_teachers: int

    @property
    def sid(self) -> str:
        return f"sch-{self.index}"


def epoch_time(epoch: int) -> str:
    return (BASE_TIME + dt.timedelta(days=epoch)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class District:
    """One district at one epoch. ``students`` may be a size name or a number."""

    def __init__(
        self,
        students: int | str,
        *,
        seed: int = 1,
        epoch: int = 0,
        guardians: bool = True,
        change_rate: float = 0.01,
        rekey_rate: float = 0.0,
    ) -> None:
        self.n_students = SIZES[students] if isinstance(students, str) else int(students)
        if self.n_students < 1:
            raise ValueError("a district needs at least one student")
        self.seed = seed
        self.epoch = epoch
        self.guardians = guardians
        # Per 10,000: half the change rate renames, a fifth withdraws, half moves
        # a section; together about change_rate of all rows per epoch.
        self._rename = int(change_rate * 10_000 / 2)
        self._withdraw = int(change_rate * 10_000 / 5)
        self._move = int(change_rate * 10_000 / 2)
        self._rekey = int(rekey_rate * 10_000)
        self.schools: list[School] = []
        first_class = first_teacher = 0
        remaining = self.n_students
        start = 0
        index = 0
        while remaining > 0:
            n = min(STUDENTS_PER_SCHOOL, remaining)
            sections = max(1, -(-n // CLASS_SIZE))
            teachers = max(1, -(-n // STUDENTS_PER_TEACHER))
            self.schools.append(School(index, start, n, sections, first_class, first_teacher, teachers))
            first_class += sections * PERIODS
            first_teacher += teachers
            start += n
            remaining -= n
            index += 1
        self.n_classes = first_class
        self.n_teachers = first_teacher

    def at(self, epoch: int) -> District:
        other = District.__new__(District)
        other.__dict__.update(self.__dict__)
        other.epoch = epoch
        return other

    # --- per-student state at an epoch -----------------------------------------
    def _hit(self, kind: int, rate: int, epoch: int, *key: int) -> bool:
        return rate > 0 and mix(self.seed, epoch, kind, *key) % 10_000 < rate

    def _count(self, kind: int, rate: int, upto: int, *key: int) -> int:
        return sum(1 for k in range(1, upto + 1) if self._hit(kind, rate, k, *key))

    def withdrawn(self, i: int, epoch: int | None = None) -> bool:
        e = self.epoch if epoch is None else epoch
        return any(self._hit(2, self._withdraw, k, i) for k in range(1, e + 1))

    def student_sid(self, i: int, epoch: int | None = None) -> str:
        e = self.epoch if epoch is None else epoch
        n = self._count(4, self._rekey, e, i)
        return f"stu-{i}" if n == 0 else f"stu-{i}-r{n}"

    def _section(self, school: School, i: int, p: int, epoch: int) -> int:
        local = i - school.first_student
        shift = self._count(3, self._move, epoch, i, p)
        return (local + p * 7 + shift) % school.sections

    def school_of(self, i: int) -> School:
        return self.schools[min(i // STUDENTS_PER_SCHOOL, len(self.schools) - 1)]

    @staticmethod
    def class_sid(school: School, p: int, s: int) -> str:
        return f"cls-{school.index}-{p}-{s}"

    # --- rows per entity (dicts keyed by OneRoster 1.1 CSV column names) ---------
    def rows(self, entity: str, mode: str = "bulk") -> Iterator[dict[str, Any]]:
        if mode not in ("bulk", "delta"):
            raise ValueError(mode)
        delta = mode == "delta"
        if delta and self.epoch == 0:
            return iter(())
        return {
            "org": self._orgs,
            "academicSession": self._sessions,
            "course": self._courses,
            "class": self._classes,
            "user": self._users,
            "enrollment": self._enrollments,
        }[entity](delta)

    def _stamp(self, row: dict[str, Any], status: str, epoch: int, delta: bool) -> dict[str, Any]:
        row["status"] = status if delta else ""
        row["dateLastModified"] = epoch_time(epoch) if delta else ""
        return row

    def _orgs(self, delta: bool) -> Iterator[dict[str, Any]]:
        if delta:
            return
        yield self._stamp(
            {
                "sourcedId": "org-district",
                "name": "Seeded Unified School District",
                "type": "district",
                "identifier": "D-1",
                "parentSourcedId": "",
            },
            "active",
            0,
            delta,
        )
        for school in self.schools:
            yield self._stamp(
                {
                    "sourcedId": school.sid,
                    "name": f"School {school.index + 1}",
                    "type": "school",
                    "identifier": f"SCH{school.index + 1:04d}",
                    "parentSourcedId": "org-district",
                },
                "active",
                0,
                delta,
            )

    def _sessions(self, delta: bool) -> Iterator[dict[str, Any]]:
        if delta:
            return
        yield self._stamp(
            {
                "sourcedId": YEAR,
                "title": "2026-2027",
                "type": "schoolYear",
                "startDate": "2026-08-17",
                "endDate": "2027-06-11",
                "parentSourcedId": "",
                "schoolYear": "2027",
            },
            "active",
            0,
            delta,
        )
        for n, (start, end) in enumerate((("2026-08-17", "2027-01-15"), ("2027-01-19", "2027-06-11"))):
            yield self._stamp(
                {
                    "sourcedId": SEMESTERS[n],
                    "title": f"Semester {n + 1}",
                    "type": "semester",
                    "startDate": start,
                    "endDate": end,
                    "parentSourcedId": YEAR,
                    "schoolYear": "2027",
                },
                "active",
                0,
                delta,
            )

    def _courses(self, delta: bool) -> Iterator[dict[str, Any]]:
        if delta:
            return
        for school in self.schools:
            for p in range(PERIODS):
                yield self._stamp(
                    {
                        "sourcedId": f"crs-{school.index}-{p}",
                        "schoolYearSourcedId": YEAR,
                        "title": SUBJECTS[p],
                        "courseCode": f"{SUBJECT_CODES[p]}-{school.index + 1}",
                        "grades": "09",
                        "orgSourcedId": school.sid,
                        "subjects": SUBJECTS[p],
                        "subjectCodes": "",
                    },
                    "active",
                    0,
                    delta,
                )

    def _classes(self, delta: bool) -> Iterator[dict[str, Any]]:
        if delta:
            return
        for school in self.schools:
            for p in range(PERIODS):
                terms = ",".join(SEMESTERS) if p < 3 else YEAR
                for s in range(school.sections):
                    yield self._stamp(
                        {
                            "sourcedId": self.class_sid(school, p, s),
                            "title": f"{SUBJECTS[p]} - Section {s + 1}",
                            "grades": "09",
                            "courseSourcedId": f"crs-{school.index}-{p}",
                            "classCode": f"{SUBJECT_CODES[p]}-{school.index + 1}-{s + 1}",
                            "classType": "scheduled",
                            "location": f"Room {100 + s}",
                            "schoolSourcedId": school.sid,
                            "termSourcedIds": terms,
                            "subjects": SUBJECTS[p],
                            "subjectCodes": "",
                            "periods": str(p + 1),
                        },
                        "active",
                        0,
                        delta,
                    )

    def _teacher_of(self, school: School, p: int, s: int) -> str:
        return f"tch-{school.first_teacher + (p * school.sections + s) % school.n_teachers}"

    def _user_row(self, **values: Any) -> dict[str, Any]:
        row = {
            "sourcedId": "",
            "status": "",
            "dateLastModified": "",
            "enabledUser": "true",
            "orgSourcedIds": "",
            "role": "",
            "username": "",
            "userIds": "",
            "givenName": "",
            "familyName": "",
            "middleName": "",
            "identifier": "",
            "email": "",
            "sms": "",
            "phone": "",
            "agentSourcedIds": "",
            "grades": "",
            "password": "",
        }
        row.update(values)
        return row

    def _student_row(self, i: int, epoch: int) -> dict[str, Any]:
        sid = self.student_sid(i, epoch)
        given = GIVEN[mix(self.seed, 5, i) % len(GIVEN)]
        family = FAMILY[mix(self.seed, 6, i) % len(FAMILY)]
        version = self._count(1, self._rename, epoch, i)
        if version:
            family = f"{family}-{version}"
        return self._user_row(
            sourcedId=sid,
            orgSourcedIds=self.school_of(i).sid,
            role="student",
            username=f"s{i}",
            givenName=given,
            familyName=family,
            identifier=f"S{100000 + i}",
            email=f"s{i}@students.seeded.example",
            grades="09",
            agentSourcedIds=f"gdn-{i}" if self.guardians else "",
        )

    def _guardian_row(self, i: int, epoch: int) -> dict[str, Any]:
        family = FAMILY[mix(self.seed, 6, i) % len(FAMILY)]
        return self._user_row(
            sourcedId=f"gdn-{i}",
            orgSourcedIds=self.school_of(i).sid,
            role="parent",
            username=f"g{i}",
            givenName=GIVEN[mix(self.seed, 7, i) % len(GIVEN)],
            familyName=family,
            identifier=f"G{100000 + i}",
            email=f"g{i}@family.seeded.example",
            agentSourcedIds=self.student_sid(i, epoch),
        )

    def _users(self, delta: bool) -> Iterator[dict[str, Any]]:
        e = self.epoch
        if not delta:
            for school in self.schools:
                yield self._user_row(
                    sourcedId=f"adm-{school.index}",
                    orgSourcedIds=school.sid,
                    role="administrator",
                    username=f"a{school.index}",
                    givenName="Pat",
                    familyName=f"Principal{school.index + 1}",
                    identifier=f"A{school.index + 1:04d}",
                    email=f"a{school.index}@staff.seeded.example",
                )
                for t in range(school.first_teacher, school.first_teacher + school.n_teachers):
                    yield self._user_row(
                        sourcedId=f"tch-{t}",
                        orgSourcedIds=school.sid,
                        role="teacher",
                        username=f"t{t}",
                        givenName=GIVEN[mix(self.seed, 8, t) % len(GIVEN)],
                        familyName=FAMILY[mix(self.seed, 9, t) % len(FAMILY)],
                        identifier=f"T{10000 + t}",
                        email=f"t{t}@staff.seeded.example",
                    )
        for i in range(self.n_students):
            if not delta:
                if self.withdrawn(i):
                    continue
                yield self._student_row(i, e)
                if self.guardians:
                    yield self._guardian_row(i, e)
                continue
            if self.withdrawn(i, e - 1):
                continue
            old = self._student_row(i, e - 1)
            if self.withdrawn(i, e):
                yield self._stamp(old, "tobedeleted", e, True)
                if self.guardians:
                    yield self._stamp(self._guardian_row(i, e - 1), "tobedeleted", e, True)
                continue
            new = self._student_row(i, e)
            if new["sourcedId"] != old["sourcedId"]:
                yield self._stamp(old, "tobedeleted", e, True)
            if new != old:
                yield self._stamp(new, "active", e, True)
                if self.guardians and new["sourcedId"] != old["sourcedId"]:
                    yield self._stamp(self._guardian_row(i, e), "active", e, True)

    def _enrollment_row(self, sid: str, user: str, klass: str, school: School, role: str) -> dict[str, Any]:
        return {
            "sourcedId": sid,
            "status": "",
            "dateLastModified": "",
            "classSourcedId": klass,
            "schoolSourcedId": school.sid,
            "userSourcedId": user,
            "role": role,
            "primary": "true" if role == "teacher" else "false",
            "beginDate": "2026-08-17",
            "endDate": "",
        }

    def _student_enrollment(self, i: int, p: int, epoch: int) -> dict[str, Any]:
        school = self.school_of(i)
        klass = self.class_sid(school, p, self._section(school, i, p, epoch))
        user = self.student_sid(i, epoch)
        return self._enrollment_row(f"enr-{user}-{klass}", user, klass, school, "student")

    def _enrollments(self, delta: bool) -> Iterator[dict[str, Any]]:
        e = self.epoch
        if not delta:
            for school in self.schools:
                for p in range(PERIODS):
                    for s in range(school.sections):
                        klass = self.class_sid(school, p, s)
                        teacher = self._teacher_of(school, p, s)
                        yield self._enrollment_row(
                            f"enr-{teacher}-{klass}", teacher, klass, school, "teacher"
                        )
            for i in range(self.n_students):
                if self.withdrawn(i):
                    continue
                for p in range(PERIODS):
                    yield self._student_enrollment(i, p, e)
            return
        for i in range(self.n_students):
            if self.withdrawn(i, e - 1):
                continue
            gone = self.withdrawn(i, e)
            for p in range(PERIODS):
                old = self._student_enrollment(i, p, e - 1)
                if gone:
                    yield self._stamp(old, "tobedeleted", e, True)
                    continue
                new = self._student_enrollment(i, p, e)
                if new["sourcedId"] != old["sourcedId"]:
                    yield self._stamp(old, "tobedeleted", e, True)
                    yield self._stamp(new, "active", e, True)

    # --- writing CSV -------------------------------------------------------------
    def write_csv(
        self, target: str | Path, *, version: str = "1.1", mode: str = "bulk", as_zip: bool = False
    ) -> Path:
        """Write a OneRoster CSV package (a folder, or a zip when ``as_zip``)."""
        from oneroster.protocol.csv_source import FILES, MANIFEST_KEYS, headers_for

        target = Path(target)
        headers = headers_for(version)
        entities = ["org", "academicSession", "course", "class", "user", "enrollment"]
        if version == "1.2":
            entities.insert(5, "role")
        manifest = [("manifest.version", "1.0"), ("oneroster.version", version)]
        for entity in ("org", "academicSession", "course", "class", "user", "role", "enrollment"):
            if entity == "role" and version == "1.1":
                continue
            manifest.append((MANIFEST_KEYS[entity], mode))
        for other in (
            "categories",
            "classResources",
            "courseResources",
            "demographics",
            "lineItems",
            "resources",
            "results",
        ):
            manifest.append((f"file.{other}", "absent"))
        manifest += [("source.systemName", "Seeded SIS"), ("source.systemCode", f"seed-{self.seed}")]

        def files() -> Iterator[tuple[str, Iterator[list[str]]]]:
            yield "manifest.csv", iter([["propertyName", "value"], *[list(m) for m in manifest]])
            for entity in entities:
                yield FILES[entity], self._csv_rows(entity, version, mode, headers[entity])

        if as_zip:
            target.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for name, rows in files():
                    with (
                        archive.open(name, "w") as raw,
                        io.TextIOWrapper(raw, encoding="utf-8", newline="") as out,
                    ):
                        csv.writer(out).writerows(rows)
        else:
            target.mkdir(parents=True, exist_ok=True)
            for name, rows in files():
                with open(target / name, "w", encoding="utf-8", newline="") as handle:
                    csv.writer(handle).writerows(rows)
        return target

    def _csv_rows(self, entity: str, version: str, mode: str, header: tuple[str, ...]) -> Iterator[list[str]]:
        yield list(header)
        if entity == "role":
            for user in self.rows("user", mode):
                for org in filter(None, user["orgSourcedIds"].split(",")):
                    role = {
                        "sourcedId": f"rol-{user['sourcedId']}-{org}",
                        "status": user["status"],
                        "dateLastModified": user["dateLastModified"],
                        "userSourcedId": user["sourcedId"],
                        "roleType": "primary",
                        "role": user["role"],
                        "beginDate": "",
                        "endDate": "",
                        "orgSourcedId": org,
                        "userProfileSourcedId": "",
                    }
                    yield [role[h] for h in header]
            return
        for row in self.rows(entity, mode):
            if entity == "user" and version == "1.2":
                row = {**row, "primaryOrgSourcedId": row["orgSourcedIds"].split(",")[0]}
            yield [str(row.get(h, "")) for h in header]

    # --- REST rendering ------------------------------------------------------------
    def rest_objects(
        self, entity: str, version: str, *, since_epoch: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """The same data as OneRoster REST JSON objects. With ``since_epoch``, only
        what changed after that epoch (what ``filter=dateLastModified>...`` selects),
        including tobedeleted rows; each sourcedId once, in its latest state."""
        if since_epoch is None:
            for row in self.rows(entity, "bulk"):
                yield to_rest(entity, {**row, "status": "active", "dateLastModified": epoch_time(0)}, version)
            return
        latest: dict[str, dict[str, Any]] = {}
        for k in range(since_epoch + 1, self.epoch + 1):
            for row in self.at(k).rows(entity, "delta"):
                latest.pop(row["sourcedId"], None)
                latest[row["sourcedId"]] = row
        for row in latest.values():
            yield to_rest(entity, row, version)


def _ref(kind: str, sid: str) -> dict[str, str] | None:
    if not sid:
        return None
    return {"href": f"/{kind}s/{sid}", "sourcedId": sid, "type": kind}


def to_rest(entity: str, row: dict[str, Any], version: str) -> dict[str, Any]:
    """One generator row as a OneRoster REST object (1.1 or 1.2 shape)."""
    base: dict[str, Any] = {
        "sourcedId": row["sourcedId"],
        "status": row["status"] or "active",
        "dateLastModified": row["dateLastModified"],
    }
    if entity == "org":
        base.update(name=row["name"], type=row["type"], identifier=row["identifier"])
        base["parent"] = _ref("org", row["parentSourcedId"])
    elif entity == "academicSession":
        base.update(title=row["title"], type=row["type"], startDate=row["startDate"], endDate=row["endDate"])
        base["parent"] = _ref("academicSession", row["parentSourcedId"])
        base["schoolYear"] = row["schoolYear"]
    elif entity == "course":
        base.update(title=row["title"], courseCode=row["courseCode"], grades=[row["grades"]])
        base["org"] = _ref("org", row["orgSourcedId"])
        base["schoolYear"] = _ref("academicSession", row["schoolYearSourcedId"])
    elif entity == "class":
        base.update(title=row["title"], classCode=row["classCode"], classType=row["classType"])
        base["course"] = _ref("course", row["courseSourcedId"])
        base["school"] = _ref("org", row["schoolSourcedId"])
        base["terms"] = [_ref("academicSession", t) for t in row["termSourcedIds"].split(",") if t]
    elif entity == "user":
        orgs = [o for o in row["orgSourcedIds"].split(",") if o]
        agents = [a for a in row["agentSourcedIds"].split(",") if a]
        base.update(
            username=row["username"],
            givenName=row["givenName"],
            familyName=row["familyName"],
            middleName=row["middleName"],
            identifier=row["identifier"],
            email=row["email"],
            agents=[_ref("user", a) for a in agents],
        )
        if version == "1.2":
            base["enabledUser"] = True
            base["roles"] = [
                {"roleType": "primary", "role": row["role"], "org": _ref("org", o)} for o in orgs
            ]
            base["primaryOrg"] = _ref("org", orgs[0]) if orgs else None
        else:
            base["enabledUser"] = "true"
            base["role"] = row["role"]
            base["orgs"] = [_ref("org", o) for o in orgs]
    elif entity == "enrollment":
        base.update(
            role=row["role"], primary=row["primary"], beginDate=row["beginDate"], endDate=row["endDate"]
        )
        base["user"] = _ref("user", row["userSourcedId"])
        base["class"] = _ref("class", row["classSourcedId"])
        base["school"] = _ref("org", row["schoolSourcedId"])
    return base
