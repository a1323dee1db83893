from __future__ import annotations

import datetime as dt
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
    role_label: str = ""
    email: str = ""
    # Where the enrollment came from (classes.api.Source): an LMS class-list sync
    # only retires the enrollments it made.
    source: str = ""


# --- Bulk roster writes (classes.api *_bulk_upsert) --------------------------------------
# Schools, terms and courses have no key table in the core: the caller keeps its own
# mapping (source id -> core id) and passes ``id`` for rows it already knows. Classes
# are keyed by ClassKey (kind, issuer, subject), enrollments by (class, user, role).


@dataclass(frozen=True)
class SchoolRow:
    id: uuid.UUID | None
    name: str
    code: str = ""


@dataclass(frozen=True)
class TermRow:
    id: uuid.UUID | None
    title: str
    kind: str
    start_date: dt.date
    end_date: dt.date


@dataclass(frozen=True)
class CourseRow:
    id: uuid.UUID | None
    title: str
    code: str = ""
    school_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ClassRow:
    subject: str
    title: str
    code: str = ""
    school_id: uuid.UUID | None = None
    course_id: uuid.UUID | None = None
    term_ids: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class EnrollmentRow:
    class_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    is_primary: bool = False
    begin_date: dt.date | None = None
    end_date: dt.date | None = None
