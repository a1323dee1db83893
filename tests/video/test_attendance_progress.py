"""Attendance reaches progress (issue 15 point 4): a real join and leave through the room's
socket, the late and left-early thresholds with their figures, LiveKit's webhooks on the same
path, a tutor's correction audited and kept when the room's computation runs again, and the
per-student summary on the class page (404 for another tenant)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from tests import factories as f
from tests.scheduling.factories import SessionFactory, SessionParticipantFactory
from tests.video.harness import asgi_server
from tests.video.test_providers import LK_KEY, LK_SECRET, _hook, _session
from tutoring_core.accounts.models import AuditLog, GuardianLink
from tutoring_core.progress.models import SessionAttendance, SessionAttendanceHistory
from tutoring_core.scheduling.models import Session
from tutoring_core.video import services
from tutoring_core.video.models import Attendance, Presence, Room, VideoPolicy
from tutoring_core.video.protocol.attendance import Figures, attendance_figures

UTC = dt.UTC
START = dt.datetime(2027, 3, 3, 16, tzinfo=UTC)
END = START + dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def _minutes(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() // 60)


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([], Figures("no_show", None, None, 0, 0, 0)),
        ([(START, END)], Figures("attended", START, END, 60, 0, 0)),
        # Joined early and stayed late: only the scheduled hour counts as present.
        ([(START - 10 * M, END + 10 * M)], Figures("attended", START - 10 * M, END + 10 * M, 60, 0, 0)),
        ([(START + 5 * M, END)], Figures("attended", START + 5 * M, END, 55, 5, 0)),
        ([(START + 6 * M, END)], Figures("late", START + 6 * M, END, 54, 6, 0)),
        ([(START, END - 5 * M)], Figures("attended", START, END - 5 * M, 55, 0, 5)),
        ([(START, END - 6 * M)], Figures("left_early", START, END - 6 * M, 54, 0, 6)),
        # Two tabs open at once, then a dropped connection: overlaps counted once.
        (
            [(START, START + 30 * M), (START + 10 * M, START + 20 * M), (START + 40 * M, None)],
            Figures("attended", START, END, 50, 0, 0),
        ),
        (
            [(START + 30 * M + dt.timedelta(seconds=59), None)],
            Figures("late", START + 30 * M + dt.timedelta(seconds=59), END, 29, 30, 0),
        ),
    ],
)
def test_figures(spans: list[Any], expected: Figures) -> None:
    assert (
        attendance_figures(spans=spans, start=START, end=END, now=END, late_after=5 * M, early_before=5 * M)
        == expected
    )


def test_thresholds_reach_progress_with_their_figures(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    klass = f.ClassFactory(tenant=tenant)
    tutor = f.UserFactory(tenant=tenant)
    people = {name: f.UserFactory(tenant=tenant) for name in ("five", "six", "early6", "early5", "absent")}
    session = SessionFactory(tutor=tutor, start=START, end=END, capacity=5, klass=klass)
    for person in people.values():
        SessionParticipantFactory(session=session, student=person)
    with time_machine.travel(START, tick=False):
        room_id = services.room_access(user=tutor, session_id=session.pk).room_id
    stays = {"five": (START + 5 * M, END), "six": (START + 6 * M, END), "early6": (START, END - 6 * M)}
    stays["early5"] = (START, END - 5 * M)
    for name, (joined, left) in stays.items():
        Presence.objects.create(
            room_id=room_id, person=people[name], peer_id=name.ljust(32, "x"), joined_at=joined, left_at=left
        )
    with time_machine.travel(END, tick=False):
        services.attendance_finalize(actor=tutor, room_id=room_id)
    got = {
        row.person_id: (
            row.outcome,
            row.first_joined_at,
            row.last_left_at,
            row.minutes_present,
            row.late_minutes,
            row.left_early_minutes,
            row.source,
            row.class_id,
            row.version,
        )
        for row in SessionAttendance.objects.filter(session_id=session.pk)
    }
    assert got == {
        people["five"].pk: ("attended", START + 5 * M, END, 55, 5, 0, "signaling", klass.pk, 1),
        people["six"].pk: ("late", START + 6 * M, END, 54, 6, 0, "signaling", klass.pk, 1),
        people["early6"].pk: ("left_early", START, END - 6 * M, 54, 0, 6, "signaling", klass.pk, 1),
        people["early5"].pk: ("attended", START, END - 5 * M, 55, 0, 5, "signaling", klass.pk, 1),
        people["absent"].pk: ("no_show", None, None, 0, 0, 0, "signaling", klass.pk, 1),
    }
    # The tutor's attendance page shows the figures progress recorded.
    with time_machine.travel(END, tick=False):
        page = _client_of(tutor, at=END).get(f"/video/sessions/{session.pk}/attendance/")
    html = page.content.decode()
    assert '<td class="minutes">54, 6 late</td>' in html
    assert '<td class="minutes">54, left 6 early</td>' in html
    assert '<td class="minutes">0</td>' in html  # the no-show
    # Ending again computes the same: nothing new, no history.
    with time_machine.travel(END + 5 * M, tick=False):
        services.attendance_finalize(actor=tutor, room_id=room_id)
    assert set(SessionAttendance.objects.values_list("version", flat=True)) == {1}
    assert SessionAttendanceHistory.objects.count() == 0


@pytest.fixture
def live(transactional_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with asgi_server() as base:
        yield base


def _join(base: str, access: Any) -> ClientConnection:
    token = services.join_token_issue(access=access)
    url = base.replace("http://", "ws://") + f"/ws/video/rooms/{access.room_id}/?token={token}"
    return connect(url, origin=Origin(base))


def _until(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        message = json.loads(ws.recv(timeout=10))
        if message["type"] == kind:
            return dict(message)


def _live_session(tenant: Any, klass: Any, *, started_ago: dt.timedelta, length: dt.timedelta) -> Any:
    tutor = f.UserFactory(tenant=tenant)
    students = [f.UserFactory(tenant=tenant), f.UserFactory(tenant=tenant)]
    start = timezone.now().replace(microsecond=0) - started_ago
    session = SessionFactory(tutor=tutor, start=start, end=start + length, capacity=2, klass=klass)
    for student in students:
        SessionParticipantFactory(session=session, student=student)
    return session, tutor, students


@pytest.mark.parametrize(
    ("started_ago", "length", "leaves_first", "outcome"),
    [
        (10 * M, 60 * M, True, "late"),  # joins ten minutes after the start
        (1 * M, 30 * M, True, "left_early"),  # leaves about 29 minutes before the end
        (1 * M, 3 * M, False, "attended"),  # in the room until the tutor ends it, near the end
    ],
)
def test_join_and_leave_through_the_socket_reach_progress(
    live: str, started_ago: dt.timedelta, length: dt.timedelta, leaves_first: bool, outcome: str
) -> None:
    tenant = f.TenantFactory(slug="north")
    klass = f.ClassFactory(tenant=tenant)
    session, tutor, (student, absent) = _live_session(tenant, klass, started_ago=started_ago, length=length)
    tutor_access = services.room_access(user=tutor, session_id=session.pk)
    student_access = services.room_access(user=student, session_id=session.pk)
    with _join(live, tutor_access) as tutor_ws:
        assert _until(tutor_ws, "welcome")["peers"] == []
        with _join(live, student_access) as student_ws:
            assert json.loads(student_ws.recv(timeout=10)) == {"type": "waiting"}
            knock = _until(tutor_ws, "knock")
            assert knock["person"] == str(student.pk)
            tutor_ws.send(json.dumps({"type": "admit", "person": str(student.pk)}))
            assert _until(student_ws, "welcome")["role"] == "student"
            _until(tutor_ws, "peer-joined")
            if leaves_first:
                student_ws.close()
                _until(tutor_ws, "peer-left")
            tutor_ws.send(json.dumps({"type": "end"}))
            ended = _until(tutor_ws, "refused")
            assert ended["reason"] == "The tutor has ended this session; its room is closed."

    presence = Presence.objects.get(person=student)
    assert presence.left_at is not None
    room = Room.objects.get(session_id=session.pk)
    assert room.ended_at is not None
    if not leaves_first:
        assert presence.left_at == room.ended_at  # the tutor's end closed the stay
    record = SessionAttendance.objects.get(session_id=session.pk, person=student)
    assert (record.outcome, record.source, record.class_id, record.tenant_id) == (
        outcome,
        "signaling",
        klass.pk,
        tenant.pk,
    )
    assert (record.first_joined_at, record.last_left_at) == (presence.joined_at, presence.left_at)
    assert record.late_minutes == _minutes(presence.joined_at - session.start)
    assert record.left_early_minutes == _minutes(max(session.end - presence.left_at, dt.timedelta()))
    assert record.minutes_present == _minutes(presence.left_at - max(presence.joined_at, session.start))
    if outcome == "late":
        assert record.late_minutes >= 10
    if outcome == "left_early":
        assert record.left_early_minutes > 5
    missing = SessionAttendance.objects.get(session_id=session.pk, person=absent)
    assert (missing.outcome, missing.first_joined_at, missing.minutes_present) == ("no_show", None, 0)
    session.refresh_from_db()
    assert session.status == Session.Status.COMPLETED
    assert Attendance.objects.get(person=student).outcome == outcome


def test_livekit_webhooks_feed_progress_and_a_correction_is_kept(livekit_tenant: dict[str, Any]) -> None:
    data = livekit_tenant
    tenant, student, tutor, session = data["tenant"], data["student"], data["tutor"], data["session"]
    _client_of(student).post(f"/video/sessions/{session.pk}/join/")
    room = Room.objects.get()
    start = int(session.start.timestamp())
    joined = {
        "event": "participant_joined",
        "id": "EV_join1",
        "createdAt": str(start + 60),
        "room": {"sid": "RM_1", "name": room.pk.hex},
        "participant": {"sid": "PA_sam1", "identity": student.pk.hex, "name": "Sam Student"},
    }
    left = {**joined, "event": "participant_left", "id": "EV_left1", "createdAt": str(start + 20 * 60)}
    finished = {
        "event": "room_finished",
        "id": "EV_fin1",
        "createdAt": str(start + 21 * 60),
        "room": joined["room"],
    }
    with time_machine.travel(session.start + 21 * M, tick=False):
        for event in (joined, left):
            assert _hook(tenant, event).status_code == 200
        assert SessionAttendance.objects.count() == 0  # worked out when the meeting finishes
        assert _hook(tenant, finished).json() == {"outcome": "room_finished"}
    record = SessionAttendance.objects.get()
    assert (
        record.person_id,
        record.outcome,
        record.source,
        record.first_joined_at,
        record.last_left_at,
        record.minutes_present,
        record.late_minutes,
        record.left_early_minutes,
    ) == (student.pk, "left_early", "provider_webhook", session.start + M, session.start + 20 * M, 19, 1, 40)
    session.refresh_from_db()
    assert session.status == Session.Status.COMPLETED

    tutor_page = _client_of(tutor, at=session.start + 30 * M)
    with time_machine.travel(session.start + 30 * M, tick=False):
        answer = tutor_page.post(
            f"/video/sessions/{session.pk}/attendance/", {"person": str(student.pk), "outcome": "attended"}
        )
    assert answer.status_code == 302
    record.refresh_from_db()
    assert (record.outcome, record.source, record.corrected_by_id, record.version) == (
        "attended",
        "tutor_correction",
        tutor.pk,
        2,
    )
    assert record.corrected_at == session.start + 30 * M
    assert (record.minutes_present, record.left_early_minutes) == (19, 40)  # the figures stay
    old = SessionAttendanceHistory.objects.get()
    assert (old.attendance_id, old.version, old.outcome, old.source, old.corrected_by_id) == (
        record.pk,
        1,
        "left_early",
        "provider_webhook",
        None,
    )
    log = AuditLog.objects.get(action="progress.attendance.correct")
    assert (log.tenant_id, log.actor_id, log.target_type, log.target_id) == (
        tenant.pk,
        tutor.pk,
        "progress.sessionattendance",
        str(record.pk),
    )
    assert log.details == {
        "session": str(session.pk),
        "person": str(student.pk),
        "from": "left_early",
        "to": "attended",
        "version": 2,
    }

    # LiveKit sends a rejoin and the meeting's end again, late: the room works attendance out
    # again, and the tutor's correction stands.
    rejoin = {**joined, "id": "EV_join2", "createdAt": str(start + 50 * 60)}
    rejoin["participant"] = {**joined["participant"], "sid": "PA_sam2"}
    again = {**finished, "id": "EV_fin2", "createdAt": str(start + 55 * 60)}
    with time_machine.travel(session.start + 56 * M, tick=False):
        assert _hook(tenant, rejoin).json() == {"outcome": "participant_joined"}
        assert _hook(tenant, again).json() == {"outcome": "room_finished"}
    record.refresh_from_db()
    assert (record.outcome, record.source, record.version) == ("attended", "tutor_correction", 2)
    assert SessionAttendanceHistory.objects.count() == 1
    assert Attendance.objects.get().outcome == "attended"
    assert AuditLog.objects.filter(action="progress.attendance.correct").count() == 1


def test_an_uncorrected_record_follows_a_late_provider_leave(livekit_tenant: dict[str, Any]) -> None:
    """LiveKit's leave arriving after the tutor ended the room updates the record, keeping the
    state it replaced."""
    data = livekit_tenant
    tenant, student, tutor, session = data["tenant"], data["student"], data["tutor"], data["session"]
    _client_of(student).post(f"/video/sessions/{session.pk}/join/")
    room = Room.objects.get()
    start = int(session.start.timestamp())
    joined = {
        "event": "participant_joined",
        "id": "EV_j",
        "createdAt": str(start + 8 * 60),
        "room": {"sid": "RM_1", "name": room.pk.hex},
        "participant": {"sid": "PA_1", "identity": student.pk.hex, "name": "Sam Student"},
    }
    with time_machine.travel(session.start + 10 * M, tick=False):
        assert _hook(tenant, joined).status_code == 200
    services.attendance_finalize(actor=tutor, room_id=room.pk, now=session.end)
    record = SessionAttendance.objects.get()
    assert (record.outcome, record.minutes_present, record.version) == ("late", 52, 1)
    assert Presence.objects.get().left_at == session.end
    assert record.session_start == session.start
    assert record.session_end == session.end
    assert session.participants.get().outcome == "attended"


@pytest.fixture
def livekit_tenant(db: Any) -> dict[str, Any]:
    tenant = f.TenantFactory(slug="north")
    VideoPolicy.objects.create(
        tenant=tenant,
        provider="livekit",
        server_url="wss://lk.example.org",
        client_url="https://meet.example.org/custom",
        app_id=LK_KEY,
        secret=LK_SECRET,
    )
    return {"tenant": tenant, **_session(tenant)}


def _client_of(user: Any, at: dt.datetime | None = None) -> Client:
    client = Client()
    if at is None:
        client.force_login(user)
    else:
        with time_machine.travel(at, tick=False):
            client.force_login(user)
    return client


def test_class_page_shows_each_students_attendance(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    klass = f.ClassFactory(tenant=tenant, title="Algebra I")
    teacher = f.EnrollmentFactory(klass=klass, role="teacher").user
    ann = f.EnrollmentFactory(
        klass=klass, role="student", user__first_name="Ann", user__last_name="Able"
    ).user
    bob = f.EnrollmentFactory(
        klass=klass, role="student", user__first_name="Bob", user__last_name="Best"
    ).user
    guardian = f.UserFactory(tenant=tenant)
    GuardianLink.objects.create(tenant=tenant, guardian=guardian, student=bob)
    tutor = f.UserFactory(tenant=tenant)
    other_class = f.ClassFactory(tenant=tenant)
    outcomes: list[tuple[Any, Any, str]] = [
        (ann, klass, "attended"),
        (ann, klass, "late"),
        (ann, klass, "no_show"),
    ]
    outcomes += [(bob, klass, "left_early"), (bob, other_class, "no_show"), (ann, None, "late")]
    for number, (person, where, outcome) in enumerate(outcomes):
        start = START + dt.timedelta(days=number)
        session = SessionFactory(tutor=tutor, start=start, end=start + dt.timedelta(hours=1), klass=where)
        SessionParticipantFactory(session=session, student=person)
        with time_machine.travel(start, tick=False):
            room_id = services.room_access(user=tutor, session_id=session.pk).room_id
        with time_machine.travel(start + 10 * M, tick=False):
            services.attendance_finalize(actor=tutor, room_id=room_id)
            if outcome != "no_show":
                services.attendance_correct(
                    actor=tutor, room_id=room_id, person_id=person.pk, outcome=outcome
                )
    url = f"/classes/{klass.pk}/"

    def rows(user: Any) -> str:
        page = _client_of(user).get(url)
        assert page.status_code == 200
        html = page.content.decode()
        return (
            html[html.index("Tutoring session attendance") :] if "Tutoring session attendance" in html else ""
        )

    ann_row = "<td>Ann Able</td><td>3</td><td>1</td><td>1</td><td>0</td><td>1</td>"
    bob_row = "<td>Bob Best</td><td>1</td><td>0</td><td>0</td><td>1</td><td>0</td>"
    teacher_view = rows(teacher)
    assert ann_row in teacher_view
    assert bob_row in teacher_view
    assert ann_row in rows(ann)
    assert "Bob Best" not in rows(ann)  # a student sees only their own
    assert bob_row in rows(guardian)
    assert "Ann Able" not in rows(guardian)

    stranger = f.UserFactory(tenant=f.TenantFactory(slug="south"))
    assert _client_of(stranger).get(url).status_code == 404
    outsider = f.UserFactory(tenant=tenant)  # same tenant, not in the class
    assert _client_of(outsider).get(url).status_code == 404


def test_correction_is_refused_for_bad_input_and_changes_nothing(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    tutor, student = f.UserFactory(tenant=tenant), f.UserFactory(tenant=tenant)
    session = SessionFactory(tutor=tutor, start=START, end=END)
    SessionParticipantFactory(session=session, student=student)
    with time_machine.travel(START, tick=False):
        room_id = services.room_access(user=tutor, session_id=session.pk).room_id
    with time_machine.travel(END, tick=False):
        services.attendance_finalize(actor=tutor, room_id=room_id)
        client = _client_of(tutor, at=END)
        for payload, reason in [
            (
                {"person": str(student.pk), "outcome": "asleep"},
                "Give one of: attended, late, left_early, no_show.",
            ),
            ({"person": str(tutor.pk), "outcome": "attended"}, "That person is not booked in this session."),
            ({"person": "not-a-uuid", "outcome": "attended"}, "That person is not booked in this session."),
        ]:
            answer = client.post(f"/video/sessions/{session.pk}/attendance/", payload)
            assert answer.status_code == 400
            assert reason in answer.content.decode()
    record = SessionAttendance.objects.get()
    assert (record.outcome, record.source, record.version) == ("no_show", "signaling", 1)
    assert SessionAttendanceHistory.objects.count() == 0
    assert not AuditLog.objects.filter(action="progress.attendance.correct").exists()
