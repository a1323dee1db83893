"""The per-platform dispatcher against the loopback LMS: which entries it sends and
in what order, leases that never hand one entry to two senders, Retry-After and
circuit pauses for the whole platform, superseding, and recovery after a worker
died holding entries (or the dispatcher lock).

The dispatcher sends from threads with their own database connections, so these
tests work on committed data (``tworld``). No assertion depends on how fast
anything ran: slices only bound how long a run may wait.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
import time_machine

from lti_tool.advantage import dispatcher, throttle
from lti_tool.advantage.delivery import deliver_leased
from lti_tool.advantage.models import AGS_DESTINATION
from tests.lti_advantage.conftest import World, add_student, notifier_off
from tutoring_core.progress import api as progress
from tutoring_core.progress.models import OutboxEntry, OutboxStatus

pytestmark = pytest.mark.peer
WHEN = dt.datetime(2026, 11, 2, 15, 30, tzinfo=dt.UTC)


def record(world: World, index: int, score: Any, *, when: dt.datetime = WHEN) -> OutboxEntry:
    with notifier_off():  # these tests run the dispatcher themselves
        recorded = progress.result_record(
            tenant=world.tenant,
            activity_id=world.line_item.activity_id,
            user_id=world.students[index].pk,
            score_given=score,
            source=progress.ResultSource.TEACHER,
            recorded_at=when,
        )
    return OutboxEntry.objects.get(pk=recorded.outbox_entry_ids[0])


def run(world: World, **kwargs: Any) -> dispatcher.RunReport:
    return dispatcher.dispatch(str(world.registration.pk), **kwargs)


def sent_users(world: World) -> list[str]:
    return [entry["userId"] for entry in world.lms.score_log]


@pytest.fixture
def one_at_a_time(settings: Any) -> None:
    # One request in flight: the order requests reach the platform is the order
    # the dispatcher sent them in.
    settings.LTI_AGS_MAX_CONCURRENCY = 1


def test_due_entries_go_oldest_score_first_and_entries_not_due_wait(
    tworld: World, one_at_a_time: None
) -> None:
    for index in range(2):
        add_student(tworld, 3 + index)
    entries = [record(tworld, index, index + 1) for index in range(5)]
    # Entry 1 failed before and is due again now; entry 3 waits for its backoff.
    now = dt.datetime.now(dt.UTC)
    OutboxEntry.objects.filter(pk=entries[1].pk).update(
        attempts=1, next_attempt_at=now - dt.timedelta(seconds=1)
    )
    OutboxEntry.objects.filter(pk=entries[3].pk).update(
        attempts=1, next_attempt_at=now + dt.timedelta(hours=1)
    )
    handed_over: list[float] = []

    report = run(tworld, handoff=handed_over.append)

    subs = [tworld.subs[student.pk] for student in tworld.students]
    assert sent_users(tworld) == [subs[0], subs[1], subs[2], subs[4]]
    assert (report.reason, report.sent, dict(report.outcomes)) == ("idle", 4, {"delivered": 4})
    states = {e.pk: (e.status, e.attempts) for e in OutboxEntry.objects.all()}
    assert states == {
        entries[0].pk: (OutboxStatus.DELIVERED, 1),
        entries[1].pk: (OutboxStatus.DELIVERED, 2),
        entries[2].pk: (OutboxStatus.DELIVERED, 1),
        entries[3].pk: (OutboxStatus.PENDING, 1),
        entries[4].pk: (OutboxStatus.DELIVERED, 1),
    }
    # The one left falls due in an hour: later than a successor would be scheduled
    # for, so the beat sweep will wake a dispatcher then.
    assert handed_over == []
    assert tworld.lms.stats.token_requests == 1


def test_a_run_hands_over_when_entries_fall_due_soon(tworld: World) -> None:
    entry = record(tworld, 0, 5)
    OutboxEntry.objects.filter(pk=entry.pk).update(
        next_attempt_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
    )
    handed_over: list[float] = []

    report = run(tworld, handoff=handed_over.append)

    assert (report.reason, report.sent) == ("idle", 0)
    assert len(handed_over) == 1 and 50 < handed_over[0] <= 60
    assert tworld.lms.score_log == []


def test_leases_never_hand_one_entry_to_two_dispatchers(tworld: World) -> None:
    for index in range(3, 24):
        add_student(tworld, index)
    entries = {record(tworld, index, index).pk for index in range(24)}
    channel = str(tworld.registration.pk)
    taken: list[list[Any]] = [[], [], []]
    start = threading.Barrier(3)

    def lease_until_empty(mine: list[Any]) -> None:
        from django.db import connections

        try:
            start.wait()
            while leased := progress.outbox_lease(
                kind=AGS_DESTINATION, channel=channel, limit=3, lease_seconds=60
            ):
                mine.extend(leased)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=lease_until_empty, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    ids = [item.id for mine in taken for item in mine]
    assert sorted(ids) == sorted(entries)  # every entry leased, none twice
    # ...and each leased entry is sent once by whoever holds it.
    for mine in taken:
        for item in mine:
            assert deliver_leased(item).kind == "delivered"
    assert len(tworld.lms.score_log) == 24
    assert tworld.lms.stats.resent_after_accept == 0
    assert set(OutboxEntry.objects.values_list("status", "attempts")) == {(OutboxStatus.DELIVERED, 1)}


def test_a_lease_skips_entries_held_by_another_and_a_persons_second_score(tworld: World) -> None:
    first, second = record(tworld, 0, 4), record(tworld, 1, 5)
    channel = str(tworld.registration.pk)

    (held,) = progress.outbox_lease(kind=AGS_DESTINATION, channel=channel, limit=1, lease_seconds=60)
    assert held.id == first.pk
    # A newer score for the student whose first score is in flight waits for it.
    newer = record(tworld, 0, 9, when=WHEN + dt.timedelta(minutes=1))
    again = progress.outbox_lease(kind=AGS_DESTINATION, channel=channel, limit=10, lease_seconds=60)

    assert [item.id for item in again] == [second.pk]
    assert OutboxEntry.objects.get(pk=newer.pk).status == OutboxStatus.PENDING
    assert progress.outbox_lease(kind=AGS_DESTINATION, channel=channel, limit=10, lease_seconds=60) == []


def test_only_one_dispatcher_runs_per_platform(tworld: World) -> None:
    record(tworld, 0, 5)
    lock = dispatcher.DispatcherLock(str(tworld.registration.pk), seconds=60)
    assert lock.acquire()
    try:
        assert run(tworld) == dispatcher.RunReport("busy")
        assert tworld.lms.score_log == []
        assert not dispatcher.claim_kick(str(tworld.registration.pk))  # it will see new entries itself
    finally:
        lock.release()
    assert dispatcher.claim_kick(str(tworld.registration.pk))
    assert not dispatcher.claim_kick(str(tworld.registration.pk))  # one queued kick covers a burst
    assert run(tworld).sent == 1
    assert dispatcher.claim_kick(str(tworld.registration.pk))  # the run started: kicks may queue again


def test_retry_after_pauses_the_whole_platform(tworld: World, settings: Any, one_at_a_time: None) -> None:
    settings.LTI_AGS_CIRCUIT_FAILURES = 2
    tworld.lms.faults.rate_limit_per_second = 0  # every score post is over the limit
    tworld.lms.faults.retry_after = 30
    entries = [record(tworld, index, 5) for index in range(3)]
    registration = str(tworld.registration.pk)
    before = dt.datetime.now(dt.UTC)

    report = run(tworld, slice_seconds=1.5)

    # Two 429s in a row: every worker holds off for Retry-After, so the third score
    # is not sent, and the first two wait at least Retry-After.
    assert (report.reason, report.sent, dict(report.outcomes)) == ("slice", 2, {"retry": 2})
    assert tworld.lms.stats.rate_limited == 2
    assert 25 < throttle.paused_for(registration) <= 30
    first, second, third = (OutboxEntry.objects.get(pk=e.pk) for e in entries)
    for entry in (first, second):
        assert (entry.status, entry.attempts, entry.last_status_code) == (OutboxStatus.PENDING, 1, 429)
        assert entry.next_attempt_at >= before + dt.timedelta(seconds=30)
    assert (third.status, third.attempts) == (OutboxStatus.PENDING, 0)
    assert tworld.lms.score_log == []

    # After Retry-After the platform takes scores again: all three arrive, once.
    tworld.lms.faults.rate_limit_per_second = None
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=31), tick=True):
        assert throttle.paused_for(registration) == 0
        report = run(tworld)
    assert (report.reason, report.sent, dict(report.outcomes)) == ("idle", 3, {"delivered": 3})
    assert sorted(sent_users(tworld)) == sorted(tworld.subs[s.pk] for s in tworld.students)


def test_an_open_circuit_is_probed_one_request_at_a_time(tworld: World, settings: Any) -> None:
    settings.LTI_AGS_MAX_CONCURRENCY = 1
    settings.LTI_AGS_CIRCUIT_FAILURES = 2
    settings.LTI_AGS_CIRCUIT_PAUSE_SECONDS = 20.0
    # A failed score is not due again within a run (5 to 10 s), but is by the next.
    settings.LTI_AGS_BACKOFF_BASE_SECONDS = 10.0
    settings.LTI_AGS_BACKOFF_CAP_SECONDS = 10.0
    registration = str(tworld.registration.pk)
    entries = [record(tworld, index, 5) for index in range(3)]
    tworld.lms.faults.outage = (0.0, time.time() + 3600)

    assert run(tworld, slice_seconds=1.0).sent == 2  # two failures open the circuit
    assert throttle.probing(registration)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=25)
    with time_machine.travel(later, tick=True):
        # The pause is over but the platform is still down: one probe, which opens
        # the circuit again at once (for twice as long).
        assert run(tworld, slice_seconds=1.0).sent == 1
        assert 30 < throttle.paused_for(registration) <= 40
    assert tworld.lms.stats.outage_refusals == 3

    tworld.lms.faults.outage = None
    with time_machine.travel(later + dt.timedelta(seconds=45), tick=True):
        report = run(tworld)
    assert (report.reason, report.sent, dict(report.outcomes)) == ("idle", 3, {"delivered": 3})
    assert not throttle.probing(registration)
    attempts = sorted(OutboxEntry.objects.get(pk=e.pk).attempts for e in entries)
    assert attempts == [1, 2, 3]  # three failed tries among them, then one delivery each


def test_a_newer_score_supersedes_a_pending_one_and_follows_one_in_flight(tworld: World) -> None:
    older = record(tworld, 0, 4)
    record(tworld, 0, 6, when=WHEN + dt.timedelta(minutes=1))
    latest = record(tworld, 0, 7, when=WHEN + dt.timedelta(minutes=2))
    assert OutboxEntry.objects.get(pk=older.pk).status == OutboxStatus.SUPERSEDED

    tworld.lms.hold.set()  # the next score post parks at the platform
    runner = threading.Thread(target=run, args=(tworld,))
    runner.start()
    try:
        assert tworld.lms.held.wait(30)
        # While 7 is in flight the teacher changes the score again.
        newest = record(tworld, 0, 8, when=WHEN + dt.timedelta(minutes=3))
    finally:
        tworld.lms.release_held()
        runner.join()

    sub = tworld.subs[tworld.students[0].pk]
    assert [s["scoreGiven"] for s in tworld.lms.score_log] == [7, 8]
    assert tworld.lms.latest_score(tworld.line_item.url, sub)["scoreGiven"] == 8
    assert tworld.lms.stats.duplicates == tworld.lms.stats.scores_stale == 0
    statuses = dict(OutboxEntry.objects.values_list("pk", "status"))
    assert (statuses[latest.pk], statuses[newest.pk]) == (OutboxStatus.DELIVERED, OutboxStatus.DELIVERED)
    assert sorted(statuses.values()) == sorted(
        [OutboxStatus.SUPERSEDED, OutboxStatus.SUPERSEDED, OutboxStatus.DELIVERED, OutboxStatus.DELIVERED]
    )


def test_entries_of_a_dead_worker_are_sent_again_after_their_lease(tworld: World, settings: Any) -> None:
    entries = [record(tworld, index, index + 1) for index in range(3)]
    channel = str(tworld.registration.pk)
    # A dispatcher leased two entries and its worker was killed, leaving its lock
    # behind. (The subprocess test in test_worker_killed.py kills a real worker in the
    # middle of an HTTP call.)
    dead = progress.outbox_lease(kind=AGS_DESTINATION, channel=channel, limit=2, lease_seconds=30)
    assert [item.id for item in dead] == [entries[0].pk, entries[1].pk]
    settings.LTI_AGS_DISPATCH_LOCK_SECONDS = 2
    assert dispatcher.DispatcherLock(channel, seconds=2).acquire()

    assert run(tworld) == dispatcher.RunReport("busy")
    time.sleep(3.1)  # the dead worker's lock runs out on its own (cache TTL, whole seconds)
    # While the leases live, a new dispatcher sends only the entry nobody holds.
    report = run(tworld)
    assert (report.reason, report.sent, dict(report.outcomes)) == ("idle", 1, {"delivered": 1})
    assert sent_users(tworld) == [tworld.subs[tworld.students[2].pk]]

    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=31), tick=True):
        report = run(tworld)

    assert (report.sent, dict(report.outcomes)) == (2, {"delivered": 2})
    states = {e.pk: (e.status, e.attempts) for e in OutboxEntry.objects.all()}
    assert states == {
        entries[0].pk: (OutboxStatus.DELIVERED, 2),
        entries[1].pk: (OutboxStatus.DELIVERED, 2),
        entries[2].pk: (OutboxStatus.DELIVERED, 1),
    }
    assert tworld.lms.stats.scores_applied == 3
    assert tworld.lms.stats.duplicates == 0
    # The dead worker's claim cannot record an outcome over the new one (fencing).
    assert not progress.outbox_mark_failed(item=dead[0], error="late answer", status_code=500)
    assert OutboxEntry.objects.get(pk=entries[0].pk).status == OutboxStatus.DELIVERED
