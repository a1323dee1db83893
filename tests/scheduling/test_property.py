"""Property: no sequence of bookings, holds, cancellations and reschedules leaves two
overlapping active sessions (buffers included) for one tutor (issue 12)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.scheduling.factories import NOW, World, make_world
from tutoring_core.scheduling import services
from tutoring_core.scheduling.errors import SchedulingError
from tutoring_core.scheduling.models import Session

UTC = dt.UTC
# Wednesday 3 March 2027 09:00 Chicago; half-hour starts through the working day.
DAY_START = dt.datetime(2027, 3, 3, 15, tzinfo=UTC)
HALF_HOURS = 16

book = st.tuples(
    st.just("book"),
    st.integers(0, HALF_HOURS - 1),
    st.sampled_from([30, 60]),
    st.booleans(),  # as a hold
    st.integers(0, 1),  # which student
)
cancel = st.tuples(st.just("cancel"), st.integers(0, 20))
move = st.tuples(
    st.just("reschedule"), st.integers(0, 20), st.integers(0, HALF_HOURS - 1), st.sampled_from([30, 60])
)
confirm = st.tuples(st.just("confirm"), st.integers(0, 20))
wait = st.tuples(st.just("wait"), st.sampled_from([2, 6]))
operations = st.lists(st.one_of(book, cancel, move, confirm, wait), min_size=1, max_size=14)


def _assert_no_overlap(world: World, now: dt.datetime) -> None:
    blocks = sorted(
        Session.objects.blocking(now).filter(tutor=world.tutor).values_list("block_start", "block_end", "id")
    )
    for (_s1, end1, id1), (start2, _e2, id2) in itertools.pairwise(blocks):
        assert start2 >= end1, f"sessions {id1} and {id2} overlap"


@pytest.fixture
def world(db: Any) -> World:
    world = make_world()
    world.profile.buffer_before_min = 10
    world.profile.buffer_after_min = 15
    world.profile.save()
    return world


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_no_two_active_sessions_overlap(world: World, ops: list[tuple[Any, ...]]) -> None:
    students = [world.student, world.other_student]
    with time_machine.travel(NOW, tick=False) as clock, transaction.atomic():
        made: list[Any] = []
        now = NOW
        for op in ops:
            try:
                if op[0] == "book":
                    _kind, slot, minutes, hold, who = op
                    made.append(
                        services.booking_create(
                            actor=world.admin,
                            tutor=world.tutor,
                            student=students[who],
                            start=DAY_START + dt.timedelta(minutes=30 * slot),
                            duration_min=minutes,
                            hold=hold,
                        ).pk
                    )
                elif op[0] == "wait":
                    now += dt.timedelta(minutes=op[1])
                    clock.move_to(now)
                elif not made:
                    continue
                elif op[0] == "cancel":
                    services.booking_cancel(actor=world.admin, session_id=made[op[1] % len(made)])
                elif op[0] == "confirm":
                    services.booking_confirm(actor=world.admin, session_id=made[op[1] % len(made)])
                else:
                    _kind, index, slot, minutes = op
                    services.booking_reschedule(
                        actor=world.admin,
                        session_id=made[index % len(made)],
                        start=DAY_START + dt.timedelta(minutes=30 * slot),
                        duration_min=minutes,
                    )
                event(f"{op[0]}: done")
            except SchedulingError as exc:
                # Refused or taken: allowed outcomes; only an overlap is not.
                event(f"{op[0]}: {type(exc).__name__}")
            _assert_no_overlap(world, now)
        transaction.set_rollback(True)
