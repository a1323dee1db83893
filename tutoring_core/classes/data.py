from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class ClassKeyRef:
    """How another system names a class: an LTI context, a roster sourcedId."""

    kind: str
    issuer: str
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
