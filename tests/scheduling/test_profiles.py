"""Tutor profiles and availability: who may set them, and clear reasons for bad values."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.factories import ClassFactory, UserFactory
from tests.scheduling.factories import World, make_world
from tutoring_core.accounts.models import AuditLog, Role, RoleAssignment
from tutoring_core.scheduling import api, services
from tutoring_core.scheduling.data import DateHours, WeeklyHours
from tutoring_core.scheduling.models import AvailabilityOverride, AvailabilityRule, TutorProfile

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


def test_admin_makes_a_person_a_tutor(world: World) -> None:
    person = UserFactory(tenant=world.tenant, username="marcus", first_name="Marcus", last_name="Lee")
    profile = services.tutor_profile_set(
        actor=world.admin,
        person=person,
        subjects=["Biology", " Chemistry ", "Biology"],
        time_zone="Australia/Lord_Howe",
        session_lengths=[60, 30, 30],
        class_ids=[str(world.klass.pk)],
        school_ids=[],
    )
    assert (profile.subjects, profile.time_zone, profile.session_lengths) == (
        ["Biology", "Chemistry"],
        "Australia/Lord_Howe",
        [30, 60],
    )
    assert list(profile.classes.all()) == [world.klass]
    assert RoleAssignment.objects.get(user=person, role=Role.TUTOR).is_active
    assert AuditLog.objects.get(action="scheduling.tutor.create").target_id == str(profile.pk)
    # Again with one field: only that changes.
    services.tutor_profile_set(actor=world.admin, person=person, bio="Marine biologist.")
    info = api.tutor_info(person.pk)
    assert (info.bio, info.subjects, info.class_ids) == (
        "Marine biologist.",
        ("Biology", "Chemistry"),
        (world.klass.pk,),
    )


@pytest.mark.parametrize(
    ("fields", "error", "reason", "field"),
    [
        (
            {"time_zone": "Mars/Olympus"},
            api.InvalidInput,
            "'Mars/Olympus' is not an IANA time zone (for example America/Chicago).",
            "time_zone",
        ),
        (
            {"session_lengths": []},
            api.InvalidInput,
            "Give at least one session length in minutes.",
            "session_lengths",
        ),
        ({"session_lengths": [0]}, api.InvalidInput, "Give a number from 5 to 480.", "session_lengths"),
        ({"window_days": 731}, api.InvalidInput, "Give a number from 1 to 730.", "window_days"),
        ({"subjects": "Algebra"}, api.InvalidInput, "Give a list of text values.", "subjects"),
        ({"colour": "red"}, api.InvalidInput, "Unknown field 'colour'.", "colour"),
        ({"class_ids": ["nope"]}, api.InvalidInput, "'nope' is not an id.", "class_ids"),
    ],
)
def test_bad_profile_values(
    world: World, fields: dict[str, Any], error: type, reason: str, field: str
) -> None:
    person = UserFactory(tenant=world.tenant)
    with pytest.raises(error) as bad:
        services.tutor_profile_set(actor=world.admin, person=person, **fields)
    assert (bad.value.reason, bad.value.field) == (reason, field)
    assert not TutorProfile.objects.filter(user=person).exists()
    assert not RoleAssignment.objects.filter(user=person, role=Role.TUTOR).exists()


def test_only_a_district_admin_of_the_tenant_makes_tutors(world: World) -> None:
    person = UserFactory(tenant=world.tenant)
    with pytest.raises(api.NotAllowed) as refused:
        services.tutor_profile_set(actor=world.teacher, person=person, subjects=["Art"])
    assert refused.value.reason == "Only a district admin may make a person a tutor."
    with pytest.raises(api.NotFound):
        services.tutor_profile_set(actor=world.admin, person=world.outsider_student, subjects=["Art"])
    other_class = ClassFactory(tenant=world.other_tenant)
    with pytest.raises(api.NotFound) as missing:
        services.tutor_profile_set(actor=world.admin, person=person, class_ids=[other_class.pk])
    assert (missing.value.reason, missing.value.field) == ("No such class.", "class_ids")
    assert not TutorProfile.objects.filter(user=person).exists()


def _set(world: World, actor: Any, **kwargs: Any) -> None:
    values: dict[str, Any] = {
        "actor": actor,
        "tutor": world.tutor,
        "time_zone": "Europe/Berlin",
        "weekly": [WeeklyHours(0, 540, 720), {"weekday": 0, "start_minute": 780, "end_minute": 1440}],
        "overrides": [
            DateHours(dt.date(2027, 3, 29), None, None, True),
            DateHours(dt.date(2027, 3, 28), 60, 180),
        ],
        "buffer_before_min": 5,
        "buffer_after_min": 10,
        "min_notice_min": 120,
        "window_days": 730,
        "daily_cap": 4,
    }
    values.update(kwargs)
    services.availability_set(**values)


def test_tutor_sets_own_availability(world: World) -> None:
    _set(world, world.tutor)
    info = api.tutor_info(world.tutor.pk)
    assert info.weekly == (WeeklyHours(0, 540, 720), WeeklyHours(0, 780, 1440))
    assert info.overrides == (
        DateHours(dt.date(2027, 3, 28), 60, 180),
        DateHours(dt.date(2027, 3, 29), None, None, True),
    )
    assert (info.time_zone, info.buffer_before_min, info.buffer_after_min) == ("Europe/Berlin", 5, 10)
    assert (info.min_notice_min, info.window_days, info.daily_cap) == (120, 730, 4)
    # A district admin may too; someone else may not.
    _set(world, world.admin, weekly=[], overrides=[], daily_cap=None)
    mine = {"tutor": world.profile}
    assert (
        AvailabilityRule.objects.filter(**mine).count()
        == AvailabilityOverride.objects.filter(**mine).count()
        == 0
    )
    with pytest.raises(api.NotAllowed) as refused:
        _set(world, world.teacher)
    assert refused.value.reason == "Only the tutor or a district admin may set this tutor's availability."


@pytest.mark.parametrize(
    ("kwargs", "reason", "field"),
    [
        (
            {"weekly": [WeeklyHours(0, 720, 540)]},
            "A rule must end after it starts (an overnight rule is two rules).",
            "weekly[0].end",
        ),
        ({"weekly": [WeeklyHours(7, 0, 60)]}, "Give a number from 0 to 6.", "weekly[0].weekday"),
        ({"weekly": [WeeklyHours(0, 0, 1441)]}, "Give a number from 1 to 1440.", "weekly[0].end"),
        (
            {"weekly": [WeeklyHours(2, 540, 720), WeeklyHours(2, 700, 800)]},
            "Rules on Wednesday overlap (11:40 to 13:20 starts before an earlier rule ends).",
            "weekly[1]",
        ),
        (
            {
                "overrides": [
                    DateHours(dt.date(2027, 3, 29), None, None, True),
                    DateHours(dt.date(2027, 3, 29), 60, 120),
                ]
            },
            "2027-03-29 is both a day off and has hours.",
            "overrides[1]",
        ),
        (
            {"time_zone": "Europe/Atlantis"},
            "'Europe/Atlantis' is not an IANA time zone (for example America/Chicago).",
            "time_zone",
        ),
        ({"window_days": 0}, "Give a number from 1 to 730.", "window_days"),
        ({"daily_cap": 0}, "Give a number from 1 to 1000.", "daily_cap"),
    ],
)
def test_bad_availability_changes_nothing(
    world: World, kwargs: dict[str, Any], reason: str, field: str
) -> None:
    rules = AvailabilityRule.objects.filter(tutor=world.profile)
    before = list(rules.values_list("weekday", "start_minute", "end_minute"))
    with pytest.raises(api.InvalidInput) as bad:
        _set(world, world.tutor, **kwargs)
    assert (bad.value.reason, bad.value.field) == (reason, field)
    assert list(rules.values_list("weekday", "start_minute", "end_minute")) == before
    world.profile.refresh_from_db()
    assert world.profile.time_zone == "America/Chicago"


def _profile_updates(queries: Any) -> list[str]:
    table = TutorProfile._meta.db_table
    return [q["sql"] for q in queries if q["sql"].startswith(f'UPDATE "{table}"')]


def test_profile_writes_only_what_changed(world: World) -> None:
    """tutoring_core.rows.save_changed: a profile write sets only the changed columns (two
    writers of different columns do not undo each other); an unchanged value, no UPDATE."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as same:
        services.tutor_profile_set(actor=world.admin, person=world.tutor, subjects=["Algebra"])
    assert _profile_updates(same.captured_queries) == []
    with CaptureQueriesContext(connection) as changed:
        services.tutor_profile_set(actor=world.admin, person=world.tutor, bio="Maths.", subjects=["Algebra"])
    (update,) = _profile_updates(changed.captured_queries)
    assert update.split(" WHERE ")[0].count("=") == 2  # bio and updated_at
    assert '"bio" =' in update and '"subjects"' not in update

    weekly = [WeeklyHours(day, 9 * 60, 17 * 60) for day in range(5)]
    unchanged = {
        "time_zone": "America/Chicago",
        "weekly": weekly,
        "buffer_before_min": 0,
        "buffer_after_min": 0,
        "min_notice_min": 0,
        "window_days": 90,
        "daily_cap": None,
    }
    with CaptureQueriesContext(connection) as same:
        services.availability_set(actor=world.tutor, tutor=world.tutor, **unchanged)
    assert _profile_updates(same.captured_queries) == []
    with CaptureQueriesContext(connection) as changed:
        services.availability_set(
            actor=world.tutor, tutor=world.tutor, **{**unchanged, "buffer_after_min": 10}
        )
    (update,) = _profile_updates(changed.captured_queries)
    assert '"buffer_after_min" =' in update and '"time_zone"' not in update
    world.profile.refresh_from_db()
    assert (world.profile.buffer_after_min, world.profile.bio) == (10, "Maths.")
