"""Plain values that cross the lti_advantage door (api.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    """A gradable resource link: the core activity and its platform column."""

    line_item_id: uuid.UUID
    activity_id: uuid.UUID
    label: str
    # The platform's line item URL; empty until found or created there.
    line_item_url: str


@dataclass(frozen=True)
class SyncRef:
    id: uuid.UUID
    status: str
    created: bool
