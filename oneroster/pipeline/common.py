# names only; every value is a bound parameter.
"""What every stage of the pipeline shares: the names of its two tables, small SQL
helpers over them, the progress callback and the shape of the counts."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db import connection as db

from oneroster.models import RosterConnection, SourceRecord, StagedRecord, SyncRun
from oneroster.protocol.records import ENTITIES
from tutoring_core.bulk_write import statistics_refresh_grown
from tutoring_core.classes import api as classes

ProgressFn = Callable[[str, int, int], None]

# The staging table (one row per fetched record of a run) and the mapping table (what
# the hub last applied per connection, entity and sourcedId).
STAGED = StagedRecord._meta.db_table
MAPPING = SourceRecord._meta.db_table
ACTIONS = ("created", "updated", "deactivated", "unchanged", "rejected")


class SyncAborted(Exception):
    """The run cannot go on (bad source, validation failed); nothing was applied."""


def empty_counts() -> dict[str, dict[str, int]]:
    return {entity: dict.fromkeys(ACTIONS, 0) for entity in ENTITIES}


def stored_run_id(run: SyncRun) -> Any:
    """The run's id as the staging table's run column stores it."""
    return run.pk.hex if db.vendor == "sqlite" else run.pk


def stored_connection_id(conn: RosterConnection) -> Any:
    """The connection's id as the mapping table's connection column stores it."""
    return conn.pk.hex if db.vendor == "sqlite" else conn.pk


def fetch_rows(sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
    """Run one SELECT over the pipeline's tables; its rows."""
    with db.cursor() as cursor:
        cursor.execute(sql, list(params))
        return list(cursor.fetchall())


def execute(sql: str, params: Iterable[Any]) -> int:
    """Run one statement that writes the pipeline's tables; the rows it touched."""
    with db.cursor() as cursor:
        cursor.execute(sql, list(params))
        return int(cursor.rowcount)


def ids_in(column: str, ids: list[Any], prefix: str) -> tuple[str, list[Any]]:
    """``prefix`` + a condition that ``column`` is one of ``ids``, and its parameters."""
    # PostgreSQL: one array parameter instead of thousands of placeholders to parse.
    if db.vendor == "postgresql":
        return f"{prefix}{column} = ANY(%s)", [ids]
    return f"{prefix}{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


# Only the columns the planner filters and joins on: sampling the wide ``data`` and
# ``location`` text made up most of each ANALYZE's time.
_ANALYZED_STAGE_COLUMNS = ", ".join(
    str(StagedRecord._meta.get_field(name).column)  # type: ignore[union-attr]
    for name in ("id", "run", "entity", "sourced_id", "deleted", "rejected", "natural_key", "ref_a", "ref_b")
)


def analyze(*, mapping: bool = True) -> None:
    """Refresh PostgreSQL's statistics on the staging and (``mapping``) mapping tables.

    Both change by hundreds of thousands of rows within one run, faster than
    autovacuum notices; with stale statistics the planner picks nested loops for
    the anti-joins below and a 20-second diff takes 20 minutes. The staged rows are
    new in every run; the mapping table only changes when a run applies, and a run
    that applied many rows analyzes it before it ends (Applier.apply)."""
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute(f"ANALYZE {STAGED} ({_ANALYZED_STAGE_COLUMNS})")
            if mapping:
                cursor.execute(f"ANALYZE {MAPPING}")


def analyze_growing() -> list[str]:
    """Refresh the statistics of the mapping table and (through the core's door) of the
    core's roster tables that a large import has outgrown: statistics that still say
    "empty" make the planner scan whole tables per chunk. The tables analyzed."""
    return [*statistics_refresh_grown([SourceRecord]), *classes.roster_statistics_refresh()]
