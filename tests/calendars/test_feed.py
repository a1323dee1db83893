"""The secret iCal feed: parses with icalendar, stable UIDs, SEQUENCE bumps, cancellations
as STATUS:CANCELLED, and a reset URL makes the old one 404."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from icalendar import Calendar

from tests.scheduling.factories import WED_10, World
from tutoring_core.accounts.models import AuditLog
from tutoring_core.calendars import services
from tutoring_core.calendars.models import CalDAVAccount, CalendarFeed
from tutoring_core.scheduling import services as scheduling

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
H = dt.timedelta(hours=1)


def _feed(client: Client, token: str) -> list[Any]:
    response = client.get(f"/calendar/{token}.ics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert response["Cache-Control"] == "private, max-age=300"
    cal = Calendar.from_ical(response.content)
    assert str(cal["version"]) == "2.0"
    return sorted(cal.walk("VEVENT"), key=lambda e: e.decoded("dtstart"))


def test_feed_follows_the_session_through_its_changes(world: World, client: Client) -> None:
    session = scheduling.booking_create(
        actor=world.student, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
    )
    other = scheduling.booking_create(
        actor=world.admin,
        tutor=world.tutor,
        student=world.other_student,
        start=WED_10 + 3 * H,
        duration_min=30,
    )
    tutor_token = services.feed_token_of(world.tutor)
    student_token = services.feed_token_of(world.student)
    guardian_token = services.feed_token_of(world.guardian)
    uid = f"{session.pk}@localhost"

    (event,) = _feed(client, student_token)
    assert (str(event["uid"]), int(event["sequence"]), str(event["status"])) == (uid, 0, "CONFIRMED")
    assert (event.decoded("dtstart"), event.decoded("dtend")) == (WED_10, WED_10 + H)
    assert [str(e["uid"]) for e in _feed(client, tutor_token)] == [uid, f"{other.pk}@localhost"]
    # A guardian sees their ward's sessions, not other children's.
    assert [str(e["uid"]) for e in _feed(client, guardian_token)] == [uid]

    scheduling.booking_reschedule(actor=world.tutor, session_id=session.pk, start=WED_10 + H)
    (event,) = _feed(client, student_token)
    assert (str(event["uid"]), int(event["sequence"]), event.decoded("dtstart")) == (uid, 1, WED_10 + H)

    scheduling.booking_cancel(actor=world.tutor, session_id=session.pk)
    (event,) = _feed(client, student_token)
    assert (str(event["uid"]), int(event["sequence"]), str(event["status"])) == (uid, 2, "CANCELLED")


def test_token_is_high_entropy_and_stored_as_its_hash(world: World) -> None:
    token = services.feed_token_of(world.student)
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    feed = CalendarFeed.objects.get(person=world.student)
    assert feed.token_hash == hashlib.sha256(token.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT token FROM calendars_calendarfeed WHERE id = %s", [feed.pk.hex])
        (stored,) = cursor.fetchone()
    assert token not in stored  # encrypted at rest (Fernet)
    assert services.feed_token_of(world.student) == token  # the same until reset


@pytest.mark.parametrize("token", ["nope", "x" * 43, "x" * 500, "%00"])
def test_unknown_tokens_404(world: World, client: Client, token: str) -> None:
    services.feed_token_of(world.student)
    assert client.get(f"/calendar/{token}.ics").status_code == 404


def test_an_inactive_person_has_no_feed(world: World, client: Client) -> None:
    token = services.feed_token_of(world.student)
    world.student.is_active = False
    world.student.save(update_fields=["is_active"])
    assert client.get(f"/calendar/{token}.ics").status_code == 404


def test_reset_from_the_page_makes_the_old_url_404(world: World, client: Client) -> None:
    client.force_login(world.student)
    page = client.get(reverse("calendars:settings"))
    assert page.status_code == 200
    old = services.feed_token_of(world.student)
    assert f"http://testserver/calendar/{old}.ics" in page.content.decode()

    response = client.post(reverse("calendars:settings"), {"action": "reset"})
    assert response.status_code == 302
    new = services.feed_token_of(world.student)
    assert new != old
    assert client.get(f"/calendar/{old}.ics").status_code == 404
    assert client.get(f"/calendar/{new}.ics").status_code == 200
    assert AuditLog.objects.filter(action="calendars.feed.reset", actor=world.student).count() == 1
    page = client.get(reverse("calendars:settings")).content.decode()
    assert f"/calendar/{new}.ics" in page and f"/calendar/{old}.ics" not in page


def test_the_settings_page_needs_a_sign_in(client: Client, world: World) -> None:
    response = client.get(reverse("calendars:settings"))
    assert response.status_code == 302 and "/signin/" in response["Location"]
    assert CalendarFeed.objects.count() == 0


@pytest.mark.parametrize(
    ("form", "field", "reason"),
    [
        (
            {"collection_url": "ftp://dav.example.org/cal/", "username": "u", "password": "p"},
            "collection_url",
            "Give the calendar&#x27;s address, starting with https://.",
        ),
        (
            {"collection_url": "https://dav.example.org/cal/", "username": "", "password": "p"},
            "username",
            "Give the user name (at most 200 characters).",
        ),
        (
            {"collection_url": "https://dav.example.org/cal/", "username": "u", "password": ""},
            "password",
            "Give the password.",
        ),
    ],
)
def test_caldav_form_refuses_bad_input_with_a_reason(
    world: World, client: Client, form: dict[str, str], field: str, reason: str
) -> None:
    client.force_login(world.tutor)
    response = client.post(reverse("calendars:settings"), {"action": "connect", **form})
    assert response.status_code == 400
    html = response.content.decode()
    assert f'<span id="{field}-error" role="alert">{reason}</span>' in html
    assert CalDAVAccount.objects.count() == 0


def test_caldav_password_is_encrypted_at_rest(world: World, client: Client) -> None:
    client.force_login(world.tutor)
    response = client.post(
        reverse("calendars:settings"),
        {
            "action": "connect",
            "collection_url": "https://dav.example.org/tutor/cal",
            "username": "priya",
            "password": "correct horse",
        },
    )
    assert response.status_code == 302
    account = CalDAVAccount.objects.get(person=world.tutor)
    assert (account.collection_url, account.username, account.password) == (
        "https://dav.example.org/tutor/cal/",
        "priya",
        "correct horse",
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM calendars_caldavaccount WHERE id = %s", [account.pk.hex])
        (stored,) = cursor.fetchone()
    assert "correct horse" not in stored and stored.startswith("gAAAA")
    # Saving again without a password keeps the stored one.
    client.post(
        reverse("calendars:settings"),
        {"action": "connect", "collection_url": "https://dav.example.org/tutor/cal/", "username": "p2"},
    )
    account.refresh_from_db()
    assert (account.username, account.password) == ("p2", "correct horse")
