"""The slot search across every tutor serving a class reads in a constant number of
queries (however many tutors), gives each tutor exactly what ``slots_for`` gives, and the
booking page uses it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import UserFactory
from tests.scheduling.factories import (
    NOW,
    AvailabilityOverrideFactory,
    AvailabilityRuleFactory,
    SessionFactory,
    TutorProfileFactory,
    World,
    make_world,
)
from tutoring_core.scheduling import api, services

UTC = dt.UTC
H = dt.timedelta(hours=1)
pytestmark = pytest.mark.django_db
ZONES = ("America/Chicago", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata")


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


@pytest.fixture(autouse=True)
def frozen() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _add_tutors(world: World, count: int, first: int = 0) -> None:
    """Tutors of the class with their own zones, hours, a day off, buffers, a cap, sessions."""
    for n in range(first, first + count):
        user = UserFactory(
            tenant=world.tenant, username=f"tutor-{n}", first_name="Tutor", last_name=f"{n:03d}"
        )
        profile = TutorProfileFactory(
            user=user,
            time_zone=ZONES[n % len(ZONES)],
            session_lengths=[45, 60],
            buffer_before_min=5 * (n % 3),
            buffer_after_min=10,
            min_notice_min=60 * (n % 2),
            daily_cap=2 if n % 2 else None,
        )
        profile.classes.add(world.klass)
        for day in range(n % 3, 6):
            AvailabilityRuleFactory(
                tutor=profile, weekday=day, start_minute=8 * 60, end_minute=12 * 60 + 30 * n
            )
        AvailabilityOverrideFactory(tutor=profile, date=dt.date(2027, 3, 3), unavailable=True)
        AvailabilityOverrideFactory(
            tutor=profile, date=dt.date(2027, 3, 4), unavailable=False, start_minute=600, end_minute=900
        )
        start = dt.datetime(2027, 3, 2, 14 + n % 5, tzinfo=UTC)
        SessionFactory(tutor=user, start=start, block_start=start - 10 * dt.timedelta(minutes=1))
        SessionFactory(tutor=user, start=start + 24 * H, status="cancelled")


def _queries(fn: Any) -> tuple[int, Any]:
    with CaptureQueriesContext(connection) as seen:
        result = fn()
    return len(seen), result


def test_class_slots_reads_in_a_constant_number_of_queries(
    world: World, django_assert_num_queries: Any
) -> None:
    end = NOW + 7 * 24 * H
    _add_tutors(world, 2)
    with django_assert_num_queries(6):
        few = services.class_slots(klass=world.klass, start=NOW, end=end, duration_min=60)
    _add_tutors(world, 9, first=2)
    # The class, tutors, rules, overrides, busy blocks, per-day counts: 11 tutors, the same 6 queries.
    with django_assert_num_queries(6):
        many = services.class_slots(klass=world.klass, start=NOW, end=end, duration_min=60)
    assert len(few) == 3 and len(many) == 12  # the world's own tutor serves the whole district
    assert [p.user.username for p, _m, _s in many][:3] == ["tutor-0", "tutor-1", "tutor-2"]
    # Each tutor's slots are exactly those slots_for gives them.
    for profile, minutes, found in many:
        assert minutes == 60
        assert found == services.slots_for(tutor=profile.user, start=NOW, end=end, duration_min=60)
    assert sum(len(found) for _p, _m, found in many) > 0


def test_a_length_a_tutor_does_not_offer_falls_back_to_their_first(world: World) -> None:
    _add_tutors(world, 1)
    end = NOW + 3 * 24 * H
    found = {
        p.user.username: (m, s)
        for p, m, s in services.class_slots(klass=world.klass, start=NOW, end=end, duration_min=45)
    }
    # The world's tutor offers 30 and 60: their first, 30. tutor-0 offers 45.
    assert found["north-tutor"][0] == 30
    assert found["north-tutor"][1] == services.slots_for(
        tutor=world.tutor, start=NOW, end=end, duration_min=30
    )
    assert found["tutor-0"][0] == 45


def test_api_class_slots_hands_out_values_and_scopes_by_tenant(world: World) -> None:
    _add_tutors(world, 1)
    end = NOW + 2 * 24 * H
    values = api.class_slots(
        tenant_id=world.tenant.pk, class_id=world.klass.pk, start=NOW, end=end, duration_min=60
    )
    assert [(v.name, v.duration_min) for v in values] == [("Tutor 000", 60), ("Priya Shah", 60)]
    assert values[1].slots == tuple(
        services.slots_for(tutor=world.tutor, start=NOW, end=end, duration_min=60)
    )
    with pytest.raises(api.NotFound) as missing:
        api.class_slots(tenant_id=world.other_tenant.pk, class_id=world.klass.pk, start=NOW, end=end)
    assert (missing.value.reason, missing.value.field) == ("No such class.", "class_id")


def test_booking_page_queries_do_not_grow_with_its_tutors(client: Any, world: World) -> None:
    client.force_login(world.student)
    url = reverse("scheduling:class_booking", kwargs={"class_id": world.klass.pk})
    _add_tutors(world, 1)
    client.get(url)  # warm: sessions, caches
    few, response = _queries(lambda: client.get(url))
    assert response.status_code == 200 and len(response.context["tutors"]) == 2
    _add_tutors(world, 7, first=1)
    many, response = _queries(lambda: client.get(url))
    assert response.status_code == 200 and len(response.context["tutors"]) == 9
    assert many == few
    # The page shows what the service finds for each tutor.
    tutor = response.context["tutors"][0]
    minutes = tutor["minutes"]
    shown = [(s, e) for _day, items in tutor["days"] for s, e, _v in items]
    week_end = dt.datetime(2027, 3, 8, 6, tzinfo=UTC)  # next Monday 00:00 in Chicago (the student's zone)
    assert shown == services.slots_for(
        tutor=tutor["profile"].user, start=NOW, end=week_end, duration_min=minutes
    )
