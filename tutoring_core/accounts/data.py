"""Plain values that cross the accounts door (api.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


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
class TenantInfo:
    id: uuid.UUID
    slug: str
    name: str
    time_zone: str


@dataclass(frozen=True)
class RowsQuery:
    """Rows a caller selects in SQL, for the set-based bulk writes on PostgreSQL
    (``*_bulk_upsert_query``): ``sql`` is one SELECT with the named columns the
    function documents, ``params`` its bound parameters. The rows never pass
    through Python; each carries a caller's ``key`` (bigint) that the function
    pairs with the core id it wrote, in the caller's result table."""

    sql: str
    params: tuple[Any, ...] = ()
