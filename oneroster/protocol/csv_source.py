"""Reading a OneRoster CSV package (1.1 or 1.2; a folder or a zip), one row at a time.

Nothing is loaded whole: each file is streamed through ``csv.reader`` and turned
into ``Record`` values, so a district of any size reads in constant memory.
Headers are matched leniently (case, spaces, a UTF-8 BOM, unknown extra columns),
because SIS exports differ in exactly those ways; a missing required column is
an error on line 1 of that file.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from oneroster.protocol.records import (
    ACTIVE,
    ENTITIES,
    Record,
    RosterProtocolError,
    RowError,
    check_record,
    check_user_role,
    derived_user_records,
    normalise_status,
    parse_bool,
    parse_date,
    split_list,
)

FILES: dict[str, str] = {
    "org": "orgs.csv",
    "academicSession": "academicSessions.csv",
    "course": "courses.csv",
    "class": "classes.csv",
    "user": "users.csv",
    "role": "roles.csv",
    "enrollment": "enrollments.csv",
}
# The manifest names files without ".csv" (file.orgs, file.academicSessions, ...).
MANIFEST_KEYS = {entity: "file." + name[: -len(".csv")] for entity, name in FILES.items()}

HEADERS_1_1: dict[str, tuple[str, ...]] = {
    "org": ("sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"),
    "academicSession": (
        "sourcedId",
        "status",
        "dateLastModified",
        "title",
        "type",
        "startDate",
        "endDate",
        "parentSourcedId",
        "schoolYear",
    ),
    "course": (
        "sourcedId",
        "status",
        "dateLastModified",
        "schoolYearSourcedId",
        "title",
        "courseCode",
        "grades",
        "orgSourcedId",
        "subjects",
        "subjectCodes",
    ),
    "class": (
        "sourcedId",
        "status",
        "dateLastModified",
        "title",
        "grades",
        "courseSourcedId",
        "classCode",
        "classType",
        "location",
        "schoolSourcedId",
        "termSourcedIds",
        "subjects",
        "subjectCodes",
        "periods",
    ),
    "user": (
        "sourcedId",
        "status",
        "dateLastModified",
        "enabledUser",
        "orgSourcedIds",
        "role",
        "username",
        "userIds",
        "givenName",
        "familyName",
        "middleName",
        "identifier",
        "email",
        "sms",
        "phone",
        "agentSourcedIds",
        "grades",
        "password",
    ),
    "enrollment": (
        "sourcedId",
        "status",
        "dateLastModified",
        "classSourcedId",
        "schoolSourcedId",
        "userSourcedId",
        "role",
        "primary",
        "beginDate",
        "endDate",
    ),
}
HEADERS_1_2: dict[str, tuple[str, ...]] = {
    **HEADERS_1_1,
    "user": (
        "sourcedId",
        "status",
        "dateLastModified",
        "enabledUser",
        "username",
        "userIds",
        "givenName",
        "familyName",
        "middleName",
        "identifier",
        "email",
        "sms",
        "phone",
        "agentSourcedIds",
        "grades",
        "password",
        "userMasterIdentifier",
        "resourceSourcedIds",
        "preferredGivenName",
        "preferredMiddleName",
        "preferredFamilyName",
        "primaryOrgSourcedId",
        "pronouns",
    ),
    "role": (
        "sourcedId",
        "status",
        "dateLastModified",
        "userSourcedId",
        "roleType",
        "role",
        "beginDate",
        "endDate",
        "orgSourcedId",
        "userProfileSourcedId",
    ),
}
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "org": ("sourcedId", "name", "type"),
    "academicSession": ("sourcedId", "title", "type", "startDate", "endDate"),
    "course": ("sourcedId", "title", "orgSourcedId"),
    "class": ("sourcedId", "title", "courseSourcedId", "schoolSourcedId", "termSourcedIds"),
    "user": ("sourcedId", "givenName", "familyName"),
    "role": ("sourcedId", "userSourcedId", "role", "orgSourcedId"),
    "enrollment": ("sourcedId", "classSourcedId", "userSourcedId", "role"),
}


def headers_for(version: str) -> dict[str, tuple[str, ...]]:
    return HEADERS_1_2 if version == "1.2" else HEADERS_1_1


@dataclass
class Manifest:
    version: str
    modes: dict[str, str]  # entity -> "bulk" | "delta" | "absent"
    properties: dict[str, str] = field(default_factory=dict)

    def any_delta(self) -> bool:
        return any(mode == "delta" for mode in self.modes.values())


class _Package:
    """A folder or a zip; files are found by name, case-insensitively, at the top
    or inside one folder (zips made by hand often wrap everything in a folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._names: dict[str, str] = {}
        if path.is_dir():
            for child in path.iterdir():
                if child.is_file():
                    self._names[child.name.lower()] = str(child)
        elif zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            for info in self._zip.infolist():
                if info.is_dir():
                    continue
                base = info.filename.rsplit("/", 1)[-1].lower()
                self._names.setdefault(base, info.filename)
        else:
            raise RosterProtocolError(f"{path} is neither a folder nor a zip file.")

    def has(self, name: str) -> bool:
        return name.lower() in self._names

    @contextmanager
    def open(self, name: str) -> Iterator[IO[str]]:
        target = self._names[name.lower()]
        if self._zip is not None:
            with self._zip.open(target) as raw:
                yield io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        else:
            with open(target, encoding="utf-8-sig", newline="") as handle:
                yield handle

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _norm(header: str) -> str:
    return header.strip().strip("\ufeff").replace(" ", "").replace("_", "").lower()


class CsvPackage:
    """One OneRoster CSV package. ``records()`` streams every row of every file."""

    def __init__(self, path: str | Path, *, delta: bool | None = None) -> None:
        self.package = _Package(Path(path))
        self.manifest = self._read_manifest(delta)

    def close(self) -> None:
        self.package.close()

    def __enter__(self) -> CsvPackage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> str:
        return self.manifest.version

    def _read_manifest(self, delta: bool | None) -> Manifest:
        props: dict[str, str] = {}
        if self.package.has("manifest.csv"):
            with self.package.open("manifest.csv") as handle:
                reader = csv.reader(handle)
                header = next(reader, None)
                if header is None or [_norm(h) for h in header[:2]] != ["propertyname", "value"]:
                    raise RosterProtocolError("manifest.csv:1: header must be propertyName,value")
                for row in reader:
                    if len(row) >= 2 and row[0].strip():
                        props[row[0].strip()] = row[1].strip()
        version = props.get("oneroster.version", "")
        if not version:
            # No manifest (or no version in it): 1.2 is the layout with roles.csv.
            version = "1.2" if self.package.has("roles.csv") else "1.1"
        if version not in ("1.1", "1.2"):
            raise RosterProtocolError(f"manifest.csv: oneroster.version {version!r} is not 1.1 or 1.2")
        default_mode = "delta" if delta else "bulk"
        modes: dict[str, str] = {}
        for entity, filename in FILES.items():
            if entity == "role" and version == "1.1":
                continue
            mode = props.get(MANIFEST_KEYS[entity], "").lower()
            if mode not in ("bulk", "delta", "absent"):
                mode = default_mode if self.package.has(filename) else "absent"
            if mode != "absent" and not self.package.has(filename):
                raise RosterProtocolError(f"manifest.csv says {filename} is {mode}, but the file is missing")
            if delta is True and mode == "bulk":
                mode = "delta"  # the operator asked for a delta: never deactivate by absence
            modes[entity] = mode
        return Manifest(version=version, modes=modes, properties=props)

    def file_errors(self) -> list[RowError]:
        return []

    def records(self) -> Iterator[Record]:
        for entity in ENTITIES:
            if entity in ("agent",) or self.manifest.modes.get(entity, "absent") == "absent":
                continue
            yield from self._file_records(entity)

    def _file_records(self, entity: str) -> Iterator[Record]:
        filename = FILES[entity]
        delta = self.manifest.modes[entity] == "delta"
        version = self.version
        with self.package.open(filename) as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader, None)
            except (csv.Error, UnicodeDecodeError) as exc:
                yield _file_error(entity, filename, 1, f"cannot read the header: {exc}")
                return
            if header is None:
                yield _file_error(entity, filename, 1, "the file is empty (no header row)")
                return
            known = {_norm(h): h for h in headers_for(version)[entity]}
            columns = [known.get(_norm(h), "") for h in header]
            missing = [c for c in REQUIRED_COLUMNS[entity] if c not in columns]
            if missing:
                yield _file_error(entity, filename, 1, f"missing required column(s): {', '.join(missing)}")
                return
            width = len(header)
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except (csv.Error, UnicodeDecodeError) as exc:
                    yield _file_error(entity, filename, reader.line_num + 1, f"unreadable row: {exc}")
                    return
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank lines are harmless
                values = {col: value.strip() for col, value in zip(columns, row, strict=False) if col}
                record = row_to_record(
                    entity, values, version=version, delta=delta, location=filename, line=line
                )
                if len(row) != width:
                    record.error(f"row has {len(row)} fields, the header has {width}")
                if entity == "user" and version == "1.1":
                    check_user_role(record, values.get("role", ""), version=version)
                yield record
                if entity == "user" and version == "1.1":
                    yield from derived_user_records(
                        record,
                        role=values.get("role", ""),
                        orgs=split_list(values.get("orgSourcedIds")),
                        agents=split_list(values.get("agentSourcedIds")),
                        version=version,
                    )
                elif entity == "user":
                    yield from derived_user_records(
                        record, role="", orgs=[], agents=split_list(values.get("agentSourcedIds"))
                    )


def _file_error(entity: str, filename: str, line: int, message: str) -> Record:
    record = Record(entity=entity, sourced_id="", status=ACTIVE, data={}, location=filename, line=line)
    record.error(message)
    return record


def row_to_record(
    entity: str, v: dict[str, str], *, version: str, delta: bool, location: str, line: int | None
) -> Record:
    """Turn one CSV row (column -> text) into a checked ``Record``."""
    record = Record(
        entity=entity,
        sourced_id=v.get("sourcedId", ""),
        status=ACTIVE,
        data={},
        location=location,
        line=line,
        date_last_modified=v.get("dateLastModified", ""),
    )
    normalise_status(record, v.get("status", ""), delta=delta)
    try:
        record.data = _data_for(entity, v, version)
    except ValueError as exc:
        record.error(str(exc))
        return record
    return check_record(record, version=version)


def _date_field(v: dict[str, str], name: str) -> str:
    try:
        return parse_date(v.get(name))
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _data_for(entity: str, v: dict[str, str], version: str) -> dict[str, Any]:
    if entity == "org":
        return {
            "name": v.get("name", ""),
            "type": v.get("type", ""),
            "identifier": v.get("identifier", ""),
            "parent": v.get("parentSourcedId", ""),
        }
    if entity == "academicSession":
        return {
            "title": v.get("title", ""),
            "type": v.get("type", ""),
            "startDate": _date_field(v, "startDate"),
            "endDate": _date_field(v, "endDate"),
            "parent": v.get("parentSourcedId", ""),
            "schoolYear": v.get("schoolYear", ""),
        }
    if entity == "course":
        return {
            "title": v.get("title", ""),
            "courseCode": v.get("courseCode", ""),
            "org": v.get("orgSourcedId", ""),
            "schoolYear": v.get("schoolYearSourcedId", ""),
        }
    if entity == "class":
        return {
            "title": v.get("title", ""),
            "classCode": v.get("classCode", ""),
            "classType": v.get("classType", ""),
            "course": v.get("courseSourcedId", ""),
            "school": v.get("schoolSourcedId", ""),
            "terms": split_list(v.get("termSourcedIds")),
        }
    if entity == "user":
        try:
            enabled = parse_bool(v.get("enabledUser"), default=True)
        except ValueError as exc:
            raise ValueError(f"enabledUser: {exc}") from None
        data: dict[str, Any] = {
            "givenName": v.get("preferredGivenName") or v.get("givenName", ""),
            "familyName": v.get("preferredFamilyName") or v.get("familyName", ""),
            "middleName": v.get("middleName", ""),
            "email": v.get("email", ""),
            "username": v.get("username", ""),
            "identifier": v.get("identifier", ""),
            "enabledUser": enabled,
        }
        if version == "1.2":
            data["primaryOrg"] = v.get("primaryOrgSourcedId", "")
        return data
    if entity == "role":
        return {
            "user": v.get("userSourcedId", ""),
            "role": v.get("role", ""),
            "org": v.get("orgSourcedId", ""),
            "roleType": v.get("roleType", "") or "primary",
        }
    if entity == "enrollment":
        try:
            primary = parse_bool(v.get("primary"), default=False)
        except ValueError as exc:
            raise ValueError(f"primary: {exc}") from None
        return {
            "class": v.get("classSourcedId", ""),
            "user": v.get("userSourcedId", ""),
            "school": v.get("schoolSourcedId", ""),
            "role": v.get("role", ""),
            "primary": primary,
            "beginDate": _date_field(v, "beginDate"),
            "endDate": _date_field(v, "endDate"),
        }
    raise ValueError(f"unknown entity {entity}")
