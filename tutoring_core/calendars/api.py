"""The door other apps use for calendars: iCalendar text and CalDAV pushes (issue 12)."""

from __future__ import annotations

from tutoring_core.calendars.ics import calendar_text, session_event, session_invitation, session_uid
from tutoring_core.calendars.services import (
    CalendarError,
    caldav_account_disconnect,
    feed_text,
    feed_token_reset,
    push_deliver,
    session_push_queue,
)

__all__ = [
    "CalendarError",
    "caldav_account_disconnect",
    "calendar_text",
    "feed_text",
    "feed_token_reset",
    "push_deliver",
    "session_event",
    "session_invitation",
    "session_push_queue",
    "session_uid",
]
