"""Plain values that cross the progress door (api.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class ActivityRef:
    id: uuid.UUID
    tenant_id: uuid.UUID
    class_id: uuid.UUID
    key: str
    title: str
    score_maximum: Decimal
    created: bool = False


@dataclass(frozen=True)
class RecordedResult:
    id: uuid.UUID
    outbox_entry_ids: tuple[uuid.UUID, ...]
    superseded_entry_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class OutboxItem:
    """A claimed outbox entry: everything an integration needs to send it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    destination_kind: str
    destination_key: str
    user_id: uuid.UUID
    attempts: int
    result_id: uuid.UUID
    activity_id: uuid.UUID
    score_given: Decimal | None
    score_maximum: Decimal
    activity_progress: str
    grading_progress: str
    comment: str
    source: str
    recorded_at: dt.datetime
    # When this claim's lease ends; a worker that outlives it must not record an outcome.
    lease_expires_at: dt.datetime
    # The integration's pipe the entry travels through (see ResultDestination.channel).
    channel: str = ""


@dataclass(frozen=True)
class LatestResult:
    user_id: uuid.UUID
    activity_id: uuid.UUID
    score_given: Decimal | None
    score_maximum: Decimal
    comment: str
    recorded_at: dt.datetime
    source: str
    delivery_status: str  # the worst state among its outbox entries, "" when it has none


@dataclass(frozen=True)
class Placeable:
    """Something of a class an LMS can place (deep linking) and the placed link opens,
    offered by an integration through :func:`tutoring_core.progress.placeables.placeable_register`."""

    key: str  # "<prefix>:<ref>", stable: the placed link carries it
    title: str
    kind: str  # what the teacher is told it is ("SCORM course")
    path: str  # the app page a launch of the placed link opens
    # When gradable, its results are recorded under the progress activity ``activity_key``
    # in this class, so a placement with a line item attaches the LMS column to that key.
    gradable: bool = False
    activity_key: str = ""


@dataclass(frozen=True)
class AttendanceFacts:
    """What a room worked out for one participant of one session (video hands these in)."""

    tenant_id: uuid.UUID
    session_id: uuid.UUID
    class_id: uuid.UUID | None
    person_id: uuid.UUID
    session_start: dt.datetime
    session_end: dt.datetime
    outcome: str  # attended | late | left_early | no_show
    first_joined_at: dt.datetime | None
    last_left_at: dt.datetime | None
    minutes_present: int
    late_minutes: int
    left_early_minutes: int
    source: str  # signaling | provider_webhook | join_page


@dataclass(frozen=True)
class AttendanceRecord:
    id: uuid.UUID
    session_id: uuid.UUID
    person_id: uuid.UUID
    outcome: str
    first_joined_at: dt.datetime | None
    last_left_at: dt.datetime | None
    minutes_present: int
    late_minutes: int
    left_early_minutes: int
    source: str
    corrected_by_id: uuid.UUID | None
    corrected_at: dt.datetime | None
    version: int


@dataclass(frozen=True)
class AttendanceSummary:
    """One person's sessions by outcome (a class's, or all of them)."""

    person_id: uuid.UUID
    attended: int = 0
    late: int = 0
    left_early: int = 0
    no_show: int = 0

    @property
    def sessions(self) -> int:
        return self.attended + self.late + self.left_early + self.no_show
