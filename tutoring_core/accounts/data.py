"""Plain values that cross the accounts door (api.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class IdentityKey:
    """How another system names a person: (kind, issuer, subject) within a tenant."""

    kind: str
    issuer: str
    subject: str


@dataclass(frozen=True)
class LinkHint:
    """A deterministic join to an identity already known from another source.

    ``issuer=None`` matches that kind under any issuer of the tenant (an LTI
    ``lis_person_sourcedid`` names a roster sourcedId, not which roster connection).
    """

    kind: str
    subject: str
    issuer: str | None = None


@dataclass(frozen=True)
class PersonProfile:
    given_name: str = ""
    family_name: str = ""
    display_name: str = ""
    email: str = ""
    email_verified: bool = False


@dataclass(frozen=True)
class PersonResult:
    user_id: uuid.UUID
    created: bool
    # "identity" (known key), "hint:<kind>" (joined by a LinkHint), or "created".
    matched_by: str
    # Other people who might be the same (email matches): recorded, never merged.
    candidates: tuple[uuid.UUID, ...] = field(default=())


@dataclass(frozen=True)
class AuditTarget:
    """What an audit row is about, when the caller holds a door's value rather than
    the row itself (``classes.api.class_audit_target`` makes one for a ClassInfo)."""

    type: str  # the model's label, "classes.class"
    id: str
    label: str


@dataclass(frozen=True)
class TenantInfo:
    id: uuid.UUID
    slug: str
    name: str
    time_zone: str


# --- Bulk roster writes (accounts.api people_bulk_upsert, roles_bulk_assign) ----------------


@dataclass(frozen=True)
class PersonRow:
    """One person as a roster source names them, under the (kind, issuer) of the call."""

    subject: str
    given_name: str = ""
    family_name: str = ""
    email: str = ""
    is_active: bool = True
    # The subject this person had before the source re-keyed them (same issuer):
    # the new key joins that person instead of creating a stranger.
    previous_subject: str = ""


@dataclass(frozen=True)
class PersonBulkResult:
    user_id: uuid.UUID
    action: str  # "created" | "updated" | "unchanged" | "relinked"


@dataclass(frozen=True)
class RoleRow:
    """A tenant-wide (``school_id`` None) or school-wide role for one person."""

    user_id: uuid.UUID
    role: str
    school_id: uuid.UUID | None = None


# --- What the door's writes hand back (api.py audit_record, role_assign, ...) ---------------


@dataclass(frozen=True)
class AuditEntry:
    """The audit row just appended (its id orders the log)."""

    id: int
    action: str
    created_at: dt.datetime


@dataclass(frozen=True)
class RoleGrant:
    id: int
    user_id: uuid.UUID
    role: str
    school_id: uuid.UUID | None
    class_id: uuid.UUID | None
    is_active: bool
    # False when the grant was already there (perhaps reactivated).
    created: bool


@dataclass(frozen=True)
class GuardianInfo:
    guardian_id: uuid.UUID
    student_id: uuid.UUID
    relationship: str
    created: bool


@dataclass(frozen=True)
class MergeInfo:
    id: int
    kept_id: uuid.UUID
    merged_id: uuid.UUID
    # How many of each kind moved to the kept person: identities, enrollments, roles.
    moved: tuple[tuple[str, int], ...]
