# ruff: noqa: S608 - the SQL here is built from model table names and fixed column
# names only; every value is a bound parameter.
"""Diff: what a run would change, set-based over the staged rows and the mapping
table: the counts (the dry-run report and the guard's input), the re-keyed people, and
the mapping rows a run deactivates."""

from __future__ import annotations

from typing import Any

from oneroster.models import SyncRun
from oneroster.pipeline.common import (
    MAPPING,
    STAGED,
    analyze,
    empty_counts,
    fetch_rows,
    stored_connection_id,
    stored_run_id,
)
from oneroster.protocol.records import ENTITIES


def deactivation_query(run: SyncRun, entity: str) -> tuple[str, list[Any]] | None:
    """The mapping rows this run deactivates for ``entity`` (FROM ... WHERE, alias m)."""
    conn_id, run_id = stored_connection_id(run.connection), stored_run_id(run)
    mode = run.entity_modes.get(entity, "absent")
    if mode == "bulk" and run.mode == SyncRun.Mode.FULL:
        # Deactivation by absence: only for a complete snapshot of this entity.
        return (
            f"""FROM {MAPPING} m WHERE m.connection_id = %s AND m.entity = %s AND m.is_active = %s
                AND NOT EXISTS (SELECT 1 FROM {STAGED} s WHERE s.run_id = %s AND s.entity = m.entity
                                AND s.sourced_id = m.sourced_id AND s.deleted = %s)""",
            [conn_id, entity, True, run_id, False],
        )
    if mode in ("delta", "bulk"):
        return (
            f"""FROM {MAPPING} m WHERE m.connection_id = %s AND m.entity = %s AND m.is_active = %s
                AND EXISTS (SELECT 1 FROM {STAGED} s WHERE s.run_id = %s AND s.entity = m.entity
                            AND s.sourced_id = m.sourced_id AND s.deleted = %s AND s.rejected = %s)""",
            [conn_id, entity, True, run_id, True, False],
        )
    return None


def rekeys(run: SyncRun) -> dict[str, str]:
    """New user sourcedId -> the old one it replaces: same natural key (state id),
    the old key no longer live in this run. Ambiguous matches are not re-keyed."""
    conn_id, run_id = stored_connection_id(run.connection), stored_run_id(run)
    rows = fetch_rows(
        f"""SELECT s.sourced_id, m2.sourced_id FROM {STAGED} s
            JOIN {MAPPING} m2 ON m2.connection_id = %s AND m2.entity = 'user' AND m2.natural_key = s.natural_key
                         AND m2.natural_key <> '' AND m2.is_active = %s
            WHERE s.run_id = %s AND s.entity = 'user' AND s.rejected = %s AND s.deleted = %s AND s.natural_key <> ''
            AND NOT EXISTS (SELECT 1 FROM {MAPPING} m WHERE m.connection_id = %s AND m.entity = 'user'
                            AND m.sourced_id = s.sourced_id)
            AND NOT EXISTS (SELECT 1 FROM {STAGED} t WHERE t.run_id = s.run_id AND t.entity = 'user'
                            AND t.sourced_id = m2.sourced_id AND t.deleted = %s)""",
        [conn_id, True, run_id, False, False, conn_id, False],
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
    counts = empty_counts()
    conn_id, run_id = stored_connection_id(run.connection), stored_run_id(run)
    for entity in ENTITIES:
        # One pass over the entity's staged rows for four counts. A "live" row is one
        # apply considers (not rejected, not a tobedeleted); it is applied when it is
        # new, its hash differs, or its mapping row is inactive (as apply's own test).
        live = "s.rejected = %s AND s.deleted = %s"
        row = fetch_rows(
            f"""SELECT SUM(CASE WHEN {live} AND m.id IS NULL THEN 1 ELSE 0 END),
                       SUM(CASE WHEN {live} AND m.id IS NOT NULL AND (m.hash <> s.hash OR m.is_active = %s)
                           THEN 1 ELSE 0 END),
                       SUM(CASE WHEN {live} AND m.hash = s.hash AND m.is_active = %s THEN 1 ELSE 0 END),
                       SUM(CASE WHEN s.rejected = %s THEN 1 ELSE 0 END)
                FROM {STAGED} s LEFT JOIN {MAPPING} m ON m.connection_id = %s AND m.entity = s.entity
                     AND m.sourced_id = s.sourced_id
                WHERE s.run_id = %s AND s.entity = %s""",
            [False, False, False, False, False, False, False, True, True, conn_id, run_id, entity],
        )[0]
        for action, value in zip(("created", "updated", "unchanged", "rejected"), row, strict=True):
            counts[entity][action] = int(value or 0)
        deactivation = deactivation_query(run, entity)
        if deactivation is not None:
            sql, params = deactivation
            n = fetch_rows(f"SELECT COUNT(*) {sql}", params)[0][0]
            if entity == "user":
                n -= len(set(rekeyed.values()))
            counts[entity]["deactivated"] = max(0, n)
    return counts
