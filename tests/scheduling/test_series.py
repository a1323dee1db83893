"""A recurring series: each occurrence its own row, conflicts reported occurrence by occurrence."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine

from tests.scheduling.factories import NOW, WED_10, AvailabilityOverrideFactory, World, make_world
from tutoring_core.scheduling import api, services
from tutoring_core.scheduling.models import Series, Session

UTC = dt.UTC

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


@pytest.fixture(autouse=True)
def frozen() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _hour(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2027, 3, day, hour, tzinfo=UTC)


def test_series_books_the_free_occurrences_and_reports_each_conflict(world: World) -> None:
    # 10 March is taken by another student; 24 March is a day off.
    services.booking_create(
        actor=world.admin,
        tutor=world.tutor,
        student=world.other_student,
        start=_hour(10, 16),
        duration_min=60,
    )
    AvailabilityOverrideFactory(tutor=world.profile, date=dt.date(2027, 3, 24), unavailable=True)

    result = services.series_create(
        actor=world.guardian,
        tutor=world.tutor,
        student=world.student,
        start=WED_10,
        duration_min=60,
        rrule="FREQ=WEEKLY;COUNT=4",
    )

    # Wednesdays at 10:00 in Chicago: 16:00Z before the DST change of 14 March, 15:00Z after.
    summary = [(o.start, o.end, o.status, o.reason) for o in result.occurrences]
    assert summary == [
        (_hour(3, 16), _hour(3, 17), "booked", ""),
        (_hour(10, 16), _hour(10, 17), "conflict", "That time is no longer free."),
        (_hour(17, 15), _hour(17, 16), "booked", ""),
        (_hour(24, 15), _hour(24, 16), "refused", "That time is outside the tutor's available hours."),
    ]
    conflict = result.occurrences[1]
    assert sorted(conflict.alternatives) == [(_hour(10, h), _hour(10, h + 1)) for h in (15, 17, 18, 19, 20)]
    series = Series.objects.get(pk=result.series_id)
    assert (series.rrule, series.time_zone, series.created_by) == (
        "FREQ=WEEKLY;COUNT=4",
        "America/Chicago",
        world.guardian,
    )
    rows = Session.objects.filter(series=series).order_by("start")
    assert [(s.start, s.status) for s in rows] == [(_hour(3, 16), "booked"), (_hour(17, 15), "booked")]
    assert [o.session_id for o in result.booked] == [s.pk for s in rows]
    assert len(result.conflicts) == 2
    # Each occurrence stands alone: cancelling one leaves the other.
    services.booking_cancel(actor=world.guardian, session_id=rows[0].pk)
    assert [s.status for s in Session.objects.filter(series=series).order_by("start")] == [
        "cancelled",
        "booked",
    ]


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("FREQ=WEEKLY", "The rule must end: give COUNT or UNTIL."),
        ("FREQ=WEEKLY;COUNT=53", "A series may have at most 52 occurrences."),
        (
            "DTSTART:20270303T100000\nRRULE:FREQ=WEEKLY;COUNT=2",
            "Give one RRULE without DTSTART; the start is given apart.",
        ),
        ("", "Give a recurrence rule (for example FREQ=WEEKLY;COUNT=10)."),
    ],
)
def test_bad_rules_are_refused_with_nothing_written(world: World, rule: str, reason: str) -> None:
    with pytest.raises(api.InvalidInput) as bad:
        services.series_create(
            actor=world.student,
            tutor=world.tutor,
            student=world.student,
            start=WED_10,
            duration_min=60,
            rrule=rule,
        )
    assert (bad.value.reason, bad.value.field) == (reason, "rrule")
    assert (Series.objects.count(), Session.objects.count()) == (0, 0)


def test_unparseable_rule_names_the_problem(world: World) -> None:
    with pytest.raises(api.InvalidInput) as bad:
        services.series_create(
            actor=world.student,
            tutor=world.tutor,
            student=world.student,
            start=WED_10,
            duration_min=60,
            rrule="FREQ=FORTNIGHTLY;COUNT=2",
        )
    assert bad.value.reason.startswith("Not a valid RRULE: ") and bad.value.field == "rrule"
    assert (Series.objects.count(), Session.objects.count()) == (0, 0)


def test_series_is_refused_whole_for_someone_who_may_not_book(world: World) -> None:
    with pytest.raises(api.NotAllowed):
        services.series_create(
            actor=world.other_teacher,
            tutor=world.tutor,
            student=world.student,
            start=WED_10,
            duration_min=60,
            rrule="FREQ=WEEKLY;COUNT=2",
        )
    assert (Series.objects.count(), Session.objects.count()) == (0, 0)
