"""Score delivery against the loopback LMS: shapes, retries, superseding, failures."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

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
