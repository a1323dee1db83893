"""The Celery tasks' own logic: waking dispatchers (notifier, sweeper, the old task
name), and the NRPS schedule."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from config.celery import app
from lti_tool.advantage import dispatcher, tasks
from lti_tool.advantage.models import MembershipSync
from tests.lti_advantage.conftest import World, notifier_off
from tutoring_core.progress import api as progress
from tutoring_core.progress.models import OutboxEntry, OutboxStatus

pytestmark = pytest.mark.peer


@pytest.fixture
def eager() -> Iterator[None]:
    # Runs .delay() in-process so the tasks' own code is what is tested here; the
    # real worker and broker are exercised by test_worker_killed.py.
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False


def _record(world: World, index: int = 0) -> OutboxEntry:
    recorded = progress.result_record(
        tenant=world.tenant,
        activity_id=world.line_item.activity_id,
        user_id=world.students[index].pk,
        score_given=6,
        source="teacher",
    )
    return OutboxEntry.objects.get(pk=recorded.outbox_entry_ids[0])


def test_sweeper_wakes_the_dispatcher_of_a_platform_with_due_deliveries(tworld: World, eager: None) -> None:
    with notifier_off():
        entry = _record(tworld)
    assert entry.channel == str(tworld.registration.pk)
    # Nobody was told (the notifier did not run): the sweeper finds it.
    assert tasks.sweep_score_outbox() == 1
    entry.refresh_from_db()
    assert (entry.status, entry.attempts) == (OutboxStatus.DELIVERED, 1)
    assert len(tworld.lms.score_log) == 1
    assert tasks.sweep_score_outbox() == 0  # nothing due any more


def test_the_sweeper_routes_entries_that_name_no_platform(tworld: World, eager: None) -> None:
    with notifier_off():
        entry = _record(tworld)
    # As written before destinations named their platform.
    OutboxEntry.objects.filter(pk=entry.pk).update(channel="")

    assert tasks.sweep_score_outbox() == 1

    entry.refresh_from_db()
    assert (entry.channel, entry.status) == (str(tworld.registration.pk), OutboxStatus.DELIVERED)
    assert len(tworld.lms.score_log) == 1


def test_the_old_task_name_still_delivers(tworld: World, eager: None) -> None:
    with notifier_off():
        entry = _record(tworld)

    assert tasks.deliver_score.delay(str(entry.pk)).get() == "dispatched"

    entry.refresh_from_db()
    assert (entry.status, entry.attempts, entry.last_status_code) == (OutboxStatus.DELIVERED, 1, 200)
    assert [s["scoreGiven"] for s in tworld.lms.score_log] == [6]


def test_a_new_score_wakes_its_platforms_dispatcher_once(world: World, monkeypatch: Any) -> None:
    queued: list[str] = []
    monkeypatch.setattr(tasks.dispatch_scores, "delay", queued.append)
    entries = [_record(world, i).pk for i in range(3)]

    tasks.enqueue_deliveries(entries[:1])
    tasks.enqueue_deliveries(entries[1:])  # a burst: the dispatcher already queued sees them all

    assert queued == [str(world.registration.pk)]


def test_a_failed_attempt_waits_for_its_backoff(tworld: World, settings: Any) -> None:
    settings.LTI_AGS_BACKOFF_BASE_SECONDS = 600.0
    tworld.lms.faults.share_500 = 1.0
    with notifier_off():
        entry = _record(tworld)
    handed_over: list[float] = []

    report = dispatcher.dispatch(str(tworld.registration.pk), handoff=handed_over.append)

    entry.refresh_from_db()
    # One attempt, then the dispatcher stops: the retry is not due for minutes, so no
    # successor is scheduled now (the beat sweep wakes one when it falls due).
    assert (report.reason, report.sent, dict(report.outcomes)) == ("idle", 1, {"retry": 1})
    assert (entry.status, entry.attempts, entry.last_status_code) == (OutboxStatus.PENDING, 1, 500)
    assert handed_over == []
    assert tworld.lms.stats.injected_500 == 1


def test_scheduled_class_list_sync_covers_served_classes(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert tasks.schedule_membership_syncs() == 1
        assert tasks.schedule_membership_syncs() == 0  # already queued
    assert len(callbacks) == 1
    sync = MembershipSync.objects.get()
    assert (sync.klass_id, sync.memberships_url) == (world.klass.pk, world.lms.memberships_url("Ctx-AbC123"))
