"""The tutor's pages (week view, availability editor) and the district admin's tutor
pages: owner, another role of the same tenant, another tenant (404)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.urls import reverse

from tests.factories import UserFactory, district_admin
from tests.scheduling.factories import NOW, WED_10, World, make_world
from tutoring_core.accounts.models import AuditLog, Role
from tutoring_core.scheduling import services
from tutoring_core.scheduling.models import AvailabilityOverride, AvailabilityRule, TutorProfile

UTC = dt.UTC
pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


@pytest.fixture(autouse=True)
def frozen() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _outsider(world: World) -> Any:
    return district_admin(world.other_tenant, username="outsider-admin")


def _rules(world: World) -> list[tuple[int, int, int]]:
    return list(
        AvailabilityRule.objects.filter(tutor=world.profile)
        .order_by("weekday", "start_minute")
        .values_list("weekday", "start_minute", "end_minute")
    )


# --- the week view ----------------------------------------------------------------------


def test_tutor_sees_their_week_by_day_in_their_zone(client: Any, world: World) -> None:
    session = services.booking_create(
        actor=world.student,
        tutor=world.tutor,
        student=world.student,
        start=WED_10,
        duration_min=60,
        klass=world.klass,
    )
    client.force_login(world.tutor)
    response = client.get(reverse("scheduling:my_week"))
    assert response.status_code == 200
    days = response.context["days"]
    assert [d for d, _ in days] == [dt.date(2027, 3, 1) + dt.timedelta(days=i) for i in range(7)]
    assert [[s.id for s in items] for _d, items in days] == [[], [], [session.pk], [], [], [], []]
    page = response.content.decode()
    assert "America/Chicago" in page
    assert "10:00\u201311:00" in page and "Ava Nguyen" in page
    assert reverse("scheduling:booking_cancel", kwargs={"booking_id": session.pk}) in page
    # Next week is empty; the week before has nothing either.
    later = client.get(reverse("scheduling:my_week"), {"week": "2027-03-10"})
    assert later.context["monday"] == dt.date(2027, 3, 8)
    assert all(not items for _d, items in later.context["days"])


@pytest.mark.parametrize("persona", ["student", "teacher", "guardian"])
def test_week_view_is_404_for_who_is_not_a_tutor(client: Any, world: World, persona: str) -> None:
    client.force_login(getattr(world, persona))
    assert client.get(reverse("scheduling:my_week")).status_code == 404
    url = reverse("scheduling:tutor_week", kwargs={"tutor_id": world.tutor.pk})
    assert client.get(url).status_code == 404


def test_admin_sees_a_tutors_week_and_another_tenant_does_not(client: Any, world: World) -> None:
    url = reverse("scheduling:tutor_week", kwargs={"tutor_id": world.tutor.pk})
    client.force_login(world.admin)
    assert client.get(url).status_code == 200
    client.force_login(_outsider(world))
    assert client.get(url).status_code == 404


def test_tutor_cancels_and_marks_a_no_show(client: Any, world: World, frozen: Any) -> None:
    first = services.booking_create(
        actor=world.student, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
    )
    second = services.booking_create(
        actor=world.student,
        tutor=world.tutor,
        student=world.student,
        start=WED_10 + dt.timedelta(hours=2),
        duration_min=60,
    )
    client.force_login(world.tutor)
    week = reverse("scheduling:my_week")
    done = client.post(reverse("scheduling:booking_cancel", kwargs={"booking_id": first.pk}), {"next": week})
    assert (done.status_code, done["Location"]) == (302, week)
    first.refresh_from_db()
    assert (first.status, first.cancelled_by) == ("cancelled", world.tutor)
    outcome_url = reverse("scheduling:booking_outcome", kwargs={"booking_id": second.pk})
    early = client.post(outcome_url, {"outcome": "no_show"})
    assert early.status_code == 400
    assert "The session has not started yet." in early.content.decode()
    frozen.move_to(WED_10 + dt.timedelta(hours=2, minutes=20))
    client.force_login(world.tutor)  # two days on, the sign-in has lapsed
    page = client.get(week).content.decode()
    assert f'action="{outcome_url}"' in page
    assert client.post(outcome_url, {"outcome": "no_show", "next": week}).status_code == 302
    second.refresh_from_db()
    assert (second.status, second.outcome) == ("completed", "no_show")
    # A student may not record outcomes.
    client.force_login(world.student)
    refused = client.post(outcome_url, {"outcome": "attended"})
    assert refused.status_code == 403
    second.refresh_from_db()
    assert second.outcome == "no_show"


# --- the availability editor ---------------------------------------------------------------------


def _post_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "time_zone": "America/Chicago",
        "buffer_before_min": "10",
        "buffer_after_min": "5",
        "min_notice_min": "60",
        "window_days": "30",
        "daily_cap": "",
        "weekly-TOTAL_FORMS": "3",
        "weekly-INITIAL_FORMS": "0",
        "weekly-0-weekday": "0",
        "weekly-0-start": "09:00",
        "weekly-0-end": "12:00",
        "weekly-1-weekday": "2",
        "weekly-1-start": "13:30",
        "weekly-1-end": "24:00",
        "weekly-2-weekday": "4",
        "weekly-2-start": "",
        "weekly-2-end": "",
        "overrides-TOTAL_FORMS": "2",
        "overrides-INITIAL_FORMS": "0",
        "overrides-0-date": "2027-03-10",
        "overrides-0-unavailable": "on",
        "overrides-1-date": "2027-03-13",
        "overrides-1-start": "10:00",
        "overrides-1-end": "11:00",
    }
    data.update(overrides)
    return data


def test_availability_editor_shows_and_saves_through_the_service(client: Any, world: World) -> None:
    client.force_login(world.tutor)
    url = reverse("scheduling:my_availability")
    page = client.get(url).content.decode()
    assert page.count('value="09:00"') == 5 and page.count('value="17:00"') == 5
    assert '<label for="id_weekly-0-start">From</label>' in page
    response = client.post(url, _post_data())
    assert response.status_code == 302
    assert _rules(world) == [(0, 540, 720), (2, 810, 1440)]
    assert list(
        AvailabilityOverride.objects.filter(tutor=world.profile)
        .order_by("date")
        .values_list("date", "start_minute", "end_minute", "unavailable")
    ) == [(dt.date(2027, 3, 10), None, None, True), (dt.date(2027, 3, 13), 600, 660, False)]
    world.profile.refresh_from_db()
    assert (
        world.profile.buffer_before_min,
        world.profile.buffer_after_min,
        world.profile.min_notice_min,
        world.profile.window_days,
        world.profile.daily_cap,
    ) == (10, 5, 60, 30, None)
    assert AuditLog.objects.filter(action="scheduling.availability.set", actor=world.tutor).count() == 1


@pytest.mark.parametrize(
    ("change", "row_field", "reason"),
    [
        ({"weekly-1-start": "9am"}, "weekly-1-start", "Give a time as HH:MM, for example 09:30."),
        (
            {"weekly-0-end": "08:00"},
            "weekly-0-end",
            "A rule must end after it starts (an overnight rule is two rules).",
        ),
        (
            {"weekly-2-weekday": "0", "weekly-2-start": "11:00", "weekly-2-end": "13:00"},
            "weekly-2-start",
            "Rules on Monday overlap (11:00 to 13:00 starts before an earlier rule ends).",
        ),
        ({"weekly-0-end": ""}, "weekly-0-end", "Give both times, or leave both empty to drop the row."),
        (
            {"weekly-0-end": "00:00"},
            "weekly-0-end",
            "A rule must end after it starts; midnight at the end of the day is 24:00.",
        ),
        (
            {"overrides-1-unavailable": "on"},
            "overrides-1-start",
            "A day off has no hours: clear the times or untick Day off.",
        ),
        ({"window_days": "731"}, "window_days", "Give a number from 1 to 730."),
        (
            {"time_zone": "Mars/Olympus"},
            "time_zone",
            "Select a valid choice. Mars/Olympus is not one of the available choices.",
        ),
    ],
)
def test_availability_errors_show_next_to_the_field_and_change_nothing(
    client: Any, world: World, change: dict[str, str], row_field: str, reason: str
) -> None:
    client.force_login(world.tutor)
    before = _rules(world)
    response = client.post(reverse("scheduling:my_availability"), _post_data(**change))
    assert response.status_code == 400
    page = response.content.decode()
    assert f'id="id_{row_field}_error"' in page, page
    error_block = page.split(f'id="id_{row_field}_error"', 1)[1].split("</ul>", 1)[0]
    assert reason.replace("'", "&#x27;") in error_block
    assert _rules(world) == before
    assert not AuditLog.objects.filter(action="scheduling.availability.set").exists()


@pytest.mark.parametrize(
    ("persona", "status"), [("admin", 200), ("teacher", 404), ("student", 404), ("outsider", 404)]
)
def test_availability_of_a_tutor_personas(client: Any, world: World, persona: str, status: int) -> None:
    user = _outsider(world) if persona == "outsider" else getattr(world, persona)
    client.force_login(user)
    url = reverse("scheduling:tutor_availability", kwargs={"tutor_id": world.tutor.pk})
    assert client.get(url).status_code == status
    before = _rules(world)
    response = client.post(url, _post_data())
    assert response.status_code == (302 if status == 200 else 404)
    if status == 404:
        assert _rules(world) == before
    else:
        assert _rules(world) == [(0, 540, 720), (2, 810, 1440)]


def test_availability_editor_is_404_for_who_is_not_a_tutor(client: Any, world: World) -> None:
    client.force_login(world.teacher)
    assert client.get(reverse("scheduling:my_availability")).status_code == 404


# --- the district admin's tutors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "status"), [("admin", 200), ("teacher", 404), ("tutor", 404), ("outsider", 404)]
)
def test_tutor_list_personas(client: Any, world: World, persona: str, status: int) -> None:
    user = _outsider(world) if persona == "outsider" else getattr(world, persona)
    client.force_login(user)
    response = client.get(reverse("scheduling:tutor_list"))
    if persona == "outsider":  # their own district's list, without this district's tutors
        assert response.status_code == 200
        assert [p.user_id for p in response.context["profiles"]] == [world.outsider_tutor.pk]
    else:
        assert response.status_code == status
    if status == 200:
        assert [p.user_id for p in response.context["profiles"]] == [world.tutor.pk]  # not the other tenant's
    profile_url = reverse("scheduling:tutor_profile", kwargs={"tutor_id": world.tutor.pk})
    assert client.get(profile_url).status_code == status


def test_admin_makes_a_person_a_tutor_and_edits_the_profile(client: Any, world: World) -> None:
    person = UserFactory(
        tenant=world.tenant, email="maria@north.example", first_name="Maria", last_name="Lopez"
    )
    client.force_login(world.admin)
    missing = client.post(reverse("scheduling:tutor_list"), {"person": world.outsider_student.username})
    assert missing.status_code == 400
    assert "Nobody in your district has that email or username." in missing.content.decode()
    made = client.post(reverse("scheduling:tutor_list"), {"person": "MARIA@north.example"})
    assert made.status_code == 302
    assert made["Location"] == reverse("scheduling:tutor_profile", kwargs={"tutor_id": person.pk})
    assert TutorProfile.objects.filter(user=person).exists()
    assert person.role_assignments.filter(role=Role.TUTOR).exists()
    url = made["Location"]
    bad = client.post(url, {"time_zone": "Europe/Berlin", "session_lengths": "30, forty"})
    assert bad.status_code == 400
    assert "Give whole numbers of minutes separated by commas" in bad.content.decode()
    refused = client.post(url, {"time_zone": "Europe/Berlin", "session_lengths": "2"})
    assert refused.status_code == 400
    assert "Give a number from 5 to 480." in refused.content.decode()
    saved = client.post(
        url,
        {
            "subjects": "Algebra, Geometry",
            "languages": "Spanish",
            "bio": "Math coach.",
            "time_zone": "Europe/Berlin",
            "session_lengths": "45, 30",
            "is_active": "on",
            "class_ids": [str(world.klass.pk)],
        },
    )
    assert saved.status_code == 302
    profile = TutorProfile.objects.get(user=person)
    assert (
        profile.subjects,
        profile.languages,
        profile.time_zone,
        profile.session_lengths,
        profile.is_active,
    ) == (
        ["Algebra", "Geometry"],
        ["Spanish"],
        "Europe/Berlin",
        [30, 45],
        True,
    )
    assert list(profile.classes.all()) == [world.klass]
    # Another tenant's class is not among the choices.
    foreign = client.post(
        url,
        {
            "time_zone": "UTC",
            "session_lengths": "30",
            "class_ids": [str(world.outsider_student.enrollments.get().klass_id)],
        },
    )
    assert foreign.status_code == 400
    assert list(TutorProfile.objects.get(user=person).classes.all()) == [world.klass]


def test_a_district_admin_finds_any_student_and_books_them(client: Any, world: World) -> None:
    """The way in for "a district admin books any student of the district": the Tutors page
    finds students of their district only and links each class's booking page, the student chosen."""
    from tests.factories import EnrollmentFactory
    from tutoring_core.accounts.models import Role

    EnrollmentFactory(klass=world.other_class, user=world.student, role=Role.STUDENT)
    world.outsider_student.first_name = "Ava"
    world.outsider_student.save(update_fields=["first_name"])
    client.force_login(world.admin)
    response = client.get(reverse("scheduling:tutor_list"), {"q": "ava"})
    assert response.status_code == 200
    found = response.context["found"]
    assert [(f["student"], [c.title for c in f["classes"]]) for f in found] == [
        (world.student, ["Algebra I", "Biology"])
    ]
    link = (
        reverse("scheduling:class_booking", kwargs={"class_id": world.klass.pk})
        + f"?student={world.student.pk}"
    )
    assert f'<a href="{link}">Book in Algebra I</a>' in response.content.decode()
    page = client.get(link)
    assert (page.status_code, page.context["chosen_student"], page.context["picks_student"]) == (
        200,
        str(world.student.pk),
        True,
    )
    nobody = client.get(reverse("scheduling:tutor_list"), {"q": "zz-nobody"})
    assert nobody.context["found"] == []
    assert "No student matches “zz-nobody”." in nobody.content.decode()
    # Not for anyone else: the page is the district admin's.
    client.force_login(world.teacher)
    assert client.get(reverse("scheduling:tutor_list"), {"q": "ava"}).status_code == 404
