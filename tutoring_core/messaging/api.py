"""The door other apps use for session notices and reminders (issue 12).

Scheduling calls ``session_changed`` inside its booking transactions; everything
else here is for tasks, the admin and tests.
"""

from __future__ import annotations

from tutoring_core.messaging.delivery import (
    NotificationRetry,
    notification_deliver,
    notifications_sweep,
    reminders_run,
)
from tutoring_core.messaging.models import NotificationKind, NotificationStatus
from tutoring_core.messaging.services import people_concerned, session_changed

__all__ = [
    "NotificationKind",
    "NotificationRetry",
    "NotificationStatus",
    "notification_deliver",
    "notifications_sweep",
    "people_concerned",
    "reminders_run",
    "session_changed",
]
