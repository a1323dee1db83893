"""Reminders through the beat job: timed from the UTC start, per tenant, each sent once,
even when the job runs twice or two runs race; moved or cancelled sessions' pending
reminders dropped; none once the session has started."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
import time_machine
from django.db import connection

from tests.peers.smtp import SmtpSink
from tests.scheduling.factories import WED_10, SchedulingPolicyFactory, World
from tutoring_core.messaging.delivery import notification_deliver, reminder_offset_due, reminders_run
from tutoring_core.messaging.models import Notification
from tutoring_core.scheduling import services
from tutoring_core.scheduling.models import Session

UTC = dt.UTC
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def _book(world: World) -> Session:
    return services.booking_create(
        actor=world.student, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
    )


def _reminders() -> list[tuple[str, int | None, str]]:
    return sorted(
        Notification.objects.filter(kind="reminder").values_list(
            "recipient__username", "offset_min", "status"
        )
    )


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (dt.timedelta(hours=25), None),  # not yet
        (dt.timedelta(hours=24), 1440),  # exactly on time
        (dt.timedelta(hours=23), 1440),
        (dt.timedelta(hours=1), 60),
        (dt.timedelta(minutes=30), 60),  # the 24 h one passed unsent: only the nearer one
        (dt.timedelta(0), None),  # started
        (-dt.timedelta(minutes=5), None),
    ],
)
def test_which_reminder_is_due(left: dt.timedelta, expected: int | None) -> None:
    assert reminder_offset_due([1440, 60], start=WED_10, now=WED_10 - left) == expected


@pytest.mark.django_db
def test_each_reminder_goes_once_at_its_time(world: World, sink: SmtpSink, frozen: Any) -> None:
    session = _book(world)
    Notification.objects.all().delete()  # the booking notices are not what this test is about
    frozen.move_to(WED_10 - 24 * H - M)
    assert reminders_run() == []

    frozen.move_to(WED_10 - 24 * H + M)
    ids = reminders_run()
    assert len(ids) == 3
    assert [notification_deliver(notification_id=i) for i in ids] == ["sent", "sent", "sent"]
    assert sorted(m["To"] for m in sink.messages) == sorted(
        [world.tutor.email, world.student.email, world.guardian.email]
    )
    by_to = {m["To"]: m for m in sink.messages}
    assert by_to[world.guardian.email]["Subject"] == (
        "Reminder: tutoring session in 1 day, Wednesday 3 March 2027, 10:00 to 11:00 (America/Chicago)"
    )
    assert by_to[world.guardian.email]["X-Tutoring-Session"] == str(session.pk)
    # The job runs again (every minute, or twice by mistake): nothing new.
    assert reminders_run() == []
    frozen.move_to(WED_10 - 2 * H)
    assert reminders_run() == []
    assert len(sink.messages) == 3

    frozen.move_to(WED_10 - H)
    ids = reminders_run()
    assert len(ids) == 3
    assert {notification_deliver(notification_id=i) for i in ids} == {"sent"}
    assert (
        sorted(m["Subject"] for m in sink.messages[3:])
        == ["Reminder: tutoring session in 1 hour, Wednesday 3 March 2027, 10:00 to 11:00 (America/Chicago)"]
        * 3
    )
    frozen.move_to(WED_10 - M)
    assert reminders_run() == []
    assert _reminders() == sorted(
        (p.username, offset, "sent")
        for p in (world.tutor, world.student, world.guardian)
        for offset in (1440, 60)
    )


@pytest.mark.django_db
def test_a_job_that_was_down_sends_only_the_nearest_reminder(
    world: World, sink: SmtpSink, frozen: Any
) -> None:
    _book(world)
    frozen.move_to(WED_10 - 30 * M)
    ids = reminders_run()
    assert {notification_deliver(notification_id=i) for i in ids} == {"sent"}
    assert {offset for _who, offset, _status in _reminders()} == {60}
    assert len(sink.messages) == 3


@pytest.mark.django_db
def test_a_reminder_not_sent_before_the_start_is_dropped(world: World, sink: SmtpSink, frozen: Any) -> None:
    _book(world)
    frozen.move_to(WED_10 - 5 * M)
    ids = reminders_run()
    frozen.move_to(WED_10 + M)  # the workers were busy
    assert {notification_deliver(notification_id=i) for i in ids} == {"dropped"}
    assert sink.messages == []
    assert set(Notification.objects.filter(kind="reminder").values_list("last_error", flat=True)) == {
        "The session had started."
    }


@pytest.mark.django_db
def test_moving_a_session_drops_its_pending_reminders_and_times_new_ones(
    world: World, sink: SmtpSink, frozen: Any
) -> None:
    session = _book(world)
    frozen.move_to(WED_10 - 24 * H + M)
    pending = reminders_run()
    assert len(pending) == 3
    services.booking_reschedule(actor=world.tutor, session_id=session.pk, start=WED_10 + 24 * H)
    assert {notification_deliver(notification_id=i) for i in pending} == {"dropped"}
    assert [m for m in sink.messages if m["Subject"].startswith("Reminder")] == []
    assert reminders_run() == []  # the new start is 47 hours away

    frozen.move_to(WED_10 + M)  # 24 hours before the new start, and a minute
    ids = reminders_run()
    assert {notification_deliver(notification_id=i) for i in ids} == {"sent"}
    reminders = [m for m in sink.messages if m["Subject"].startswith("Reminder")]
    assert {m["Subject"] for m in reminders} == {
        "Reminder: tutoring session in 1 day, Thursday 4 March 2027, 10:00 to 11:00 (America/Chicago)"
    }
    assert len(reminders) == 3


@pytest.mark.django_db
def test_cancelling_drops_pending_reminders(world: World, sink: SmtpSink, frozen: Any) -> None:
    session = _book(world)
    frozen.move_to(WED_10 - 24 * H + M)
    pending = reminders_run()
    services.booking_cancel(actor=world.tutor, session_id=session.pk)
    assert {notification_deliver(notification_id=i) for i in pending} == {"dropped"}
    assert reminders_run() == []
    assert sink.messages == []


@pytest.mark.django_db
def test_offsets_come_from_the_tenant_policy(world: World, sink: SmtpSink, frozen: Any) -> None:
    SchedulingPolicyFactory(tenant=world.tenant, reminder_offsets_min=[120])
    _book(world)
    frozen.move_to(WED_10 - 23 * H)
    assert reminders_run() == []
    frozen.move_to(WED_10 - 2 * H)
    ids = reminders_run()
    assert {notification_deliver(notification_id=i) for i in ids} == {"sent"}
    assert {m["Subject"].split(",")[0] for m in sink.messages} == {"Reminder: tutoring session in 2 hours"}


@pytest.mark.django_db(transaction=True)
def test_two_runs_racing_send_each_reminder_once(world: World, sink: SmtpSink) -> None:
    """Two workers run the job at the same instant and each tries to send every id it
    found: the unique row and the claim let exactly one email per person through."""
    with time_machine.travel(dt.datetime(2027, 3, 1, 12, tzinfo=UTC), tick=False):
        _book(world)
    Notification.objects.all().delete()
    barrier = threading.Barrier(2)
    outcomes: list[list[str]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(10)
            ids = reminders_run(now=WED_10 - H)
            barrier.wait(10)
            outcomes.append([notification_deliver(notification_id=i, now=WED_10 - H) for i in ids])
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(sink.messages) == 3
    assert sorted(m["To"] for m in sink.messages) == sorted(
        [world.tutor.email, world.student.email, world.guardian.email]
    )
    assert _reminders() == sorted(
        (p.username, 60, "sent") for p in (world.tutor, world.student, world.guardian)
    )
    # Both runs found all three and tried to send each; the claim let one through.
    assert [len(run) for run in outcomes] == [3, 3]
    assert Notification.objects.filter(kind="reminder", attempts=1).count() == 3
