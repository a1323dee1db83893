"""CalDAV push into a real Radicale 3.9 on loopback: a booking lands in the tutor's
calendar, a reschedule updates it (If-Match on the ETag), a cancel marks it CANCELLED;
bad credentials fail for good, an unreachable server is retried then given up."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from icalendar import Calendar

from tests.peers.radicale import RadicaleServer, free_port
from tests.scheduling.factories import WED_10, World
from tutoring_core.calendars import services
from tutoring_core.calendars.models import CalDAVAccount, CalendarObject, CalendarPush
from tutoring_core.calendars.tasks import calendar_push
from tutoring_core.scheduling import services as scheduling

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
H = dt.timedelta(hours=1)
USER, PASSWORD = "priya", "radicale-pw-1"


@pytest.fixture(scope="module")
def radicale() -> Iterator[RadicaleServer]:
    with RadicaleServer(users={USER: PASSWORD, "someone": "else"}) as server:
        yield server


@pytest.fixture
def collection(radicale: RadicaleServer, settings: Any) -> str:
    settings.CALENDARS_CALDAV_ALLOW_HTTP = True
    return radicale.make_calendar(USER, PASSWORD, f"sessions-{free_port()}")


def _events(radicale: RadicaleServer, collection: str) -> dict[str, Any]:
    found = {}
    for href, text in radicale.objects(collection, USER, PASSWORD).items():
        (event,) = Calendar.from_ical(text).walk("VEVENT")
        found[href] = event
    return found


def _book(world: World) -> Any:
    return scheduling.booking_create(
        actor=world.student, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
    )


def test_book_reschedule_cancel_land_in_radicale(
    world: World,
    radicale: RadicaleServer,
    collection: str,
    eager: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    services.caldav_account_set(
        person=world.tutor, collection_url=collection, username=USER, password=PASSWORD
    )
    with django_capture_on_commit_callbacks(execute=True):
        session = _book(world)
    uid = f"{session.pk}@localhost"
    href = f"{collection.removeprefix(radicale.base_url)}{session.pk}.ics"
    events = _events(radicale, collection)
    assert list(events) == [href]
    event = events[href]
    assert (str(event["uid"]), int(event["sequence"]), str(event["status"])) == (uid, 0, "CONFIRMED")
    assert (event.decoded("dtstart"), event.decoded("dtend")) == (WED_10, WED_10 + H)
    obj = CalendarObject.objects.get(session_id=session.pk)
    assert (
        obj.etag == requests.head(radicale.base_url + href, auth=(USER, PASSWORD), timeout=10).headers["ETag"]
    )
    assert list(CalendarPush.objects.values_list("status", "attempts")) == [("done", 1)]

    with django_capture_on_commit_callbacks(execute=True):
        scheduling.booking_reschedule(actor=world.tutor, session_id=session.pk, start=WED_10 + 2 * H)
    event = _events(radicale, collection)[href]
    assert (int(event["sequence"]), event.decoded("dtstart")) == (1, WED_10 + 2 * H)

    with django_capture_on_commit_callbacks(execute=True):
        scheduling.booking_cancel(actor=world.tutor, session_id=session.pk)
    events = _events(radicale, collection)
    assert list(events) == [href]
    assert (int(events[href]["sequence"]), str(events[href]["status"])) == (2, "CANCELLED")
    assert sorted(CalendarPush.objects.values_list("change", "status")) == [
        ("booked", "done"),
        ("cancelled", "done"),
        ("rescheduled", "done"),
    ]
    account = CalDAVAccount.objects.get()
    assert (account.last_error, account.last_pushed_at) == ("", dt.datetime(2027, 3, 1, 12, tzinfo=dt.UTC))


def test_an_event_edited_in_the_calendar_is_overwritten_by_the_session(
    world: World,
    radicale: RadicaleServer,
    collection: str,
    eager: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    services.caldav_account_set(
        person=world.tutor, collection_url=collection, username=USER, password=PASSWORD
    )
    with django_capture_on_commit_callbacks(execute=True):
        session = _book(world)
    obj = CalendarObject.objects.get(session_id=session.pk)
    url = radicale.base_url + obj.href if obj.href.startswith("/") else obj.href
    edited = radicale.get(url, USER, PASSWORD).text.replace("SUMMARY:Tutoring", "SUMMARY:Edited")
    put = requests.put(
        url,
        data=edited.encode(),
        auth=(USER, PASSWORD),
        headers={"Content-Type": "text/calendar"},
        timeout=10,
    )
    assert put.status_code == 204 and put.headers["ETag"] != obj.etag  # our ETag is stale now

    with django_capture_on_commit_callbacks(execute=True):
        scheduling.booking_reschedule(actor=world.tutor, session_id=session.pk, start=WED_10 + H)
    (event,) = _events(radicale, collection).values()
    assert (str(event["summary"]), int(event["sequence"])) == ("Tutoring: Tutoring with Priya Shah", 1)
    assert CalendarPush.objects.filter(status="done").count() == 2


def test_wrong_password_fails_for_good_and_says_why(
    world: World, radicale: RadicaleServer, collection: str, django_capture_on_commit_callbacks: Any
) -> None:
    services.caldav_account_set(
        person=world.tutor, collection_url=collection, username=USER, password="wrong"
    )
    session = _book(world)
    push = CalendarPush.objects.get()
    assert services.push_deliver(push_id=push.pk) == "failed"
    push.refresh_from_db()
    assert (push.status, push.last_status_code, push.attempts) == ("failed", 401, 1)
    assert CalDAVAccount.objects.get().last_error.startswith(f"PUT {collection}{session.pk}.ics answered 401")
    assert radicale.objects(collection, USER, PASSWORD) == {}


def test_an_unreachable_server_is_retried_with_backoff_then_given_up(
    world: World, settings: Any, frozen: Any
) -> None:
    settings.CALENDARS_CALDAV_ALLOW_HTTP = True
    settings.OUTBOUND_RETRIES = 0
    dead = f"http://127.0.0.1:{free_port()}/priya/cal/"  # nobody listens there
    services.caldav_account_set(person=world.tutor, collection_url=dead, username=USER, password=PASSWORD)
    _book(world)
    push = CalendarPush.objects.get()
    with pytest.raises(services.PushRetry):
        services.push_deliver(push_id=push.pk)
    push.refresh_from_db()
    now = dt.datetime(2027, 3, 1, 12, tzinfo=dt.UTC)
    assert (push.status, push.attempts, push.next_attempt_at) == (
        "pending",
        1,
        now + dt.timedelta(seconds=60),
    )
    assert push.last_error.startswith(f"Could not reach {dead}")
    # Not due yet; then the task's last retry gives up and records why.
    assert services.push_deliver(push_id=push.pk) == "pending"
    frozen.shift(dt.timedelta(seconds=60))
    result = calendar_push.apply(args=[str(push.pk)], retries=settings.CALENDARS_MAX_RETRIES)
    assert result.get() == "failed"
    push.refresh_from_db()
    assert (push.status, push.attempts) == ("failed", 2)
    assert push.last_error.startswith(
        f"Gave up after {settings.CALENDARS_MAX_RETRIES + 1} attempts: Could not reach"
    )


def test_connecting_pushes_the_upcoming_sessions_already_booked(
    world: World,
    radicale: RadicaleServer,
    collection: str,
    eager: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    session = _book(world)
    cancelled = scheduling.booking_create(
        actor=world.admin,
        tutor=world.tutor,
        student=world.other_student,
        start=WED_10 + 3 * H,
        duration_min=30,
    )
    scheduling.booking_cancel(actor=world.admin, session_id=cancelled.pk)
    with django_capture_on_commit_callbacks(execute=True):
        services.caldav_account_set(
            person=world.tutor, collection_url=collection, username=USER, password=PASSWORD
        )
    events = _events(radicale, collection)
    assert [str(e["uid"]) for e in events.values()] == [f"{session.pk}@localhost"]
    # Saving the settings again pushes nothing new: the calendar already has it.
    with django_capture_on_commit_callbacks(execute=True):
        services.caldav_account_set(person=world.tutor, collection_url=collection, username=USER, password="")
    assert list(CalendarPush.objects.values_list("change", "status")) == [("connected", "done")]
