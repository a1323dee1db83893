"""The Celery tasks' own logic: the sweeper, rescheduling, the NRPS schedule."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from config.celery import app
from lti_tool.advantage import tasks
from lti_tool.advantage.models import MembershipSync
from tests.lti_advantage.conftest import World
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


def test_sweeper_sends_deliveries_whose_task_was_lost(world: World, eager: None) -> None:
    entry = _record(world)  # never enqueued: the on-commit hook does not run in this test
    assert tasks.sweep_score_outbox(grace_seconds=0) == 1
    entry.refresh_from_db()
    assert entry.status == OutboxStatus.DELIVERED
    assert len(world.lms.score_log) == 1
    assert tasks.sweep_score_outbox(grace_seconds=0) == 0


def test_sweeper_leaves_fresh_entries_to_their_own_task(world: World, eager: None) -> None:
    _record(world)
    assert tasks.sweep_score_outbox() == 0  # due for less than the grace period
    assert world.lms.score_log == []


def test_a_failed_attempt_is_rescheduled_not_repeated_at_once(world: World, eager: None) -> None:
    world.lms.faults.share_500 = 1.0
    entry = _record(world)
    assert tasks.deliver_score.delay(str(entry.pk)).get() == "retry"
    entry.refresh_from_db()
    # The rescheduled run came too early (eager mode ignores the countdown) and
    # found the entry not yet due: one attempt only.
    assert (entry.status, entry.attempts) == (OutboxStatus.PENDING, 1)
    assert world.lms.stats.injected_500 == 1


def test_scheduled_class_list_sync_covers_served_classes(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert tasks.schedule_membership_syncs() == 1
        assert tasks.schedule_membership_syncs() == 0  # already queued
    assert len(callbacks) == 1
    sync = MembershipSync.objects.get()
    assert (sync.klass_id, sync.memberships_url) == (world.klass.pk, world.lms.memberships_url("Ctx-AbC123"))
