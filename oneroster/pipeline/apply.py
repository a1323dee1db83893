# ruff: noqa: S608 - the SQL here is built from model table names and fixed column
# names only; every value is a bound parameter.
"""Apply: the staged rows that are new or changed go to the core a chunk at a time,
through the typed bulk functions of ``accounts.api`` and ``classes.api``; the mapping
table records what each sourcedId became; then what the run deactivates goes, in
reverse dependency order. One engine on SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from oneroster.models import RosterConnection, SourceRecord, SyncRun
from oneroster.pipeline.common import (
    MAPPING,
    STAGED,
    ProgressFn,
    analyze,
    analyze_growing,
    fetch_rows,
    ids_in,
    stored_connection_id,
    stored_run_id,
)
from oneroster.pipeline.diff import deactivation_query
from oneroster.protocol.records import ENTITIES, GUARDIAN_ROLES, HUB_ROLE
from tutoring_core.accounts import api as accounts
from tutoring_core.bulk_write import bulk_write_values
from tutoring_core.classes import api as classes

# Staged rows per apply transaction: each chunk is read into Python and written with a
# fixed number of statements, so larger chunks mean fewer round trips; memory stays one
# chunk of rows whatever the district's size.
CHUNK = 10_000
# Rows applied after which the mapping table's statistics are refreshed before the run ends.
ANALYZE_AFTER = 10_000


@dataclass
class Applier:
    run: SyncRun
    rekeyed: dict[str, str]
    progress: ProgressFn | None = None
    total: int = 0
    done: int = 0
    # Wall seconds per step: "user" (upserts), "user.deactivate", "term_parents", ...
    timings: dict[str, float] = field(default_factory=dict)

    def _timed(self, step: str, work: Callable[[], None]) -> None:
        started = time.monotonic()
        work()
        self.timings[step] = round(self.timings.get(step, 0.0) + time.monotonic() - started, 3)

    @property
    def conn(self) -> RosterConnection:
        return self.run.connection

    @property
    def classroom(self) -> bool:
        return bool(self.conn.kind == RosterConnection.Kind.GOOGLE_CLASSROOM)

    @property
    def identity_kind(self) -> str:
        # ARCHITECTURE.md: OneRoster (connection, sourcedId); Google Classroom (user id).
        return str(
            accounts.IdentityKind.GOOGLE_CLASSROOM if self.classroom else accounts.IdentityKind.ONEROSTER
        )

    @property
    def class_kind(self) -> str:
        return str(
            classes.ClassKeyKind.GOOGLE_CLASSROOM if self.classroom else classes.ClassKeyKind.ONEROSTER
        )

    @property
    def source(self) -> str:
        return str(classes.Source.GOOGLE_CLASSROOM if self.classroom else classes.Source.ONEROSTER)

    @property
    def tenant(self) -> Any:
        return self.run.connection.tenant

    def _tick(self, n: int) -> None:
        self.done += n
        # Re-ANALYZE the tables this chunk has made twice as large as their statistics
        # say (log n times per table as an import fills it; one catalog query otherwise).
        analyze_growing()
        SyncRun.objects.filter(pk=self.run.pk).update(
            progress_done=self.done, progress_total=self.total, phase="apply"
        )
        if self.progress:
            self.progress("apply", self.done, self.total)

    def _map_rows(self, entity: str, sids: list[str], columns: str) -> list[tuple[Any, ...]]:
        """Mapping rows of this connection for ``sids`` (one indexed query)."""
        sql, params = ids_in(
            "sourced_id",
            sids,
            f"SELECT {columns} FROM {MAPPING} WHERE connection_id = %s AND entity = %s AND ",
        )
        return fetch_rows(sql, [stored_connection_id(self.conn), entity, *params])

    def core_ids(self, entity: str, sids: Iterable[str]) -> dict[str, str]:
        wanted = sorted({s for s in sids if s})
        if not wanted:
            return {}
        return {
            sid: core
            for sid, core, active in self._map_rows(entity, wanted, "sourced_id, core_id, is_active")
            if active and core
        }

    def core_uuids(self, entity: str, sids: Iterable[str]) -> dict[str, uuid.UUID]:
        """core_ids as UUIDs, each parsed once however many rows name it."""
        return {sid: uuid.UUID(core) for sid, core in self.core_ids(entity, sids).items()}

    def apply(self, counts: dict[str, dict[str, int]]) -> None:
        self.total = sum(
            counts[e]["created"] + counts[e]["updated"] + counts[e]["deactivated"] for e in ENTITIES
        )
        for entity in ENTITIES:
            if counts[entity]["created"] + counts[entity]["updated"]:
                self._timed(entity, lambda entity=entity: self._upserts(entity))  # type: ignore[misc]
            if entity == "academicSession":
                self._timed("term_parents", self._term_parents)
        if self.done >= ANALYZE_AFTER:
            # The mapping table has just grown or changed by many rows: the next run's
            # diff plans on these statistics. A small delta leaves them about right.
            self._timed("analyze", analyze)
        for entity in reversed(ENTITIES):
            if counts[entity]["deactivated"]:
                self._timed(f"{entity}.deactivate", lambda entity=entity: self._deactivations(entity))  # type: ignore[misc]

    def _upserts(self, entity: str) -> None:
        run_id = stored_run_id(self.run)
        last = 0
        handler = getattr(self, f"_apply_{entity if entity != 'class' else 'klass'}")
        # The connection's first import of this entity (no mapping row yet): every live
        # staged row is new (live sourcedIds are unique within a run), so its data comes
        # with its key and there is no mapping to look up: two queries per chunk fewer.
        first = not fetch_rows(
            f"SELECT 1 FROM {MAPPING} WHERE connection_id = %s AND entity = %s LIMIT 1",
            [stored_connection_id(self.conn), entity],
        )
        while True:
            # A keyset step over the staged rows alone (see _changed for why the mapping
            # is not joined here).
            keys = fetch_rows(
                f"""SELECT id, sourced_id, hash, natural_key{", data" if first else ""} FROM {STAGED}
                    WHERE run_id = %s AND entity = %s AND rejected = %s AND deleted = %s AND id > %s
                    ORDER BY id LIMIT {CHUNK}""",
                [run_id, entity, False, False, last],
            )
            if not keys:
                return
            last = keys[-1][0]
            # (staged id, sourcedId, data, hash, natural key, current core id) to apply.
            rows: list[tuple[Any, ...]]
            if first:
                rows = [(pk, sid, payload, h, nk, "") for pk, sid, h, nk, payload in keys]
            else:
                rows = self._changed(entity, keys)
            if not rows:
                continue
            chunk = [(sid, json.loads(payload), core_id or "") for _, sid, payload, _, _, core_id in rows]
            # The staged text is parsed: keep only what the mapping rows need (peak memory
            # is one chunk's rows, whatever the district's size).
            marks = [(sid, h, nk) for _, sid, _, h, nk, _ in rows]
            del keys, rows
            with transaction.atomic():
                core = handler(chunk)
                _source_records_upsert(
                    self.conn,
                    entity,
                    [(sid, str(core.get(sid, "")), h, nk) for sid, h, nk in marks],
                    new=first,
                )
                if entity == "user":
                    self._retire_rekeyed([sid for sid, _, _ in marks])
            del chunk, core
            self._tick(len(marks))

    def _changed(self, entity: str, keys: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The staged rows among ``keys`` to apply: new, changed, or with an inactive
        mapping row; with their data and current core id. Two index-only steps instead
        of one join: the mapping table grows under the apply loop, and a join planned on
        its old statistics degrades into nested loops (seconds per chunk at district
        scale; a LEFT JOIN tried for issue 13 took 220 s of a 330 s import)."""
        known = {
            sid: (core_id, h, active)
            for sid, core_id, h, active in self._map_rows(
                entity, [k[1] for k in keys], "sourced_id, core_id, hash, is_active"
            )
        }
        todo = [k for k in keys if k[1] not in known or known[k[1]][1] != k[2] or not known[k[1]][2]]
        if not todo:
            return []
        data = dict(fetch_rows(*ids_in("id", [k[0] for k in todo], f"SELECT id, data FROM {STAGED} WHERE ")))
        return [(k[0], k[1], data[k[0]], k[2], k[3], known.get(k[1], ("",))[0]) for k in todo]

    def _retire_rekeyed(self, sids: list[str]) -> None:
        for new in sids:
            old = self.rekeyed.get(new)
            if old:
                SourceRecord.objects.filter(connection=self.conn, entity="user", sourced_id=old).update(
                    is_active=False, replaced_by=new, updated_at=timezone.now()
                )

    def _deactivations(self, entity: str) -> None:
        found = deactivation_query(self.run, entity)
        if found is None:
            return
        sql, params = found
        retired = set(self.rekeyed.values()) if entity == "user" else set()
        # Core rows that more than one sourcedId names (a re-keyed user's new enrollment,
        # the other side's agent record): one pass per entity instead of an index on
        # core ids that every mapping row of an import had to maintain. Usually few.
        shared = {
            r[0]
            for r in fetch_rows(
                f"""SELECT core_id FROM {MAPPING} WHERE connection_id = %s AND entity = %s AND core_id <> ''
                    GROUP BY core_id HAVING COUNT(*) > 1""",
                [stored_connection_id(self.conn), entity],
            )
        }
        last = 0
        while True:
            rows = fetch_rows(
                f"SELECT m.id, m.sourced_id, m.core_id {sql} AND m.id > %s ORDER BY m.id LIMIT {CHUNK}",
                [*params, last],
            )
            if not rows:
                return
            last = rows[-1][0]
            rows = [r for r in rows if r[1] not in retired]
            with transaction.atomic():
                SourceRecord.objects.filter(pk__in=[r[0] for r in rows]).update(
                    is_active=False, updated_at=timezone.now()
                )
                core = {r[2] for r in rows if r[2]}
                # Another live sourcedId may name the same core row: that row stays.
                if core & shared:
                    core -= set(
                        SourceRecord.objects.filter(
                            connection=self.conn, entity=entity, core_id__in=core & shared, is_active=True
                        ).values_list("core_id", flat=True)
                    )
                if core:
                    self._deactivate_core(entity, sorted(core))
            self._tick(len(rows))

    def _deactivate_core(self, entity: str, core: list[str]) -> None:
        tenant = self.tenant
        if entity == "org":
            classes.schools_bulk_deactivate(tenant=tenant, ids=[uuid.UUID(c) for c in core])
        elif entity == "academicSession":
            classes.terms_bulk_deactivate(tenant=tenant, ids=[uuid.UUID(c) for c in core])
        elif entity == "course":
            classes.courses_bulk_deactivate(tenant=tenant, ids=[uuid.UUID(c) for c in core])
        elif entity == "class":
            classes.classes_bulk_deactivate(tenant=tenant, ids=[uuid.UUID(c) for c in core])
        elif entity == "user":
            # People are never deleted: they keep their enrollments' history and results.
            accounts.users_bulk_set_active(
                tenant=tenant, user_ids=[uuid.UUID(c) for c in core], is_active=False
            )
        elif entity == "role":
            accounts.roles_bulk_deactivate(tenant=tenant, assignment_ids=[int(c) for c in core])
        elif entity == "enrollment":
            classes.enrollments_bulk_deactivate(tenant=tenant, ids=[uuid.UUID(c) for c in core])
        elif entity == "agent":
            # Two agent records (each side's) may name one link; it goes when either goes.
            accounts.guardian_links_bulk_deactivate(tenant=tenant, link_ids=[int(c) for c in set(core)])

    # Each handler takes [(sourcedId, data, current core id)] and returns sourcedId -> core id.
    def _apply_org(self, chunk: list[tuple[str, dict[str, Any], str]]) -> dict[str, Any]:
        schools = [(sid, values, core) for sid, values, core in chunk if values["type"] == "school"]
        ids = classes.schools_bulk_upsert(
            tenant=self.tenant,
            rows=[
                classes.SchoolRow(
                    id=uuid.UUID(core) if core else None, name=values["name"], code=values["identifier"]
                )
                for _, values, core in schools
            ],
            source=self.source,
        )
        return {sid: pk for (sid, _, _), pk in zip(schools, ids, strict=True)}

    def _apply_academicSession(self, chunk: list[tuple[str, dict[str, Any], str]]) -> dict[str, Any]:
        ids = classes.terms_bulk_upsert(
            tenant=self.tenant,
            rows=[
                classes.TermRow(
                    id=uuid.UUID(core) if core else None,
                    title=values["title"],
                    kind=values["type"],
                    start_date=dt.date.fromisoformat(values["startDate"]),
                    end_date=dt.date.fromisoformat(values["endDate"]),
                )
                for _, values, core in chunk
            ],
            source=self.source,
        )
        return {sid: pk for (sid, _, _), pk in zip(chunk, ids, strict=True)}

    def _term_parents(self) -> None:
        run_id = stored_run_id(self.run)
        rows = fetch_rows(
            f"SELECT sourced_id, ref_a FROM {STAGED} WHERE run_id = %s AND entity = %s AND rejected = %s AND deleted = %s",
            [run_id, "academicSession", False, False],
        )
        terms = self.core_ids("academicSession", [r[0] for r in rows] + [r[1] for r in rows])
        parents = {
            uuid.UUID(terms[sid]): (uuid.UUID(terms[parent]) if parent in terms else None)
            for sid, parent in rows
            if sid in terms
        }
        if parents:
            classes.terms_bulk_set_parent(tenant=self.tenant, parents=parents)

    def _apply_course(self, chunk: list[tuple[str, dict[str, Any], str]]) -> dict[str, Any]:
        schools = self.core_ids("org", [values["org"] for _, values, _ in chunk])
        ids = classes.courses_bulk_upsert(
            tenant=self.tenant,
            rows=[
                classes.CourseRow(
                    id=uuid.UUID(core) if core else None,
                    title=values["title"],
                    code=values["courseCode"],
                    school_id=uuid.UUID(schools[values["org"]]) if values["org"] in schools else None,
                )
                for _, values, core in chunk
            ],
            source=self.source,
        )
        return {sid: pk for (sid, _, _), pk in zip(chunk, ids, strict=True)}

    def _apply_klass(self, chunk: list[tuple[str, dict[str, Any], str]]) -> dict[str, Any]:
        schools = self.core_ids("org", [values["school"] for _, values, _ in chunk])
        courses = self.core_ids("course", [values["course"] for _, values, _ in chunk])
        terms = self.core_ids("academicSession", [t for _, values, _ in chunk for t in values["terms"]])
        return classes.classes_bulk_upsert(
            tenant=self.tenant,
            kind=self.class_kind,
            issuer=self.conn.issuer,
            rows=[
                classes.ClassRow(
                    subject=sid,
                    title=values["title"],
                    code=values["classCode"],
                    school_id=uuid.UUID(schools[values["school"]]) if values["school"] in schools else None,
                    course_id=uuid.UUID(courses[values["course"]]) if values["course"] in courses else None,
                    term_ids=tuple(uuid.UUID(terms[t]) for t in values["terms"] if t in terms),
                )
                for sid, values, _ in chunk
            ],
            source=self.source,
        )

    def _apply_user(self, chunk: list[tuple[str, dict[str, Any], str]]) -> dict[str, Any]:
        results = accounts.people_bulk_upsert(
            tenant=self.tenant,
            kind=self.identity_kind,
            issuer=self.conn.issuer,
            rows=[
                accounts.PersonRow(
                    subject=sid,
                    given_name=values["givenName"],
                    family_name=values["familyName"],
                    email=values["email"],
                    is_active=values["enabledUser"] is not False,
                    previous_subject=self.rekeyed.get(sid, ""),
                )
                for sid, values, _ in chunk
            ],
        )
        return {sid: r.user_id for sid, r in results.items()}

    def _apply_role(self, chunk: list[tuple[str, dict[str, Any], str]]) -> dict[str, Any]:
        users = self.core_uuids("user", [values["user"] for _, values, _ in chunk])
        schools = self.core_uuids("org", [values["org"] for _, values, _ in chunk])
        rows: dict[str, accounts.RoleRow] = {}
        # A person's primary OneRoster role decides the direction of their agent links;
        # the last primary row of the chunk wins.
        primary: dict[str, str] = {}
        for sid, values, _ in chunk:
            if values["user"] not in users:
                continue
            rows[sid] = accounts.RoleRow(
                user_id=users[values["user"]],
                role=HUB_ROLE[values["role"]],
                school_id=schools.get(values["org"]),
            )
            if values.get("roleType", "primary") == "primary":
                primary[values["user"]] = values["role"]
        assigned = (
            accounts.roles_bulk_assign(tenant=self.tenant, rows=list(rows.values()), source=self.source)
            if rows
            else {}
        )
        hints: dict[str, list[str]] = {}
        for user_sid, role in primary.items():
            hints.setdefault(role, []).append(user_sid)
        for role, user_sids in sorted(hints.items()):
            SourceRecord.objects.filter(
                connection=self.conn, entity="user", sourced_id__in=user_sids
            ).exclude(hint=role).update(hint=role)
        return {sid: assigned[row] for sid, row in rows.items()}

    def _apply_enrollment(self, chunk: list[tuple[str, dict[str, Any], str]]) -> dict[str, Any]:
        users = self.core_uuids("user", [values["user"] for _, values, _ in chunk])
        klasses = self.core_uuids("class", [values["class"] for _, values, _ in chunk])
        keep = [
            (sid, values)
            for sid, values, _ in chunk
            if values["user"] in users and values["class"] in klasses
        ]
        ids = (
            classes.enrollments_bulk_upsert(
                tenant=self.tenant,
                rows=[
                    classes.EnrollmentRow(
                        class_id=klasses[values["class"]],
                        user_id=users[values["user"]],
                        role=HUB_ROLE[values["role"]],
                        is_primary=bool(values["primary"]),
                        begin_date=dt.date.fromisoformat(values["beginDate"])
                        if values["beginDate"]
                        else None,
                        end_date=dt.date.fromisoformat(values["endDate"]) if values["endDate"] else None,
                    )
                    for _, values in keep
                ],
                source=self.source,
            )
            if keep
            else []
        )
        return {sid: pk for (sid, _), pk in zip(keep, ids, strict=True)}

    def _apply_agent(self, chunk: list[tuple[str, dict[str, Any], str]]) -> dict[str, Any]:
        people = [p for _, values, _ in chunk for p in (values["user"], values["agent"])]
        users = self.core_ids("user", people)
        hints = dict(
            SourceRecord.objects.filter(
                connection=self.conn, entity="user", sourced_id__in=set(people)
            ).values_list("sourced_id", "hint")
        )
        pairs: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}
        for sid, values, _ in chunk:
            user, agent = values["user"], values["agent"]
            if user not in users or agent not in users:
                continue
            # OneRoster agents point both ways (a student's parents, a parent's
            # children); the link always runs guardian -> student.
            if hints.get(user) == "student" and hints.get(agent) in GUARDIAN_ROLES:
                pairs[sid] = (uuid.UUID(users[agent]), uuid.UUID(users[user]))
            elif hints.get(user) in GUARDIAN_ROLES and hints.get(agent) == "student":
                pairs[sid] = (uuid.UUID(users[user]), uuid.UUID(users[agent]))
        links = (
            accounts.guardian_links_bulk_upsert(
                tenant=self.tenant, pairs=list(pairs.values()), source=self.source
            )
            if pairs
            else {}
        )
        return {sid: links[pair] for sid, pair in pairs.items() if pair in links}


def _source_records_upsert(
    conn: RosterConnection, entity: str, rows: list[tuple[str, str, str, str]], *, new: bool = False
) -> None:
    """Record what was applied: (sourcedId, core id, hash, natural key) -> active.
    ``new``: none of these sourcedIds has a mapping row yet (a first import), so the
    rows are a plain insert (a row that is there after all fails the chunk whole)."""
    bulk_write_values(
        SourceRecord,
        [
            {
                "connection_id": conn.pk,
                "entity": entity,
                "sourced_id": sid,
                "core_id": core,
                "hash": content_hash,
                "natural_key": natural_key,
                "is_active": True,
                "replaced_by": "",
            }
            for sid, core, content_hash, natural_key in rows
        ],
        unique_fields=() if new else _MAPPING_KEY,
        update_fields=() if new else _MAPPING_UPDATE,
    )


# The mapping row's natural key, and what an apply sets on a row already there: every
# field but the key and the user's primary-role hint (set by the role pass).
_MAPPING_KEY = ["connection", "entity", "sourced_id"]
_MAPPING_UPDATE = [
    f.name
    for f in SourceRecord._meta.concrete_fields
    if not f.primary_key and f.name not in (*_MAPPING_KEY, "hint")
]
