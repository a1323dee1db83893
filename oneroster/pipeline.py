# ruff: noqa: S608 - the SQL here is built from model table names and fixed column
# names only; every value is a bound parameter.
"""The sync pipeline: stage -> validate -> diff -> guard -> apply -> report.

Memory stays flat whatever the district's size: rows are staged in the database
as they stream in (COPY on PostgreSQL), references and the diff are set-based
SQL over the staged rows and the mapping table, and apply works in chunks read
back by keyset. The only per-chunk state in Python is one chunk of rows and the
core ids its references need.

Writes into the core go through ``accounts.api`` / ``classes.api`` bulk functions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from django.db import OperationalError, transaction
from django.db import connection as db
from django.utils import timezone

from oneroster.models import RosterConnection, SourceRecord, StagedRecord, SyncError, SyncRun
from oneroster.protocol.records import (
    ENTITIES,
    GUARDIAN_ROLES,
    HUB_ROLE,
    REF_NAMES,
    REF_TARGETS,
    TOBEDELETED,
    Record,
    RowError,
)
from tutoring_core.accounts import api as accounts
from tutoring_core.bulk_write import bulk_write
from tutoring_core.classes import api as classes

logger = logging.getLogger(__name__)

# Staged rows per apply transaction: each chunk is read into Python and written with a
# fixed number of statements, so larger chunks mean fewer round trips; memory stays one
# chunk of rows whatever the district's size.
CHUNK = 5000
STAGE_BATCH = 5000
# Rows applied after which the mapping table's statistics are refreshed before the run ends.
ANALYZE_AFTER = 10_000
MAX_STORED_ERRORS = 1000
ProgressFn = Callable[[str, int, int], None]

ST = StagedRecord._meta.db_table
SR = SourceRecord._meta.db_table
ACTIONS = ("created", "updated", "deactivated", "unchanged", "rejected")


class SyncAborted(Exception):
    """The run cannot go on (bad source, validation failed); nothing was applied."""


def _empty_counts() -> dict[str, dict[str, int]]:
    return {e: dict.fromkeys(ACTIONS, 0) for e in ENTITIES}


# --- stage ----------------------------------------------------------------------------


@dataclass
class Stager:
    run: SyncRun
    progress: ProgressFn | None = None
    staged: int = 0
    errors: int = 0
    broken_entities: set[str] = field(default_factory=set)
    _pending: int = 0  # rows sent since the last flush
    _buffer: list[tuple[Any, ...]] = field(default_factory=list)  # SQLite only
    _error_buffer: list[SyncError] = field(default_factory=list)
    # PostgreSQL: the COPY that rows stream into between flushes, and what closes it.
    _copy: Any = None
    _copy_stack: ExitStack | None = None
    # The run's key as the staging column takes it (looked up once, not per row).
    _run_value: Any = field(init=False, default=None)
    _postgresql: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._run_value = _run_param(self.run)
        self._postgresql = db.vendor == "postgresql"

    def add(self, record: Record) -> None:
        if record.errors:
            self.error_rows(record.row_errors())
            if not record.sourced_id:
                # A file-level problem (missing column, unreadable row): that file
                # cannot tell us what is absent, so it must not deactivate anything.
                self.broken_entities.add(record.entity)
                return
        ref_a, ref_b = record.refs()
        payload = record.payload()
        row = (
            self._run_value,
            record.entity,
            record.sourced_id[:255],
            record.status == TOBEDELETED,
            record.location[:300],
            record.line,
            record.content_hash(payload),
            record.natural_key()[:255],
            ref_a[:255],
            ref_b[:255],
            payload,
            bool(record.errors),
        )
        if self._postgresql:
            # Each row goes out as soon as it is read, so the server stores one batch
            # while Python parses the next; buffering a batch and then COPYing it left
            # one of the two idle at any time.
            if self._copy is None:
                self._open_copy()
            self._copy.write_row(row)
        else:
            self._buffer.append(row)
        self._pending += 1
        if self._pending >= STAGE_BATCH:
            self.flush()

    def error_rows(self, errors: Iterable[RowError]) -> None:
        for error in errors:
            self.errors += 1
            if self.errors <= MAX_STORED_ERRORS:
                self._error_buffer.append(
                    SyncError(
                        run=self.run,
                        entity=error.entity,
                        location=error.location[:300],
                        line=error.line,
                        sourced_id=error.sourced_id[:255],
                        message=error.message,
                    )
                )

    def _open_copy(self) -> None:
        stack = ExitStack()
        cursor = stack.enter_context(db.cursor())
        self._copy = stack.enter_context(
            cursor.cursor.copy(f"COPY {ST} ({', '.join(_STAGE_COLUMNS)}) FROM STDIN")
        )
        self._copy_stack = stack

    def abort(self) -> None:
        """End an open COPY after the source failed, so the connection is usable for
        the cleanup that follows. The COPY is ended normally: its rows join the run's
        other staged rows, which that cleanup deletes. Failing it instead (CopyFail)
        would also abort any transaction the sync runs inside."""
        if self._copy_stack is not None:
            stack, self._copy_stack, self._copy = self._copy_stack, None, None
            try:
                stack.close()
            except Exception:  # the source's error is the one to report
                logger.warning("roster sync %s: ending the staging COPY failed", self.run.pk, exc_info=True)

    def flush(self) -> None:
        # The COPY holds the connection: close it (the server has mostly caught up)
        # before anything else is written.
        if self._copy_stack is not None:
            stack, self._copy_stack, self._copy = self._copy_stack, None, None
            stack.close()
        if self._buffer:
            marks = ", ".join(["%s"] * len(_STAGE_COLUMNS))
            with db.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {ST} ({', '.join(_STAGE_COLUMNS)}) VALUES ({marks})", self._buffer
                )
            self._buffer = []
        if self._pending:
            self.staged += self._pending
            self._pending = 0
            SyncRun.objects.filter(pk=self.run.pk).update(
                phase="fetch", progress_done=self.staged, progress_total=0
            )
            if self.progress:
                self.progress("stage", self.staged, 0)
        if self._error_buffer:
            SyncError.objects.bulk_create(self._error_buffer)
            self._error_buffer = []


_STAGE_COLUMNS = (
    "run_id",
    "entity",
    "sourced_id",
    "deleted",
    "location",
    "line",
    "hash",
    "natural_key",
    "ref_a",
    "ref_b",
    "data",
    "rejected",
)


def stage(run: SyncRun, records: Iterator[Record], *, progress: ProgressFn | None = None) -> Stager:
    stager = Stager(run=run, progress=progress)
    try:
        for record in records:
            stager.add(record)
        stager.flush()
    except BaseException:
        stager.abort()
        raise
    return stager


# --- validate (references, duplicates) ----------------------------------------------------


def _q(sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
    with db.cursor() as cursor:
        cursor.execute(sql, list(params))
        return list(cursor.fetchall())


def _x(sql: str, params: Iterable[Any]) -> int:
    with db.cursor() as cursor:
        cursor.execute(sql, list(params))
        return int(cursor.rowcount)


def _ids_in(column: str, ids: list[Any], prefix: str) -> tuple[str, list[Any]]:
    # PostgreSQL: one array parameter instead of thousands of placeholders to parse.
    if db.vendor == "postgresql":
        return f"{prefix}{column} = ANY(%s)", [ids]
    return f"{prefix}{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def _run_param(run: SyncRun) -> Any:
    return run.pk.hex if db.vendor == "sqlite" else run.pk


def _reject(
    run: SyncRun, stager: Stager, rows: list[tuple[Any, ...]], entity: str, message: Callable[[Any], str]
) -> None:
    """rows: (staged id, location, line, sourced_id, value)."""
    if not rows:
        return
    ids = [r[0] for r in rows]
    for start in range(0, len(ids), 900):
        part = ids[start : start + 900]
        _x(f"UPDATE {ST} SET rejected = %s WHERE id IN ({', '.join(['%s'] * len(part))})", [True, *part])
    stager.error_rows(RowError(entity, r[1], r[2], r[3], message(r[4])) for r in rows)


_ANALYZED_STAGE_COLUMNS = "id, run_id, entity, sourced_id, deleted, rejected, natural_key, ref_a, ref_b"


def analyze(*, mapping: bool = True) -> None:
    """Refresh PostgreSQL's statistics on the staging and (``mapping``) mapping tables.

    Both change by hundreds of thousands of rows within one run, faster than
    autovacuum notices; with stale statistics the planner picks nested loops for
    the anti-joins below and a 20-second diff takes 20 minutes. The staged rows are
    new in every run; the mapping table only changes when a run applies, and a run
    that applied many rows analyzes it before it ends (Applier.apply)."""
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            # Only the columns the planner filters and joins on: sampling the wide
            # ``data`` and ``location`` text made up most of each ANALYZE's time.
            cursor.execute(f"ANALYZE {ST} ({_ANALYZED_STAGE_COLUMNS})")
            if mapping:
                cursor.execute(f"ANALYZE {SR}")


def analyze_growing() -> None:
    """Refresh the statistics of the mapping table and (through the core's door) of the
    core's roster tables while a large import fills them: statistics that still say
    "empty" make the planner scan whole tables per chunk."""
    if db.vendor != "postgresql":
        return
    with db.cursor() as cursor:
        cursor.execute(f"ANALYZE {SR}")
    classes.roster_statistics_refresh()


def validate(run: SyncRun, stager: Stager) -> None:
    """Checks that need other rows: duplicate sourcedIds and references. A row that
    refers to a rejected row is rejected too (entities are checked in dependency order)."""
    analyze(mapping=False)
    rp = _run_param(run)
    conn_id = _conn_param(run.connection)
    modes = run.entity_modes
    for entity in ENTITIES:
        dupes = _duplicates(rp, entity)
        _reject(run, stager, dupes, entity, lambda first: f"duplicate sourcedId (first at line {first})")
        for ref_col, target, name in (
            ("ref_a", REF_TARGETS[entity][0], REF_NAMES[entity][0]),
            ("ref_b", REF_TARGETS[entity][1], REF_NAMES[entity][1]),
        ):
            if target is None:
                continue
            # Where the target entity is not a complete snapshot in this run (a delta,
            # or no file at all), a reference may also name what we already hold.
            known_sql, known_params = "", []
            if modes.get(target) != "bulk":
                known_sql = f"""AND NOT EXISTS (SELECT 1 FROM {SR} m WHERE m.connection_id = %s AND m.entity = %s
                                AND m.sourced_id = s.{ref_col} AND m.is_active = %s)"""
                known_params = [conn_id, target, True]
            bad = _q(
                f"""SELECT s.id, s.location, s.line, s.sourced_id, s.{ref_col} FROM {ST} s
                    WHERE s.run_id = %s AND s.entity = %s AND s.rejected = %s AND s.deleted = %s AND s.{ref_col} <> ''
                    AND NOT EXISTS (SELECT 1 FROM {ST} t WHERE t.run_id = s.run_id AND t.entity = %s
                                    AND t.sourced_id = s.{ref_col} AND t.rejected = %s AND t.deleted = %s)
                    {known_sql}""",
                [rp, entity, False, False, target, False, False, *known_params],
            )

            def missing(value: Any, name: str = name, target: str = target) -> str:
                return f"{name} {value!r} does not name a valid {target} in this sync"

            _reject(run, stager, bad, entity, missing)
        if entity == "class":
            _validate_class_terms(run, stager)
    stager.flush()


def _duplicates(rp: Any, entity: str) -> list[tuple[Any, ...]]:
    """Staged rows of ``entity`` whose sourcedId an earlier row of the run already has."""
    sql = f"""WITH d AS MATERIALIZED (
                  SELECT sourced_id, MIN(id) AS first_id FROM {ST} WHERE run_id = %s AND entity = %s
                  GROUP BY sourced_id HAVING COUNT(*) > 1)
              SELECT s.id, s.location, s.line, s.sourced_id, f.line FROM d
              JOIN LATERAL (SELECT s.id, s.location, s.line, s.sourced_id FROM {ST} s WHERE s.run_id = %s
                            AND s.entity = %s AND s.sourced_id = d.sourced_id AND s.id <> d.first_id OFFSET 0) s ON TRUE
              JOIN LATERAL (SELECT f.line FROM {ST} f WHERE f.id = d.first_id OFFSET 0) f ON TRUE"""
    params = [rp, entity, rp, entity]
    if db.vendor != "postgresql":
        return _q(
            f"""SELECT s.id, s.location, s.line, s.sourced_id, f.line FROM {ST} s
                JOIN (SELECT sourced_id, MIN(id) AS first_id FROM {ST} WHERE run_id = %s AND entity = %s
                      GROUP BY sourced_id HAVING COUNT(*) > 1) d ON d.sourced_id = s.sourced_id
                JOIN {ST} f ON f.id = d.first_id
                WHERE s.run_id = %s AND s.entity = %s AND s.id <> d.first_id""",
            params,
        )
    # PostgreSQL: the grouping is computed once (planned inside a parallel join, every
    # worker built the same hash) and in memory (the default work_mem spilled a
    # district's enrollments to disk): a tenth of a no-change re-sync before.
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '32MB'")
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _validate_class_terms(run: SyncRun, stager: Stager) -> None:
    rp = _run_param(run)
    sessions = {
        r[0]
        for r in _q(
            f"SELECT sourced_id FROM {ST} WHERE run_id = %s AND entity = %s AND rejected = %s AND deleted = %s",
            [rp, "academicSession", False, False],
        )
    }
    if run.entity_modes.get("academicSession") != "bulk":
        sessions |= set(
            SourceRecord.objects.filter(
                connection=run.connection, entity="academicSession", is_active=True
            ).values_list("sourced_id", flat=True)
        )
    bad = []
    last = 0
    while True:
        rows = _q(
            f"""SELECT id, location, line, sourced_id, data FROM {ST} WHERE run_id = %s AND entity = %s
                AND rejected = %s AND deleted = %s AND id > %s ORDER BY id LIMIT {CHUNK}""",
            [rp, "class", False, False, last],
        )
        if not rows:
            break
        last = rows[-1][0]
        for row in rows:
            missing = [t for t in json.loads(row[4]).get("terms", []) if t not in sessions]
            if missing:
                bad.append((*row[:4], missing[0]))
    _reject(
        run,
        stager,
        bad,
        "class",
        lambda value: f"termSourcedIds {value!r} does not name a valid academicSession in this sync",
    )


# --- diff -----------------------------------------------------------------------------


def _conn_param(conn: RosterConnection) -> Any:
    return conn.pk.hex if db.vendor == "sqlite" else conn.pk


def _deactivation_sql(run: SyncRun, entity: str) -> tuple[str, list[Any]] | None:
    """The mapping rows this run deactivates for ``entity`` (FROM ... WHERE, alias m)."""
    conn_id, rp = _conn_param(run.connection), _run_param(run)
    mode = run.entity_modes.get(entity, "absent")
    if mode == "bulk" and run.mode == SyncRun.Mode.FULL:
        # Deactivation by absence: only for a complete snapshot of this entity.
        return (
            f"""FROM {SR} m WHERE m.connection_id = %s AND m.entity = %s AND m.is_active = %s
                AND NOT EXISTS (SELECT 1 FROM {ST} s WHERE s.run_id = %s AND s.entity = m.entity
                                AND s.sourced_id = m.sourced_id AND s.deleted = %s)""",
            [conn_id, entity, True, rp, False],
        )
    if mode in ("delta", "bulk"):
        return (
            f"""FROM {SR} m WHERE m.connection_id = %s AND m.entity = %s AND m.is_active = %s
                AND EXISTS (SELECT 1 FROM {ST} s WHERE s.run_id = %s AND s.entity = m.entity
                            AND s.sourced_id = m.sourced_id AND s.deleted = %s AND s.rejected = %s)""",
            [conn_id, entity, True, rp, True, False],
        )
    return None


def rekeys(run: SyncRun) -> dict[str, str]:
    """New user sourcedId -> the old one it replaces: same natural key (state id),
    the old key no longer live in this run. Ambiguous matches are not re-keyed."""
    conn_id, rp = _conn_param(run.connection), _run_param(run)
    rows = _q(
        f"""SELECT s.sourced_id, m2.sourced_id FROM {ST} s
            JOIN {SR} m2 ON m2.connection_id = %s AND m2.entity = 'user' AND m2.natural_key = s.natural_key
                         AND m2.natural_key <> '' AND m2.is_active = %s
            WHERE s.run_id = %s AND s.entity = 'user' AND s.rejected = %s AND s.deleted = %s AND s.natural_key <> ''
            AND NOT EXISTS (SELECT 1 FROM {SR} m WHERE m.connection_id = %s AND m.entity = 'user'
                            AND m.sourced_id = s.sourced_id)
            AND NOT EXISTS (SELECT 1 FROM {ST} t WHERE t.run_id = s.run_id AND t.entity = 'user'
                            AND t.sourced_id = m2.sourced_id AND t.deleted = %s)""",
        [conn_id, True, rp, False, False, conn_id, False],
    )
    by_new: dict[str, set[str]] = {}
    by_old: dict[str, set[str]] = {}
    for new, old in rows:
        by_new.setdefault(new, set()).add(old)
        by_old.setdefault(old, set()).add(new)
    return {
        new: next(iter(olds))
        for new, olds in by_new.items()
        if len(olds) == 1 and len(by_old[next(iter(olds))]) == 1
    }


def plan(
    run: SyncRun, rekeyed: dict[str, str], *, fresh_statistics: bool = False
) -> dict[str, dict[str, int]]:
    """Counts per entity of what apply would do (the dry-run report and the guard).

    ``fresh_statistics``: validate() has just analyzed the staged rows and rejected
    none of them since, so ANALYZE again would learn nothing."""
    if not fresh_statistics:
        analyze(mapping=False)
    counts = _empty_counts()
    conn_id, rp = _conn_param(run.connection), _run_param(run)
    for entity in ENTITIES:
        # One pass over the entity's staged rows for four counts. A "live" row is one
        # apply considers (not rejected, not a tobedeleted); it is applied when it is
        # new, its hash differs, or its mapping row is inactive (as apply's own test).
        live = "s.rejected = %s AND s.deleted = %s"
        row = _q(
            f"""SELECT SUM(CASE WHEN {live} AND m.id IS NULL THEN 1 ELSE 0 END),
                       SUM(CASE WHEN {live} AND m.id IS NOT NULL AND (m.hash <> s.hash OR m.is_active = %s)
                           THEN 1 ELSE 0 END),
                       SUM(CASE WHEN {live} AND m.hash = s.hash AND m.is_active = %s THEN 1 ELSE 0 END),
                       SUM(CASE WHEN s.rejected = %s THEN 1 ELSE 0 END)
                FROM {ST} s LEFT JOIN {SR} m ON m.connection_id = %s AND m.entity = s.entity
                     AND m.sourced_id = s.sourced_id
                WHERE s.run_id = %s AND s.entity = %s""",
            [False, False, False, False, False, False, False, True, True, conn_id, rp, entity],
        )[0]
        for action, value in zip(("created", "updated", "unchanged", "rejected"), row, strict=True):
            counts[entity][action] = int(value or 0)
        deactivation = _deactivation_sql(run, entity)
        if deactivation is not None:
            sql, params = deactivation
            n = _q(f"SELECT COUNT(*) {sql}", params)[0][0]
            if entity == "user":
                n -= len(set(rekeyed.values()))
            counts[entity]["deactivated"] = max(0, n)
    return counts


def guard_check(run: SyncRun, counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    """A full sync that would deactivate more than the connection's share of any
    entity stops for an admin (a truncated export must not wipe a district)."""
    limit = run.connection.max_deactivation_share
    tripped = {}
    if run.mode != SyncRun.Mode.FULL:
        return {}
    for entity in ENTITIES:
        active = SourceRecord.objects.filter(connection=run.connection, entity=entity, is_active=True).count()
        going = counts[entity]["deactivated"]
        if active and going / active > limit:
            tripped[entity] = {"deactivate": going, "active": active, "share": round(going / active, 4)}
    return {"limit": limit, "entities": tripped} if tripped else {}


# --- apply ------------------------------------------------------------------------------


@dataclass
class Applier:
    run: SyncRun
    rekeyed: dict[str, str]
    progress: ProgressFn | None = None
    total: int = 0
    done: int = 0
    # Re-ANALYZE whenever the rows written since the last time double (log n times).
    _next_analyze: int = 10_000
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
        if self.done >= self._next_analyze:
            analyze_growing()
            self._next_analyze = self.done * 2
        SyncRun.objects.filter(pk=self.run.pk).update(
            progress_done=self.done, progress_total=self.total, phase="apply"
        )
        if self.progress:
            self.progress("apply", self.done, self.total)

    def _map_rows(self, entity: str, sids: list[str], columns: str) -> list[tuple[Any, ...]]:
        """Mapping rows of this connection for ``sids`` (one indexed query)."""
        sql, params = _ids_in(
            "sourced_id", sids, f"SELECT {columns} FROM {SR} WHERE connection_id = %s AND entity = %s AND "
        )
        return _q(sql, [_conn_param(self.conn), entity, *params])

    def core_ids(self, entity: str, sids: Iterable[str]) -> dict[str, str]:
        wanted = sorted({s for s in sids if s})
        if not wanted:
            return {}
        return {
            sid: core
            for sid, core, active in self._map_rows(entity, wanted, "sourced_id, core_id, is_active")
            if active and core
        }

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
        rp = _run_param(self.run)
        last = 0
        handler = getattr(self, f"_apply_{entity if entity != 'class' else 'klass'}")
        while True:
            # Three index-only steps instead of one join: the mapping table grows
            # under this loop, and a join planned on its old statistics degrades
            # into nested loops (seconds per chunk at district scale).
            keys = _q(
                f"""SELECT id, sourced_id, hash, natural_key FROM {ST} WHERE run_id = %s AND entity = %s
                    AND rejected = %s AND deleted = %s AND id > %s ORDER BY id LIMIT {CHUNK}""",
                [rp, entity, False, False, last],
            )
            if not keys:
                return
            last = keys[-1][0]
            known = {
                sid: (core_id, h, active)
                for sid, core_id, h, active in self._map_rows(
                    entity, [k[1] for k in keys], "sourced_id, core_id, hash, is_active"
                )
            }
            todo = [k for k in keys if k[1] not in known or known[k[1]][1] != k[2] or not known[k[1]][2]]
            if not todo:
                continue
            data = dict(_q(*_ids_in("id", [k[0] for k in todo], f"SELECT id, data FROM {ST} WHERE ")))
            rows = [(k[0], k[1], data[k[0]], k[2], k[3], known.get(k[1], ("",))[0]) for k in todo]
            chunk = [(sid, json.loads(d), core_id or "") for _, sid, d, _, _, core_id in rows]
            with transaction.atomic():
                core = handler(chunk)
                _source_records_upsert(
                    self.conn, entity, [(sid, str(core.get(sid, "")), h, nk) for _, sid, _, h, nk, _ in rows]
                )
                if entity == "user":
                    self._retire_rekeyed([sid for _, sid, *_ in rows])
            self._tick(len(rows))

    def _retire_rekeyed(self, sids: list[str]) -> None:
        for new in sids:
            old = self.rekeyed.get(new)
            if old:
                SourceRecord.objects.filter(connection=self.conn, entity="user", sourced_id=old).update(
                    is_active=False, replaced_by=new, updated_at=timezone.now()
                )

    def _deactivations(self, entity: str) -> None:
        found = _deactivation_sql(self.run, entity)
        if found is None:
            return
        sql, params = found
        retired = set(self.rekeyed.values()) if entity == "user" else set()
        # Core rows that more than one sourcedId names (a re-keyed user's new enrollment,
        # the other side's agent record): one pass per entity instead of an index on
        # core ids that every mapping row of an import had to maintain. Usually few.
        shared = {
            r[0]
            for r in _q(
                f"""SELECT core_id FROM {SR} WHERE connection_id = %s AND entity = %s AND core_id <> ''
                    GROUP BY core_id HAVING COUNT(*) > 1""",
                [_conn_param(self.conn), entity],
            )
        }
        last = 0
        while True:
            rows = _q(
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
        schools = [(sid, d, core) for sid, d, core in chunk if d["type"] == "school"]
        ids = classes.schools_bulk_upsert(
            tenant=self.tenant,
            rows=[
                classes.SchoolRow(id=uuid.UUID(core) if core else None, name=d["name"], code=d["identifier"])
                for _, d, core in schools
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
                    title=d["title"],
                    kind=d["type"],
                    start_date=dt.date.fromisoformat(d["startDate"]),
                    end_date=dt.date.fromisoformat(d["endDate"]),
                )
                for _, d, core in chunk
            ],
            source=self.source,
        )
        return {sid: pk for (sid, _, _), pk in zip(chunk, ids, strict=True)}

    def _term_parents(self) -> None:
        rp = _run_param(self.run)
        rows = _q(
            f"SELECT sourced_id, ref_a FROM {ST} WHERE run_id = %s AND entity = %s AND rejected = %s AND deleted = %s",
            [rp, "academicSession", False, False],
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
        schools = self.core_ids("org", [d["org"] for _, d, _ in chunk])
        ids = classes.courses_bulk_upsert(
            tenant=self.tenant,
            rows=[
                classes.CourseRow(
                    id=uuid.UUID(core) if core else None,
                    title=d["title"],
                    code=d["courseCode"],
                    school_id=uuid.UUID(schools[d["org"]]) if d["org"] in schools else None,
                )
                for _, d, core in chunk
            ],
            source=self.source,
        )
        return {sid: pk for (sid, _, _), pk in zip(chunk, ids, strict=True)}

    def _apply_klass(self, chunk: list[tuple[str, dict[str, Any], str]]) -> dict[str, Any]:
        schools = self.core_ids("org", [d["school"] for _, d, _ in chunk])
        courses = self.core_ids("course", [d["course"] for _, d, _ in chunk])
        terms = self.core_ids("academicSession", [t for _, d, _ in chunk for t in d["terms"]])
        return classes.classes_bulk_upsert(
            tenant=self.tenant,
            kind=self.class_kind,
            issuer=self.conn.issuer,
            rows=[
                classes.ClassRow(
                    subject=sid,
                    title=d["title"],
                    code=d["classCode"],
                    school_id=uuid.UUID(schools[d["school"]]) if d["school"] in schools else None,
                    course_id=uuid.UUID(courses[d["course"]]) if d["course"] in courses else None,
                    term_ids=tuple(uuid.UUID(terms[t]) for t in d["terms"] if t in terms),
                )
                for sid, d, _ in chunk
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
                    given_name=d["givenName"],
                    family_name=d["familyName"],
                    email=d["email"],
                    is_active=d["enabledUser"] is not False,
                    previous_subject=self.rekeyed.get(sid, ""),
                )
                for sid, d, _ in chunk
            ],
        )
        return {sid: r.user_id for sid, r in results.items()}

    def _apply_role(self, chunk: list[tuple[str, dict[str, Any], str]]) -> dict[str, Any]:
        users = self.core_ids("user", [d["user"] for _, d, _ in chunk])
        schools = self.core_ids("org", [d["org"] for _, d, _ in chunk])
        rows: dict[str, accounts.RoleRow] = {}
        # A person's primary OneRoster role decides the direction of their agent links;
        # the last primary row of the chunk wins.
        primary: dict[str, str] = {}
        for sid, d, _ in chunk:
            if d["user"] not in users:
                continue
            rows[sid] = accounts.RoleRow(
                user_id=uuid.UUID(users[d["user"]]),
                role=HUB_ROLE[d["role"]],
                school_id=uuid.UUID(schools[d["org"]]) if d["org"] in schools else None,
            )
            if d.get("roleType", "primary") == "primary":
                primary[d["user"]] = d["role"]
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
        users = self.core_ids("user", [d["user"] for _, d, _ in chunk])
        klasses = self.core_ids("class", [d["class"] for _, d, _ in chunk])
        keep = [(sid, d) for sid, d, _ in chunk if d["user"] in users and d["class"] in klasses]
        ids = (
            classes.enrollments_bulk_upsert(
                tenant=self.tenant,
                rows=[
                    classes.EnrollmentRow(
                        class_id=uuid.UUID(klasses[d["class"]]),
                        user_id=uuid.UUID(users[d["user"]]),
                        role=HUB_ROLE[d["role"]],
                        is_primary=bool(d["primary"]),
                        begin_date=dt.date.fromisoformat(d["beginDate"]) if d["beginDate"] else None,
                        end_date=dt.date.fromisoformat(d["endDate"]) if d["endDate"] else None,
                    )
                    for _, d in keep
                ],
                source=self.source,
            )
            if keep
            else []
        )
        return {sid: pk for (sid, _), pk in zip(keep, ids, strict=True)}

    def _apply_agent(self, chunk: list[tuple[str, dict[str, Any], str]]) -> dict[str, Any]:
        people = [p for _, d, _ in chunk for p in (d["user"], d["agent"])]
        users = self.core_ids("user", people)
        hints = dict(
            SourceRecord.objects.filter(
                connection=self.conn, entity="user", sourced_id__in=set(people)
            ).values_list("sourced_id", "hint")
        )
        pairs: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}
        for sid, d, _ in chunk:
            user, agent = d["user"], d["agent"]
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
    conn: RosterConnection, entity: str, rows: list[tuple[str, str, str, str]]
) -> None:
    """Record what was applied: (sourcedId, core id, hash, natural key) -> active."""
    now = timezone.now()
    bulk_write(
        SourceRecord,
        [
            SourceRecord(
                connection=conn,
                entity=entity,
                sourced_id=sid,
                core_id=core,
                hash=content_hash,
                natural_key=natural_key,
                is_active=True,
                replaced_by="",
                updated_at=now,
            )
            for sid, core, content_hash, natural_key in rows
        ],
        unique_fields=_MAPPING_KEY,
        update_fields=_MAPPING_UPDATE,
    )


# The mapping row's natural key, and what an apply sets on a row already there: every
# field but the key and the user's primary-role hint (set by the role pass).
_MAPPING_KEY = ["connection", "entity", "sourced_id"]
_MAPPING_UPDATE = [
    f.name
    for f in SourceRecord._meta.concrete_fields
    if not f.primary_key and f.name not in (*_MAPPING_KEY, "hint")
]


def staging_clear(run: SyncRun) -> None:
    """Drop the run's staged rows.

    On PostgreSQL, when no other run has rows staged, TRUNCATE: DELETE left every row
    of a district behind as a dead tuple until autovacuum came, and the next run's
    keyset scans and plans waded through them (a tenth of a no-change re-sync). The
    table lock, taken without waiting, makes the check and the TRUNCATE one step; a
    run staging at that moment holds its own lock, and then we DELETE as before."""
    if db.vendor == "postgresql":
        try:
            with transaction.atomic(), db.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {ST} IN ACCESS EXCLUSIVE MODE NOWAIT")
                cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {ST} WHERE run_id <> %s)", [run.pk])
                if not cursor.fetchone()[0]:
                    cursor.execute(f"TRUNCATE {ST}")
                    return
        except OperationalError:  # another run holds the table right now
            pass
    StagedRecord.objects.filter(run=run).delete()
