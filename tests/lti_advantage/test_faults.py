"""A platform that fails a share of requests (500, 429, timeouts) and goes down
for a while still ends with every score, exactly once, at its latest value."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from lti_tool.advantage.delivery import score_deliver
from lti_tool.advantage.models import AGS_DESTINATION
from tests.lti_advantage.conftest import make_world
from tests.peers.lti_advantage_platform import AdvantagePlatform, Faults
from tutoring_core.progress import api as progress
from tutoring_core.progress.models import OutboxEntry, OutboxStatus

pytestmark = pytest.mark.peer
START = dt.datetime(2026, 11, 2, 15, 0, tzinfo=dt.UTC)


def _drain_once() -> int:
    due = progress.outbox_due(kind=AGS_DESTINATION)
    for entry_id in due:
        score_deliver(entry_id=entry_id)
    return len(due)


def _fast_retries(settings: Any) -> None:
    """Backoff, timeouts and circuit pauses shrunk so the scenario settles in seconds."""
    settings.LTI_AGS_BACKOFF_BASE_SECONDS = 0.05
    settings.LTI_AGS_BACKOFF_CAP_SECONDS = 0.4
    settings.LTI_ADVANTAGE_READ_TIMEOUT = 0.3
    settings.LTI_AGS_CIRCUIT_FAILURES = 3
    settings.LTI_AGS_CIRCUIT_PAUSE_SECONDS = 0.2
    settings.LTI_AGS_CIRCUIT_PAUSE_CAP_SECONDS = 0.5
    settings.LTI_AGS_RATE_LIMIT_PER_SECOND = 1000


def _record_round(world: Any, round_no: int, latest: dict[str, int]) -> None:
    """One new score per student (later rounds are newer), remembered as the latest."""
    for index, student in enumerate(world.students):
        score = round_no * 10 + index
        progress.result_record(
            tenant=world.tenant,
            activity_id=world.line_item.activity_id,
            user_id=student.pk,
            score_given=score,
            source=progress.ResultSource.TEACHER,
            recorded_at=START + dt.timedelta(minutes=round_no),
        )
        latest[world.subs[student.pk]] = score


def _assert_settled_on_latest(lms: Any, world: Any, latest: dict[str, int]) -> None:
    # The platform ends on the latest score of every student...
    assert {sub: lms.latest_score(world.line_item.url, sub)["scoreGiven"] for sub in latest} == latest
    # ...received each accepted score once, and never an older one after a newer one.
    assert lms.stats.duplicates == 0
    assert lms.stats.scores_stale == 0
    # Every entry settled: the latest per student delivered, older ones superseded or delivered.
    statuses = set(OutboxEntry.objects.values_list("status", flat=True))
    assert statuses <= {OutboxStatus.DELIVERED, OutboxStatus.SUPERSEDED}
    for student in world.students:
        newest = OutboxEntry.objects.filter(user=student).order_by("-result__recorded_at").first()
        assert newest is not None and newest.status == OutboxStatus.DELIVERED
    # The faults really happened.
    assert lms.stats.outage_refusals > 0
    assert lms.stats.injected_500 > 0
    assert lms.stats.injected_429 > 0
    assert lms.stats.injected_timeouts > 0


def test_every_score_arrives_once_at_its_latest_value(db: Any, settings: Any) -> None:
    _fast_retries(settings)
    faults = Faults(share_500=0.15, share_429=0.10, share_timeout=0.10, timeout_seconds=0.5, seed=7)
    with AdvantagePlatform(faults=faults) as lms:
        world = make_world(lms, students=8)
        # Down for a stretch of calls, not of seconds: a loaded machine must still see
        # faults both before and after the outage.
        faults.outage_calls = (9, 25)
        latest: dict[str, int] = {}
        for round_no in range(4):
            _record_round(world, round_no, latest)
            _drain_once()  # some rounds go out (or fail) before the next round lands

        deadline = time.monotonic() + 60
        while OutboxEntry.objects.filter(status__in=(OutboxStatus.PENDING, OutboxStatus.IN_FLIGHT)).exists():
            assert time.monotonic() < deadline, "deliveries did not settle"
            if not _drain_once():
                time.sleep(0.05)

        _assert_settled_on_latest(lms, world, latest)


@pytest.mark.django_db(transaction=True)
def test_the_dispatcher_ends_with_every_score_once_at_its_latest_value(settings: Any) -> None:
    from lti_tool.advantage import dispatcher
    from tests.lti_advantage.conftest import notifier_off

    _fast_retries(settings)
    faults = Faults(share_500=0.15, share_429=0.10, share_timeout=0.10, timeout_seconds=0.5, seed=11)
    with AdvantagePlatform(faults=faults) as lms:
        world = make_world(lms, students=8)
        registration = str(world.registration.pk)
        # Down for a stretch of calls, not of seconds: a loaded machine must still see
        # faults both before and after the outage.
        faults.outage_calls = (9, 25)
        latest: dict[str, int] = {}
        for round_no in range(4):
            with notifier_off():  # the test runs the dispatcher itself
                _record_round(world, round_no, latest)
            # Some rounds go out (or fail) before the next round lands, some are superseded.
            dispatcher.dispatch(registration, slice_seconds=0.3)

        deadline = time.monotonic() + 60
        while OutboxEntry.objects.filter(status__in=(OutboxStatus.PENDING, OutboxStatus.IN_FLIGHT)).exists():
            assert time.monotonic() < deadline, "deliveries did not settle"
            dispatcher.dispatch(registration, slice_seconds=2.0)

        _assert_settled_on_latest(lms, world, latest)
        assert lms.stats.token_requests == 1
