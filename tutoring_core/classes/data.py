from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class ClassKeyRef:
    """How another system names a class: an LTI context, a roster sourcedId.

    ``issuer=None`` is allowed only for lookups (``link_to``): it matches that kind
    under any issuer of the tenant, when exactly one class has that subject (an LTI
    ``course_section_sourcedid`` names a roster sourcedId, not which connection).
    """

    kind: str
    issuer: str | None
    subject: str


@dataclass(frozen=True)
class UpsertResult:
    id: uuid.UUID
    created: bool
    changed: bool


@dataclass(frozen=True)
class ClassSummary:
    id: uuid.UUID
    title: str
    code: str
    school: str
    role: str
    is_active: bool


@dataclass(frozen=True)
class ClassInfo:
    id: uuid.UUID
    tenant_id: uuid.UUID
    title: str
    code: str
    is_active: bool


@dataclass(frozen=True)
class MemberInfo:
    """One active member of a class as a page shows them."""

    user_id: uuid.UUID
    name: str
    role: str
