"""The audit log: one append-only row per admin action, sync, delivery and sign-in."""

from __future__ import annotations

from typing import Any

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
    target_type = target_id = target_label = ""
    if target is not None:
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
