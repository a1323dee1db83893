"""Rooms nobody ends (issue 15 point 4): the periodic sweep works attendance out at the scheduled
end, as the tutor's end would have: no-shows (the tutor's too), a stay still open closed at the
end, sessions already worked out or corrected and cancelled ones left alone, a second run writes
nothing, and a session another worker holds is skipped."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import time_machine
from django.db import connection

from tests import factories as f
from tests.scheduling.factories import SessionFactory, SessionParticipantFactory
from tutoring_core.accounts.models import AuditLog
from tutoring_core.progress.models import SessionAttendance, SessionAttendanceHistory
from tutoring_core.scheduling.models import Session, SessionParticipant
from tutoring_core.video import services, tasks
from tutoring_core.video.models import Attendance, Presence, Room

UTC = dt.UTC
START = dt.datetime(2027, 3, 3, 16, tzinfo=UTC)
END = START + dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
AFTER_GRACE = END + 16 * M  # VIDEO_ATTENDANCE_GRACE_MIN is 15


def _session(tenant: Any, *, students: int = 1, start: dt.datetime = START, **extra: Any) -> Any:
    tutor = f.UserFactory(tenant=tenant)
    session = SessionFactory(
        tutor=tutor, start=start, end=start + dt.timedelta(hours=1), capacity=max(students, 1), **extra
    )
    people = [f.UserFactory(tenant=tenant) for _ in range(students)]
    for person in people:
        SessionParticipantFactory(session=session, student=person)
    return session, tutor, people


def _records(session: Any) -> dict[Any, tuple[Any, ...]]:
    return {
        row.person_id: (
            row.outcome,
            row.first_joined_at,
            row.last_left_at,
            row.minutes_present,
            row.left_early_minutes,
            row.source,
            row.version,
        )
        for row in SessionAttendance.objects.filter(session_id=session.pk)
    }


def _counts() -> tuple[int, int, int, int, int]:
    return (
        SessionAttendance.objects.count(),
        SessionAttendanceHistory.objects.count(),
        Attendance.objects.count(),
        AuditLog.objects.count(),
        Room.objects.filter(ended_at__isnull=False).count(),
    )


def test_nobody_joined_every_participant_is_a_no_show_and_the_tutor_too(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    klass = f.ClassFactory(tenant=tenant)
    session, _tutor, (ava, ben) = _session(tenant, students=2, klass=klass)
    # Not yet past the grace period: nothing happens.
    with time_machine.travel(END + 14 * M, tick=False):
        assert services.attendance_sweep() == []
    assert _counts() == (0, 0, 0, 0, 0)

    with time_machine.travel(AFTER_GRACE, tick=False):
        assert tasks.attendance_sweep_task() == 1
    no_show = ("no_show", None, None, 0, 0, "signaling", 1)
    assert _records(session) == {ava.pk: no_show, ben.pk: no_show}
    assert list(
        SessionAttendance.objects.filter(session_id=session.pk).values_list("class_id", flat=True)
    ) == [klass.pk, klass.pk]
    session.refresh_from_db()
    # The tutor never came: the session is theirs to answer for, once, as a whole.
    assert (session.status, session.outcome) == ("completed", "tutor_no_show")
    assert sorted(SessionParticipant.objects.filter(session=session).values_list("outcome", flat=True)) == [
        "tutor_no_show",
        "tutor_no_show",
    ]
    assert list(
        AuditLog.objects.filter(action="scheduling.session.outcome").values_list("details", flat=True)
    ) == [{"outcome": "tutor_no_show", "student": ""}]
    assert set(Attendance.objects.values_list("person_id", "outcome")) == {
        (ava.pk, "no_show"),
        (ben.pk, "no_show"),
    }
    room = Room.objects.get(session_id=session.pk)
    assert room.ended_at == END  # closed at the scheduled end
    before = _counts()
    assert before == (2, 0, 2, 1, 1)
    # The second run finds nothing and writes nothing.
    with time_machine.travel(AFTER_GRACE + 5 * M, tick=False):
        assert services.attendance_sweep() == []
    assert _counts() == before


def test_a_student_who_left_early_with_nobody_ending_the_room_left_early(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    session, tutor, (ava,) = _session(tenant)
    with time_machine.travel(START - 2 * M, tick=False):
        room_id = services.room_access(user=tutor, session_id=session.pk).room_id
    # The tutor closed the tab without ending; their stay is still open. Ava left 20 minutes early.
    Presence.objects.create(room_id=room_id, person=tutor, peer_id="t" * 32, joined_at=START - M)
    Presence.objects.create(
        room_id=room_id, person=ava, peer_id="a" * 32, joined_at=START + M, left_at=END - 20 * M
    )
    with time_machine.travel(AFTER_GRACE, tick=False):
        assert services.attendance_sweep() == [session.pk]
    assert _records(session) == {ava.pk: ("left_early", START + M, END - 20 * M, 39, 20, "signaling", 1)}
    session.refresh_from_db()
    assert (session.status, session.outcome) == ("completed", "attended")
    assert Presence.objects.get(person=tutor).left_at == END  # the open stay closed at the end
    assert Room.objects.get(pk=room_id).ended_at == END
    assert list(Attendance.objects.values_list("person_id", "outcome")) == [(ava.pk, "left_early")]
    before = _counts()
    with time_machine.travel(AFTER_GRACE + 10 * M, tick=False):
        assert services.attendance_sweep() == []
    assert _counts() == before


def test_worked_out_corrected_and_cancelled_sessions_are_left_alone(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    ended, ended_tutor, (ava,) = _session(tenant)
    corrected, corrected_tutor, (ben,) = _session(tenant)
    cancelled, _, _ = _session(tenant, status=Session.Status.CANCELLED)
    # One room ended by its tutor, then a correction from the attendance page of another.
    with time_machine.travel(START, tick=False):
        ended_room = services.room_access(user=ended_tutor, session_id=ended.pk).room_id
        corrected_room = services.room_access(user=corrected_tutor, session_id=corrected.pk).room_id
    with time_machine.travel(END, tick=False):
        services.attendance_finalize(actor=ended_tutor, room_id=ended_room)
        services.attendance_correct(
            actor=corrected_tutor, room_id=corrected_room, person_id=ben.pk, outcome="attended"
        )
    records = {
        row.person_id: (row.outcome, row.source, row.version) for row in SessionAttendance.objects.all()
    }
    assert records == {ava.pk: ("no_show", "signaling", 1), ben.pk: ("attended", "tutor_correction", 2)}
    before = _counts()
    with time_machine.travel(AFTER_GRACE, tick=False):
        assert services.attendance_sweep() == []
    assert _counts() == before
    assert {
        row.person_id: (row.outcome, row.source, row.version) for row in SessionAttendance.objects.all()
    } == records
    assert not Room.objects.filter(session_id=cancelled.pk).exists()
    assert not SessionAttendance.objects.filter(session_id=cancelled.pk).exists()
    cancelled.refresh_from_db()
    assert (cancelled.status, cancelled.outcome) == ("cancelled", "")


def test_a_run_takes_a_batch_in_start_order(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    sessions = [_session(tenant, start=START + i * 2 * dt.timedelta(hours=1))[0] for i in range(3)]
    last_end = sessions[-1].end
    with time_machine.travel(last_end + 16 * M, tick=False):
        assert services.attendance_sweep(limit=2) == [sessions[0].pk, sessions[1].pk]
        assert SessionAttendance.objects.count() == 2
        assert services.attendance_sweep(limit=2) == [sessions[2].pk]
        assert services.attendance_sweep(limit=2) == []
    assert SessionAttendance.objects.count() == 3


def test_two_workers_at_once_work_each_session_out_once(transactional_db: Any) -> None:
    """Two workers sweep at once: each session is worked out once. PostgreSQL's workers share
    the batch (a session the other holds is skipped, not waited for); SQLite's take turns (its
    writers lock the whole file). Either way every session is done once, nothing twice."""
    tenant = f.TenantFactory(slug="north")
    sessions = [_session(tenant, start=START + i * 2 * dt.timedelta(hours=1))[0] for i in range(6)]
    at = sessions[-1].end + 16 * M
    together = threading.Barrier(2)
    done: dict[str, list[Any]] = {}

    def worker(name: str) -> None:
        try:
            with time_machine.travel(at, tick=False):
                together.wait(30)
                done[name] = services.attendance_sweep()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(done) == ["one", "two"]
    swept = done["one"] + done["two"]
    assert sorted(swept) == sorted(s.pk for s in sessions)  # each once
    assert (SessionAttendance.objects.count(), SessionAttendanceHistory.objects.count()) == (6, 0)
    assert AuditLog.objects.filter(action="scheduling.session.outcome").count() == 6
    assert set(Session.objects.values_list("status", "outcome")) == {("completed", "tutor_no_show")}


def test_beat_runs_the_sweep_and_an_idle_run_is_one_select(db: Any, django_assert_num_queries: Any) -> None:
    from config.celery import app

    entry = app.conf.beat_schedule["video-attendance-sweep"]
    assert (entry["task"], entry["schedule"]) == ("video.attendance_sweep", 300.0)
    assert "video.attendance_sweep" in app.tasks  # found by autodiscovery
    tenant = f.TenantFactory(slug="north")
    _session(tenant, start=END + dt.timedelta(hours=1))  # not over yet: not claimed
    with time_machine.travel(AFTER_GRACE, tick=False), django_assert_num_queries(3) as run:
        assert services.attendance_sweep() == []
    # The claim's savepoint (inside the test's transaction), one bounded select, its release.
    claim = run.captured_queries[1]["sql"]
    assert claim.startswith('SELECT "scheduling_session"."id"')
    assert claim.endswith("LIMIT 1" if connection.vendor == "sqlite" else "LIMIT 1 FOR UPDATE SKIP LOCKED")
