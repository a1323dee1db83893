"""iCalendar text for tutoring sessions (RFC 5545; METHOD per RFC 5546 iTIP).

The same UID and SEQUENCE go into emails, the feed and CalDAV, so a calendar that
saw the session by one route recognises it by another.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from django.conf import settings
from icalendar import Calendar, Event, vCalAddress, vText

from tutoring_core.scheduling.data import SessionInfo

PRODID = "-//Tutoring Hub//Sessions//EN"


def session_uid(session_id: uuid.UUID) -> str:
    """Stable for the life of the session, whatever changes."""
    return f"{session_id}@{settings.CALENDARS_UID_DOMAIN}"


def _title(info: SessionInfo) -> str:
    what = info.subject or info.class_title or "Tutoring"
    return f"Tutoring: {what} with {info.tutor_name}".strip()


def session_event(info: SessionInfo, *, cancelled: bool | None = None) -> Event:
    """One VEVENT for the session as it is now (times in UTC)."""
    is_cancelled = info.cancelled if cancelled is None else cancelled
    event = Event()
    event.add("uid", session_uid(info.id))
    # DTSTAMP: when this version was made; updated_at keeps the text stable between fetches.
    event.add("dtstamp", info.updated_at.astimezone(dt.UTC))
    event.add("dtstart", info.start.astimezone(dt.UTC))
    event.add("dtend", info.end.astimezone(dt.UTC))
    event.add("sequence", info.sequence)
    event.add("summary", _title(info))
    if info.class_title:
        event.add("description", f"Class: {info.class_title}")
    event.add("status", "CANCELLED" if is_cancelled else "CONFIRMED")
    event.add("transp", "TRANSPARENT" if is_cancelled else "OPAQUE")
    if info.tutor_email:
        organizer = vCalAddress(f"mailto:{info.tutor_email}")
        organizer.params["cn"] = vText(info.tutor_name or info.tutor_email)
        event.add("organizer", organizer)
    for participant in info.participants:
        if not participant.email or (participant.status != "booked" and not is_cancelled):
            continue
        attendee = vCalAddress(f"mailto:{participant.email}")
        attendee.params["cn"] = vText(participant.name or participant.email)
        attendee.params["role"] = vText("REQ-PARTICIPANT")
        attendee.params["partstat"] = vText("ACCEPTED")
        event.add("attendee", attendee)
    return event


def calendar_text(events: Iterable[Event], *, method: str | None = None, name: str = "") -> bytes:
    """A VCALENDAR around ``events``. ``method`` (REQUEST/CANCEL) only for email
    (iTIP); CalDAV objects and feeds carry none."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method:
        cal.add("method", method)
    if name:
        cal.add("x-wr-calname", name)
    for event in events:
        cal.add_component(event)
    return cal.to_ical()


def session_invitation(info: SessionInfo) -> tuple[str, bytes]:
    """(METHOD, text) of the email attachment: REQUEST while on, CANCEL once cancelled."""
    method = "CANCEL" if info.cancelled else "REQUEST"
    return method, calendar_text([session_event(info)], method=method)
