"""The audit log: one append-only row per admin action, sync, delivery and sign-in."""

from __future__ import annotations

from typing import Any

from tutoring_core.accounts.data import AuditTarget
from tutoring_core.accounts.models import (
    AuditLog,
    Tenant,
    User,
)


def audit_record(
    *,
    tenant: Tenant | None,
    actor: User | None,
    action: str,
    target: Any = None,
    ip_address: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Append one audit row. ``target``: the row the action was about, or an
    AuditTarget naming it (what a caller holding a door's value passes)."""
    target_type = target_id = target_label = ""
    if isinstance(target, AuditTarget):
        target_type, target_id, target_label = target.type, target.id, target.label[:200]
    elif target is not None:
        target_type = target._meta.label_lower
        target_id = str(target.pk)
        target_label = str(target)[:200]
    entry = AuditLog(
        tenant=tenant,
        actor=actor,
        actor_label=(str(actor) if actor else "system")[:200],
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        ip_address=ip_address,
        details=details or {},
    )
    # Append-only: one INSERT (force_insert skips the UPDATE attempt a save() of a
    # row with a primary key would make).
    entry.save(force_insert=True)
    return entry
