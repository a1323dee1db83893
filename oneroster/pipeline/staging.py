# ruff: noqa: S608 - the SQL here is built from model table names and fixed column
# names only; every value is a bound parameter.
"""Fetch and stage: records stream from the source into the staging table (COPY on
PostgreSQL, the server storing one batch while Python parses the next), with the
row-level errors the source's reader found."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from django.db import OperationalError, transaction
from django.db import connection as db

from oneroster.models import StagedRecord, SyncError, SyncRun
from oneroster.pipeline.common import STAGED, ProgressFn, stored_run_id
from oneroster.protocol.records import TOBEDELETED, Record, RowError

logger = logging.getLogger(__name__)

# Rows sent to the staging table between progress reports (and COPY restarts).
STAGE_BATCH = 5000
MAX_STORED_ERRORS = 1000

# The staging table's columns, from the model, in the order each row is built.
STAGE_FIELDS = [f for f in StagedRecord._meta.concrete_fields if not f.primary_key]
STAGE_COLUMNS = ", ".join(str(f.column) for f in STAGE_FIELDS)
_STAGE_ATTNAMES = [f.attname for f in STAGE_FIELDS]


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
        self._run_value = stored_run_id(self.run)
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
        values = {
            "run_id": self._run_value,
            "entity": record.entity,
            "sourced_id": record.sourced_id[:255],
            "deleted": record.status == TOBEDELETED,
            "location": record.location[:300],
            "line": record.line,
            "hash": record.content_hash(payload),
            "natural_key": record.natural_key()[:255],
            "ref_a": ref_a[:255],
            "ref_b": ref_b[:255],
            "data": payload,
            "rejected": bool(record.errors),
        }
        row = tuple(values[name] for name in _STAGE_ATTNAMES)
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
        self._copy = stack.enter_context(cursor.cursor.copy(f"COPY {STAGED} ({STAGE_COLUMNS}) FROM STDIN"))
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
            marks = ", ".join(["%s"] * len(STAGE_FIELDS))
            with db.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {STAGED} ({STAGE_COLUMNS}) VALUES ({marks})", self._buffer)
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
                cursor.execute(f"LOCK TABLE {STAGED} IN ACCESS EXCLUSIVE MODE NOWAIT")
                cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {STAGED} WHERE run_id <> %s)", [run.pk])
                if not cursor.fetchone()[0]:
                    cursor.execute(f"TRUNCATE {STAGED}")
                    return
        except OperationalError:  # another run holds the table right now
            pass
    StagedRecord.objects.filter(run=run).delete()
