"""Dates near year 1 or 9999 (a page form or a caller can send them) are refused with the
field named, never a 500: the services, the selectors, the week view and the editor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.urls import reverse

from tests.scheduling.factories import NOW, World, make_world
from tutoring_core.scheduling import selectors, services
from tutoring_core.scheduling.errors import InvalidInput

UTC = dt.UTC
pytestmark = pytest.mark.django_db

FAR = [
    dt.datetime(1, 1, 1, tzinfo=UTC),
    dt.datetime(1, 1, 1, 3, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    dt.datetime(9999, 12, 31, 23, tzinfo=UTC),
]


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


@pytest.fixture(autouse=True)
def frozen() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.mark.parametrize("when", FAR)
def test_selectors_read_far_dates_without_overflowing(world: World, when: dt.datetime) -> None:
    start, end = min(when, NOW), max(when, NOW)
    assert (
        selectors.booked_per_day(
            tutor_id=world.tutor.pk, time_zone="Pacific/Kiritimati", start=start, end=end, now=NOW
        )
        == {}
    )
    assert selectors.busy_blocks(tutor_id=world.tutor.pk, start=start, end=end, now=NOW) == []


@pytest.mark.parametrize("when", FAR)
def test_services_refuse_far_times_naming_the_field(world: World, when: dt.datetime) -> None:
    with pytest.raises(InvalidInput) as bad:
        services.slots_for(tutor=world.tutor, start=when, end=NOW + dt.timedelta(days=1), duration_min=60)
    assert (bad.value.reason, bad.value.field) == ("Give a time between the years 1970 and 2199.", "start")
    with pytest.raises(InvalidInput) as bad:
        services.slots_for(tutor=world.tutor, start=NOW, end=when, duration_min=60)
    assert bad.value.field == "end"
    with pytest.raises(InvalidInput) as bad:
        services.booking_create(
            actor=world.student, tutor=world.tutor, student=world.student, start=when, duration_min=60
        )
    assert (bad.value.reason, bad.value.field) == ("Give a time between the years 1970 and 2199.", "start")
    with pytest.raises(InvalidInput) as bad:
        services.class_slots(klass=world.klass, start=when, end=NOW + dt.timedelta(days=1))
    assert bad.value.field == "start"


@pytest.mark.parametrize("day", [dt.date(1, 1, 1), dt.date(9999, 12, 31)])
def test_availability_refuses_far_override_dates(world: World, day: dt.date) -> None:
    with pytest.raises(InvalidInput) as bad:
        services.availability_set(
            actor=world.tutor,
            tutor=world.tutor,
            time_zone="America/Chicago",
            weekly=[],
            overrides=[{"date": day, "unavailable": True}],
        )
    assert (bad.value.reason, bad.value.field) == (
        "Give a date between 1970-01-01 and 2199-12-31.",
        "overrides[0].date",
    )


@pytest.mark.parametrize("week", ["0001-01-01", "0001-01-03", "9999-12-31", "9999-12-27"])
def test_week_view_answers_400_for_far_weeks(client: Any, world: World, week: str) -> None:
    client.force_login(world.tutor)
    response = client.get(reverse("scheduling:my_week"), {"week": week})
    assert response.status_code == 400
    assert "Give a date between 1970-01-01 and 2199-12-31." in response.content.decode()


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_availability_editor_shows_far_dates_next_to_the_field(client: Any, world: World, day: str) -> None:
    client.force_login(world.tutor)
    data = {
        "time_zone": "America/Chicago",
        "buffer_before_min": "0",
        "buffer_after_min": "0",
        "min_notice_min": "0",
        "window_days": "90",
        "daily_cap": "",
        "weekly-TOTAL_FORMS": "0",
        "weekly-INITIAL_FORMS": "0",
        "overrides-TOTAL_FORMS": "1",
        "overrides-INITIAL_FORMS": "0",
        "overrides-0-date": day,
        "overrides-0-unavailable": "on",
        "overrides-0-start": "",
        "overrides-0-end": "",
    }
    response = client.post(reverse("scheduling:my_availability"), data)
    assert response.status_code == 400
    errors = response.context["overrides"].forms[0].errors
    assert errors == {"date": ["Give a date between 1970-01-01 and 2199-12-31."]}
