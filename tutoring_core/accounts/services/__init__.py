"""Writes for tenants, people, identities, roles and the audit log, one module per
concern; the set-based roster writes are in tutoring_core/accounts/bulk.py."""

from __future__ import annotations

from tutoring_core.accounts.services.audit import audit_record
from tutoring_core.accounts.services.people import (
    _apply_profile,
    _username_for,
    identity_link,
    person_resolve,
    users_merge,
)
from tutoring_core.accounts.services.roles import guardian_link, role_assign
from tutoring_core.accounts.services.tenants import (
    SetPasswordLink,
    district_admin_ensure,
    set_password_link_issue,
    tenant_create,
)

__all__ = [
    "SetPasswordLink",
    "_apply_profile",
    "_username_for",
    "audit_record",
    "district_admin_ensure",
    "guardian_link",
    "identity_link",
    "person_resolve",
    "role_assign",
    "set_password_link_issue",
    "tenant_create",
    "users_merge",
]
