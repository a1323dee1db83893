"""The door other apps use to record results and to work the outbox.

Producers (a teacher's score entry, SCORM) call ``result_record``; a video room hands each
participant's attendance to ``attendance_record`` and a tutor's correction to
``attendance_correct``.
Integrations that own an outbound channel register a notifier for their
destination kind, attach destinations to activities, then claim and settle
outbox entries.
"""

from __future__ import annotations

from tutoring_core.progress.attendance import (
    attendance_correct,
    attendance_for_session,
    attendance_record,
    attendance_summaries,
)
from tutoring_core.progress.data import (
    ActivityRef,
    AttendanceFacts,
    AttendanceRecord,
    AttendanceSummary,
    LatestResult,
    OutboxItem,
    Placeable,
    RecordedResult,
)
from tutoring_core.progress.errors import ProgressError
from tutoring_core.progress.models import (
    ActivityProgress,
    AttendanceSource,
    GradingProgress,
    OutboxStatus,
    ResultSource,
)
from tutoring_core.progress.placeables import placeable_get, placeable_register, placeables_for_class
from tutoring_core.progress.selectors import activities_for_class, activity_get, latest_results, outbox_counts
from tutoring_core.progress.services import (
    activity_upsert,
    destination_attach,
    outbox_channels_of,
    outbox_claim,
    outbox_due,
    outbox_due_channels,
    outbox_lease,
    outbox_mark_delivered,
    outbox_mark_failed,
    outbox_mark_retry,
    outbox_next_due,
    outbox_register_notifier,
    outbox_release,
    outbox_requeue,
    outbox_set_channel,
    outbox_unrouted_keys,
    result_record,
)

__all__ = [
    "ActivityProgress",
    "ActivityRef",
    "AttendanceFacts",
    "AttendanceRecord",
    "AttendanceSource",
    "AttendanceSummary",
    "GradingProgress",
    "LatestResult",
    "OutboxItem",
    "OutboxStatus",
    "Placeable",
    "ProgressError",
    "RecordedResult",
    "ResultSource",
    "activities_for_class",
    "activity_get",
    "activity_upsert",
    "attendance_correct",
    "attendance_for_session",
    "attendance_record",
    "attendance_summaries",
    "destination_attach",
    "latest_results",
    "outbox_channels_of",
    "outbox_claim",
    "outbox_counts",
    "outbox_due",
    "outbox_due_channels",
    "outbox_lease",
    "outbox_mark_delivered",
    "outbox_mark_failed",
    "outbox_mark_retry",
    "outbox_next_due",
    "outbox_register_notifier",
    "outbox_release",
    "outbox_requeue",
    "outbox_set_channel",
    "outbox_unrouted_keys",
    "placeable_get",
    "placeable_register",
    "placeables_for_class",
    "result_record",
]
