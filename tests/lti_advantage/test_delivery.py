"""Score delivery against the loopback LMS: shapes, retries, superseding, failures."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

import pytest

from lti_tool.advantage import throttle
from lti_tool.advantage.delivery import score_deliver
from tests.lti_advantage.conftest import World
from tutoring_core.progress import api as progress
from tutoring_core.progress.models import OutboxEntry, OutboxStatus

pytestmark = pytest.mark.peer
WHEN = dt.datetime(2026, 11, 2, 15, 30, 12, 345678, tzinfo=dt.UTC)


def record(world: World, student_index: int, score: Any, *, when: dt.datetime = WHEN, **kwargs: Any) -> Any:
    return progress.result_record(
        tenant=world.tenant,
        activity_id=world.line_item.activity_id,
        user_id=world.students[student_index].pk,
        score_given=score,
        source=kwargs.pop("source", progress.ResultSource.TEACHER),
        recorded_by=world.teacher,
        recorded_at=when,
        **kwargs,
    )


def test_teacher_score_arrives_shaped_as_the_spec_says(world: World) -> None:
    recorded = record(world, 0, "7.5", comment="Good work")
    (entry_id,) = recorded.outbox_entry_ids

    outcome = score_deliver(entry_id=entry_id)

    assert outcome.kind == "delivered"
    sub = world.subs[world.students[0].pk]
    assert world.lms.score_log == [
        {
            "lineitem": world.line_item.url,
            "userId": sub,
            "timestamp": "2026-11-02T15:30:12.345678Z",
            "activityProgress": "Completed",
            "gradingProgress": "FullyGraded",
            "scoreGiven": 7.5,
            "scoreMaximum": 10,
            "comment": "Good work",
        }
    ]
    entry = OutboxEntry.objects.get(pk=entry_id)
    assert (entry.status, entry.attempts, entry.last_status_code) == (OutboxStatus.DELIVERED, 1, 200)
    assert world.lms.stats.token_requests == 1


def test_newer_score_supersedes_a_pending_older_one(world: World) -> None:
    first = record(world, 0, 4)
    second = record(world, 0, 6, when=WHEN + dt.timedelta(minutes=1))
    third = record(world, 0, 9, when=WHEN + dt.timedelta(minutes=2))

    assert OutboxEntry.objects.get(pk=first.outbox_entry_ids[0]).status == OutboxStatus.SUPERSEDED
    assert OutboxEntry.objects.get(pk=second.outbox_entry_ids[0]).status == OutboxStatus.SUPERSEDED
    assert [score_deliver(entry_id=e).kind for e in (*first.outbox_entry_ids, *second.outbox_entry_ids)] == [
        "skipped",
        "skipped",
    ]
    assert score_deliver(entry_id=third.outbox_entry_ids[0]).kind == "delivered"
    assert [s["scoreGiven"] for s in world.lms.score_log] == [9]


def test_a_late_older_score_is_kept_but_never_sent(world: World) -> None:
    newer = record(world, 0, 9, when=WHEN)
    assert score_deliver(entry_id=newer.outbox_entry_ids[0]).kind == "delivered"
    older = record(world, 0, 2, when=WHEN - dt.timedelta(hours=1))

    entry = OutboxEntry.objects.get(pk=older.outbox_entry_ids[0])
    assert (entry.status, entry.superseded_by_id) == (OutboxStatus.SUPERSEDED, newer.outbox_entry_ids[0])
    assert score_deliver(entry_id=entry.pk).kind == "skipped"
    assert len(world.lms.score_log) == 1


@pytest.mark.parametrize(
    ("faults", "status"),
    [
        ({"share_500": 1.0}, 500),
        ({"share_429": 1.0}, 429),
    ],
)
def test_transient_failures_wait_with_backoff_then_deliver(
    world: World, settings: Any, faults: dict[str, float], status: int
) -> None:
    settings.LTI_AGS_BACKOFF_BASE_SECONDS = 4.0
    (entry_id,) = record(world, 0, 5).outbox_entry_ids
    for name, value in faults.items():
        setattr(world.lms.faults, name, value)

    outcome = score_deliver(entry_id=entry_id)

    entry = OutboxEntry.objects.get(pk=entry_id)
    assert outcome.kind == "retry"
    assert 2.0 <= outcome.delay <= 4.0  # first retry: between half and all of the base
    assert (entry.status, entry.attempts, entry.last_status_code) == (OutboxStatus.PENDING, 1, status)
    assert f"answered {status}" in entry.last_error
    assert world.lms.score_log == []
    # Not due yet: a second run does nothing.
    assert score_deliver(entry_id=entry_id).kind == "skipped"

    world.lms.faults.share_500 = world.lms.faults.share_429 = 0.0
    OutboxEntry.objects.filter(pk=entry_id).update(
        next_attempt_at=entry.next_attempt_at - dt.timedelta(seconds=10)
    )
    time.sleep(throttle.paused_for(str(world.registration.pk)))  # a 429 paused the platform for Retry-After
    assert score_deliver(entry_id=entry_id).kind == "delivered"
    entry.refresh_from_db()
    assert (entry.status, entry.attempts) == (OutboxStatus.DELIVERED, 2)
    assert len(world.lms.score_log) == 1


def test_retry_after_is_honoured_and_repeated_429s_pause_the_platform(world: World, settings: Any) -> None:
    settings.LTI_AGS_BACKOFF_BASE_SECONDS = 0.5
    settings.LTI_AGS_CIRCUIT_FAILURES = 2
    world.lms.faults.rate_limit_per_second = 0  # every call is over the limit
    world.lms.faults.retry_after = 7
    first, second, third = (record(world, i, 5).outbox_entry_ids[0] for i in range(3))
    registration = str(world.registration.pk)

    one = score_deliver(entry_id=first)
    # A single 429: this row waits Retry-After; the platform is not paused yet.
    assert (one.kind, one.delay >= 7.0, throttle.paused_for(registration)) == ("retry", True, 0.0)

    two = score_deliver(entry_id=second)
    assert two.kind == "retry" and two.delay >= 7.0
    # The second within two seconds: every worker holds off for Retry-After.
    assert 6.0 < throttle.paused_for(registration) <= 7.0

    # A score for the paused platform is not even sent: deferred without using a try.
    deferred = score_deliver(entry_id=third)
    entry = OutboxEntry.objects.get(pk=third)
    assert deferred.kind == "deferred"
    assert (entry.status, entry.attempts) == (OutboxStatus.PENDING, 0)
    assert world.lms.stats.rate_limited == 2


def test_canvas_rate_limit_403_is_transient(db: Any, lms: Any) -> None:
    from tests.lti_advantage.conftest import make_world

    world = make_world(lms, preset="canvas")
    lms.faults.rate_limit_per_second = 0
    lms.faults.canvas_rate_limit = True
    (entry_id,) = record(world, 0, 5).outbox_entry_ids

    outcome = score_deliver(entry_id=entry_id)

    entry = OutboxEntry.objects.get(pk=entry_id)
    assert outcome.kind == "retry"
    assert (entry.status, entry.last_status_code) == (OutboxStatus.PENDING, 403)


def test_canvas_gets_the_submission_extension(db: Any, lms: Any) -> None:
    from tests.lti_advantage.conftest import make_world

    world = make_world(lms, preset="canvas")
    (teacher_entry,) = record(world, 0, 5).outbox_entry_ids
    (scorm_entry,) = record(world, 1, 8, source=progress.ResultSource.SCORM).outbox_entry_ids

    assert score_deliver(entry_id=teacher_entry).kind == "delivered"
    assert score_deliver(entry_id=scorm_entry).kind == "delivered"

    extension = "https://canvas.instructure.com/lti/submission"
    assert world.lms.score_log[0][extension] == {"new_submission": False}
    assert world.lms.score_log[1][extension] == {
        "new_submission": True,
        "submitted_at": "2026-11-02T15:30:12.345678Z",
    }


def test_a_refused_score_fails_with_the_reason_and_is_not_retried(world: World) -> None:
    from tutoring_core.accounts.models import AuditLog

    world.lms.remove_member("Ctx-AbC123", world.subs[world.students[0].pk])
    (entry_id,) = record(world, 0, 5).outbox_entry_ids

    outcome = score_deliver(entry_id=entry_id)

    entry = OutboxEntry.objects.get(pk=entry_id)
    assert outcome.kind == "failed"
    assert entry.status == OutboxStatus.FAILED
    assert entry.last_status_code == 422
    assert "is not a member of this course" in entry.last_error
    assert world.lms.score_log == []
    audit = AuditLog.objects.get(action="grades.delivery_failed")
    assert audit.details["status"] == 422
    assert score_deliver(entry_id=entry_id).kind == "skipped"


def test_a_student_the_platform_does_not_know_fails_without_a_call(world: World) -> None:
    world.students[0].external_identities.all().delete()
    (entry_id,) = record(world, 0, 5).outbox_entry_ids

    outcome = score_deliver(entry_id=entry_id)

    entry = OutboxEntry.objects.get(pk=entry_id)
    assert outcome.kind == "failed"
    assert "no account on the platform" in entry.last_error
    assert world.lms.stats.token_requests == 0
    assert world.lms.score_log == []


def test_many_deliveries_share_one_token_and_refresh_when_it_expires(world: World) -> None:
    entries = [record(world, i, i + 1).outbox_entry_ids[0] for i in range(3)]
    assert [score_deliver(entry_id=e).kind for e in entries] == ["delivered"] * 3
    assert world.lms.stats.token_requests == 1

    # The platform revokes tokens early (all of them look expired now): one 401,
    # one new token, and the score still arrives once.
    world.lms._token_issued.clear()
    (later,) = record(world, 0, 10, when=WHEN + dt.timedelta(minutes=5)).outbox_entry_ids
    assert score_deliver(entry_id=later).kind == "delivered"
    assert world.lms.stats.token_requests == 2
    assert world.lms.stats.unauthorized == 1
    assert world.lms.latest_score(world.line_item.url, world.subs[world.students[0].pk])["scoreGiven"] == 10


def test_a_timeout_is_retried(world: World, settings: Any) -> None:
    settings.LTI_ADVANTAGE_READ_TIMEOUT = 0.3
    world.lms.faults.share_timeout = 1.0
    world.lms.faults.timeout_seconds = 1.0
    (entry_id,) = record(world, 0, 5).outbox_entry_ids

    outcome = score_deliver(entry_id=entry_id)

    entry = OutboxEntry.objects.get(pk=entry_id)
    assert outcome.kind == "retry"
    assert (entry.status, entry.last_status_code) == (OutboxStatus.PENDING, None)
    assert "Timed out" in entry.last_error


def test_giving_up_after_the_attempt_limit(world: World, settings: Any) -> None:
    settings.LTI_AGS_MAX_ATTEMPTS = 1
    world.lms.faults.share_500 = 1.0
    (entry_id,) = record(world, 0, 5).outbox_entry_ids

    outcome = score_deliver(entry_id=entry_id)

    entry = OutboxEntry.objects.get(pk=entry_id)
    assert outcome.kind == "failed"
    assert entry.status == OutboxStatus.FAILED
    assert entry.last_error.startswith("Gave up after 1 attempts.")


def test_scores_are_exact_decimals(world: World) -> None:
    (entry_id,) = record(world, 0, Decimal("9.3333")).outbox_entry_ids
    assert score_deliver(entry_id=entry_id).kind == "delivered"
    assert world.lms.score_log[0]["scoreGiven"] == 9.3333
