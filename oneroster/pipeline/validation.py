# ruff: noqa: S608 - the SQL here is built from model table names and fixed column
# names only; every value is a bound parameter.
"""Validate: the checks that need other rows (duplicate sourcedIds, references that
name nothing), set-based over the staged rows. A row that refers to a rejected row is
rejected too (entities are checked in dependency order)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.db import connection as db
from django.db import transaction

from oneroster.models import SourceRecord, SyncRun
from oneroster.pipeline.common import (
    MAPPING,
    STAGED,
    analyze,
    execute,
    fetch_rows,
    stored_connection_id,
    stored_run_id,
)
from oneroster.pipeline.staging import Stager
from oneroster.protocol.records import ENTITIES, REF_NAMES, REF_TARGETS, RowError

# Staged rows read back per query by the class-terms check.
READ_CHUNK = 2000


def _reject(
    run: SyncRun, stager: Stager, rows: list[tuple[Any, ...]], entity: str, message: Callable[[Any], str]
) -> None:
    """rows: (staged id, location, line, sourced_id, value)."""
    if not rows:
        return
    ids = [r[0] for r in rows]
    for start in range(0, len(ids), 900):
        part = ids[start : start + 900]
        execute(
            f"UPDATE {STAGED} SET rejected = %s WHERE id IN ({', '.join(['%s'] * len(part))})", [True, *part]
        )
    stager.error_rows(RowError(entity, r[1], r[2], r[3], message(r[4])) for r in rows)


def validate(run: SyncRun, stager: Stager) -> None:
    """Checks that need other rows: duplicate sourcedIds and references. A row that
    refers to a rejected row is rejected too (entities are checked in dependency order)."""
    analyze(mapping=False)
    run_id = stored_run_id(run)
    conn_id = stored_connection_id(run.connection)
    modes = run.entity_modes
    for entity in ENTITIES:
        dupes = _duplicates(run_id, entity)
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
                known_sql = f"""AND NOT EXISTS (SELECT 1 FROM {MAPPING} m WHERE m.connection_id = %s AND m.entity = %s
                                AND m.sourced_id = s.{ref_col} AND m.is_active = %s)"""
                known_params = [conn_id, target, True]
            bad = fetch_rows(
                f"""SELECT s.id, s.location, s.line, s.sourced_id, s.{ref_col} FROM {STAGED} s
                    WHERE s.run_id = %s AND s.entity = %s AND s.rejected = %s AND s.deleted = %s AND s.{ref_col} <> ''
                    AND NOT EXISTS (SELECT 1 FROM {STAGED} t WHERE t.run_id = s.run_id AND t.entity = %s
                                    AND t.sourced_id = s.{ref_col} AND t.rejected = %s AND t.deleted = %s)
                    {known_sql}""",
                [run_id, entity, False, False, target, False, False, *known_params],
            )

            def missing(value: Any, name: str = name, target: str = target) -> str:
                return f"{name} {value!r} does not name a valid {target} in this sync"

            _reject(run, stager, bad, entity, missing)
        if entity == "class":
            _validate_class_terms(run, stager)
    stager.flush()


def _duplicates(run_id: Any, entity: str) -> list[tuple[Any, ...]]:
    """Staged rows of ``entity`` whose sourcedId an earlier row of the run already has."""
    sql = f"""WITH d AS MATERIALIZED (
                  SELECT sourced_id, MIN(id) AS first_id FROM {STAGED} WHERE run_id = %s AND entity = %s
                  GROUP BY sourced_id HAVING COUNT(*) > 1)
              SELECT s.id, s.location, s.line, s.sourced_id, f.line FROM d
              JOIN LATERAL (SELECT s.id, s.location, s.line, s.sourced_id FROM {STAGED} s WHERE s.run_id = %s
                            AND s.entity = %s AND s.sourced_id = d.sourced_id AND s.id <> d.first_id OFFSET 0) s ON TRUE
              JOIN LATERAL (SELECT f.line FROM {STAGED} f WHERE f.id = d.first_id OFFSET 0) f ON TRUE"""
    params = [run_id, entity, run_id, entity]
    if db.vendor != "postgresql":
        return fetch_rows(
            f"""SELECT s.id, s.location, s.line, s.sourced_id, f.line FROM {STAGED} s
                JOIN (SELECT sourced_id, MIN(id) AS first_id FROM {STAGED} WHERE run_id = %s AND entity = %s
                      GROUP BY sourced_id HAVING COUNT(*) > 1) d ON d.sourced_id = s.sourced_id
                JOIN {STAGED} f ON f.id = d.first_id
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
    run_id = stored_run_id(run)
    sessions = {
        r[0]
        for r in fetch_rows(
            f"SELECT sourced_id FROM {STAGED} WHERE run_id = %s AND entity = %s AND rejected = %s AND deleted = %s",
            [run_id, "academicSession", False, False],
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
        rows = fetch_rows(
            f"""SELECT id, location, line, sourced_id, data FROM {STAGED} WHERE run_id = %s AND entity = %s
                AND rejected = %s AND deleted = %s AND id > %s ORDER BY id LIMIT {READ_CHUNK}""",
            [run_id, "class", False, False, last],
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
