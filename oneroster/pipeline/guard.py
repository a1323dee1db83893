"""Guard: a full sync that would deactivate more than the connection's share of any
entity stops for an admin (a truncated export must not wipe a district)."""

from __future__ import annotations

from typing import Any

from oneroster.models import SourceRecord, SyncRun
from oneroster.protocol.records import ENTITIES


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
