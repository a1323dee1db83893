"""The scheduling pages: booking in two clicks, conflicts, the confirm step, upcoming
sessions (cancel, reschedule), each with the owner, another role of the same tenant,
and another tenant (404)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.urls import reverse

from tests.factories import district_admin
from tests.scheduling.factories import NOW, WED_10, World, make_world
from tutoring_core.accounts.models import AuditLog
from tutoring_core.scheduling import services
from tutoring_core.scheduling.models import Session, SessionParticipant, TutorProfile

UTC = dt.UTC
pytestmark = pytest.mark.django_db

# Monday 1 March 2027 09:00 in Chicago, the first free slot the tests' "now" leaves.
MON_9 = dt.datetime(2027, 3, 1, 15, tzinfo=UTC)


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


@pytest.fixture(autouse=True)
def frozen() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _slot(world: World, start: dt.datetime, minutes: int = 30) -> str:
    return f"{world.tutor.pk}|{start.isoformat()}|{minutes}"


def _book_url(world: World) -> str:
    return reverse("scheduling:class_booking", kwargs={"class_id": world.klass.pk})


def _hold_url(world: World) -> str:
    return reverse("scheduling:class_booking_hold", kwargs={"class_id": world.klass.pk})


def _counts() -> tuple[int, int, int]:
    return (
        Session.objects.count(),
        SessionParticipant.objects.count(),
        AuditLog.objects.filter(action__startswith="scheduling.session").count(),
    )


# --- the class's booking page ---------------------------------------------------------------


def test_booking_page_lists_the_tutor_and_free_slots_in_the_viewers_zone(client: Any, world: World) -> None:
    world.profile.bio = "Ten years of algebra."
    world.profile.languages = ["English", "Gujarati"]
    world.profile.save()
    client.force_login(world.student)
    response = client.get(_book_url(world))
    assert response.status_code == 200
    page = response.content.decode()
    assert "America/Chicago" in page
    assert "Priya Shah" in page and "Ten years of algebra." in page and "English, Gujarati" in page
    # Monday's first slot is 09:00 Chicago (15:00 UTC); 30 minutes, the tutor's first length.
    assert f'value="{_slot(world, MON_9)}"' in page
    assert ">09:00</button>" in page
    # Friday 5 March, 16:30 is the last 30-minute slot of the week.
    assert f'value="{_slot(world, dt.datetime(2027, 3, 5, 22, 30, tzinfo=UTC))}"' in page
    # A student books for themself: no student picker.
    assert 'id="student"' not in page
    assert response.context["tutors"][0]["minutes"] == 30
    slots = [v for _day, items in response.context["tutors"][0]["days"] for _s, _e, v in items]
    assert len(slots) == 5 * 16  # Mon-Fri 09:00-17:00 in 30-minute slots


def test_booking_page_in_a_viewers_own_zone_and_next_week(client: Any, world: World) -> None:
    world.student.preferred_time_zone = "Europe/Berlin"
    world.student.save()
    client.force_login(world.student)
    response = client.get(_book_url(world), {"week": "1", "duration": "60"})
    page = response.content.decode()
    assert "Europe/Berlin" in page
    # Monday 8 March 09:00 Chicago = 15:00 UTC = 16:00 Berlin.
    monday = dt.datetime(2027, 3, 8, 15, tzinfo=UTC)
    assert f'value="{_slot(world, monday, 60)}"' in page
    assert 'aria-label="16:00 to 17:00, Monday 8 March, with Priya Shah"' in page
    assert response.context["week_start"] == dt.date(2027, 3, 8)


def test_teacher_picks_a_student_of_the_class(client: Any, world: World) -> None:
    client.force_login(world.teacher)
    page = client.get(_book_url(world)).content.decode()
    assert '<label for="student">Book for</label>' in page
    assert f'<option value="{world.student.pk}">Ava Nguyen</option>' in page
    assert "Ben Carter" not in page  # not in this class
    before = _counts()
    refused = client.post(_hold_url(world), {"slot": _slot(world, MON_9)})
    assert refused.status_code == 400
    assert "Choose the student the session is for." in refused.content.decode()
    assert _counts() == before
    held = client.post(_hold_url(world), {"slot": _slot(world, MON_9), "student": str(world.student.pk)})
    session = Session.objects.get()
    assert held.status_code == 302
    assert held["Location"] == reverse("scheduling:booking_confirm", kwargs={"booking_id": session.pk})
    assert session.status == "held"
    assert session.created_by == world.teacher
    assert list(session.participants.values_list("student_id", flat=True)) == [world.student.pk]


def test_guardian_picks_among_their_wards(client: Any, world: World) -> None:
    client.force_login(world.guardian)
    response = client.get(_book_url(world))
    assert response.status_code == 200
    assert [s.pk for s in response.context["students"]] == [world.student.pk]


@pytest.mark.parametrize("persona", ["other_teacher", "other_student", "outsider"])
def test_booking_page_is_404_for_people_outside_the_class(client: Any, world: World, persona: str) -> None:
    user = (
        district_admin(world.other_tenant, username="outsider-admin")
        if persona == "outsider"
        else getattr(world, persona)
    )
    client.force_login(user)
    assert client.get(_book_url(world)).status_code == 404
    before = _counts()
    assert client.post(_hold_url(world), {"slot": _slot(world, MON_9)}).status_code == 404
    assert _counts() == before


def test_two_clicks_book_a_session(client: Any, world: World) -> None:
    client.force_login(world.student)
    held = client.post(_hold_url(world), {"slot": _slot(world, MON_9)})
    session = Session.objects.get()
    assert (session.status, session.start, session.end) == ("held", MON_9, MON_9 + dt.timedelta(minutes=30))
    assert session.hold_expires_at == NOW + dt.timedelta(minutes=5)
    confirm_url = held["Location"]
    page = client.get(confirm_url).content.decode()
    assert "Monday 1 March 2027, 09:00\u201309:30 (America/Chicago)" in page
    assert (
        "Cancel at least 24 hours before the start; a later cancellation is recorded as a late cancellation."
        in page
    )
    assert 'id="confirm-booking"' in page
    done = client.post(confirm_url)
    assert done.status_code == 302
    assert done["Location"] == reverse("scheduling:my_sessions")
    session.refresh_from_db()
    assert session.status == "booked"
    assert session.klass == world.klass
    assert client.get(confirm_url).content.decode().count('id="confirm-booking"') == 0


def test_taken_slot_offers_the_nearest_free_times(client: Any, world: World) -> None:
    services.booking_create(
        actor=world.admin, tutor=world.tutor, student=world.student, start=MON_9, duration_min=30
    )
    client.force_login(world.student)
    before = _counts()
    response = client.post(_hold_url(world), {"slot": _slot(world, MON_9)})
    assert response.status_code == 409
    page = response.content.decode()
    assert "Someone has just booked that time." in page
    alternatives = response.context["taken"]["alternatives"]
    assert [s for s, _e, _v in alternatives][:2] == [
        MON_9 + dt.timedelta(minutes=30),
        MON_9 + dt.timedelta(minutes=60),
    ]
    assert f'value="{_slot(world, MON_9 + dt.timedelta(minutes=30))}"' in page
    assert _counts() == before


@pytest.mark.parametrize(
    ("slot", "reason"),
    [
        ("nonsense", "Choose a time from the list."),
        ("{tutor}|2027-03-01T15:00:00|30", "Choose a time from the list."),  # no offset
        ("{tutor}|2027-03-01T15:00:00+00:00|45", "This tutor offers sessions of 30, 60 minutes."),
        ("{tutor}|2027-03-01T11:00:00+00:00|30", "That time has passed."),
        ("{tutor}|2027-03-06T15:00:00+00:00|30", "That time is outside the tutor&#x27;s available hours."),
    ],
)
def test_bad_slots_are_refused_with_a_reason(client: Any, world: World, slot: str, reason: str) -> None:
    client.force_login(world.student)
    before = _counts()
    response = client.post(_hold_url(world), {"slot": slot.format(tutor=world.tutor.pk)})
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert _counts() == before


def test_another_tenants_tutor_in_a_slot_is_404(client: Any, world: World) -> None:
    client.force_login(world.student)
    before = _counts()
    response = client.post(_hold_url(world), {"slot": f"{world.outsider_tutor.pk}|{MON_9.isoformat()}|30"})
    assert response.status_code == 404
    assert _counts() == before


def test_a_tutors_page_in_the_class(client: Any, world: World) -> None:
    client.force_login(world.student)
    url = reverse("scheduling:tutor_booking", kwargs={"class_id": world.klass.pk, "tutor_id": world.tutor.pk})
    response = client.get(url)
    assert response.status_code == 200
    assert [t["profile"].user_id for t in response.context["tutors"]] == [world.tutor.pk]
    hold = reverse(
        "scheduling:tutor_booking_hold", kwargs={"class_id": world.klass.pk, "tutor_id": world.tutor.pk}
    )
    assert f'action="{hold}"' in response.content.decode()
    assert client.post(hold, {"slot": _slot(world, MON_9)}).status_code == 302
    other = reverse(
        "scheduling:tutor_booking", kwargs={"class_id": world.klass.pk, "tutor_id": world.outsider_tutor.pk}
    )
    assert client.get(other).status_code == 404


# --- the confirm step -----------------------------------------------------------------------


def _held(world: World) -> Session:
    return services.booking_create(
        actor=world.student,
        tutor=world.tutor,
        student=world.student,
        start=MON_9,
        duration_min=30,
        klass=world.klass,
        hold=True,
    )


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("student", 200),
        ("guardian", 200),
        ("teacher", 200),
        ("tutor", 200),
        ("other_student", 404),
        ("other_teacher", 404),
        ("outsider", 404),
    ],
)
def test_confirm_step_personas(client: Any, world: World, persona: str, status: int) -> None:
    session = _held(world)
    user = (
        district_admin(world.other_tenant, username="outsider-admin")
        if persona == "outsider"
        else getattr(world, persona)
    )
    client.force_login(user)
    url = reverse("scheduling:booking_confirm", kwargs={"booking_id": session.pk})
    assert client.get(url).status_code == status
    if status == 404:
        assert client.post(url).status_code == 404
        session.refresh_from_db()
        assert session.status == "held"


def test_an_expired_hold_cannot_be_confirmed(client: Any, world: World, frozen: Any) -> None:
    session = _held(world)
    frozen.move_to(NOW + dt.timedelta(minutes=6))
    client.force_login(world.student)
    response = client.post(reverse("scheduling:booking_confirm", kwargs={"booking_id": session.pk}))
    assert response.status_code == 400
    assert "The hold has expired; choose the time again." in response.content.decode()
    page = client.get(
        reverse("scheduling:booking_confirm", kwargs={"booking_id": session.pk})
    ).content.decode()
    assert "This hold has expired: the time may have gone to someone else." in page
    assert 'id="confirm-booking"' not in page
    session.refresh_from_db()
    assert session.status == "held"


def test_choose_another_time_releases_the_hold(client: Any, world: World) -> None:
    session = _held(world)
    client.force_login(world.student)
    response = client.post(
        reverse("scheduling:booking_cancel", kwargs={"booking_id": session.pk}), {"next": _book_url(world)}
    )
    assert response.status_code == 302
    assert response["Location"] == _book_url(world)
    session.refresh_from_db()
    assert session.status == "cancelled"


# --- upcoming sessions, cancel and reschedule ---------------------------------------------------------


def _booked(world: World, start: dt.datetime = WED_10) -> Session:
    return services.booking_create(
        actor=world.student,
        tutor=world.tutor,
        student=world.student,
        start=start,
        duration_min=60,
        klass=world.klass,
    )


def test_student_and_guardian_see_upcoming_sessions(client: Any, world: World) -> None:
    session = _booked(world)
    url = reverse("scheduling:my_sessions")
    client.force_login(world.student)
    response = client.get(url)
    assert response.status_code == 200
    assert [s.id for s in response.context["groups"][0]["sessions"]] == [session.pk]
    assert "Wednesday 3 March, 10:00\u201311:00" in response.content.decode()
    client.force_login(world.guardian)
    groups = client.get(url).context["groups"]
    assert [(g["title"], [s.id for s in g["sessions"]]) for g in groups] == [
        ("Your sessions", []),
        ("Ava Nguyen's sessions", [session.pk]),
    ]
    client.force_login(world.other_student)
    assert [g["sessions"] for g in client.get(url).context["groups"]] == [[]]


def test_cancel_from_upcoming_sessions(client: Any, world: World) -> None:
    session = _booked(world)
    cancel = reverse("scheduling:booking_cancel", kwargs={"booking_id": session.pk})
    client.force_login(world.other_student)
    assert client.post(cancel).status_code == 404
    client.force_login(district_admin(world.other_tenant, username="outsider-admin"))
    assert client.post(cancel).status_code == 404
    session.refresh_from_db()
    assert session.status == "booked"
    client.force_login(world.student)
    response = client.post(cancel, {"reason": "Dentist"})
    assert response.status_code == 302
    session.refresh_from_db()
    assert (session.status, session.cancel_reason, session.outcome) == ("cancelled", "Dentist", "")


def test_late_cancel_refused_when_the_policy_says_so(client: Any, world: World) -> None:
    from tests.scheduling.factories import SchedulingPolicyFactory

    SchedulingPolicyFactory(tenant=world.tenant, late_cancel_allowed=False)
    session = _booked(world, start=MON_9)  # 3 hours away, inside the 24-hour notice
    client.force_login(world.student)
    response = client.post(reverse("scheduling:booking_cancel", kwargs={"booking_id": session.pk}))
    assert response.status_code == 400
    assert "Too late to cancel: cancel at least 24 hours before the start." in response.content.decode()
    session.refresh_from_db()
    assert session.status == "booked"


def test_reschedule_to_a_new_slot(client: Any, world: World) -> None:
    session = _booked(world)
    url = reverse("scheduling:booking_reschedule", kwargs={"booking_id": session.pk})
    client.force_login(world.other_student)
    assert client.get(url).status_code == 404
    client.force_login(world.student)
    page = client.get(url).content.decode()
    thursday = dt.datetime(2027, 3, 4, 15, tzinfo=UTC)
    value = f"{world.tutor.pk}|{thursday.isoformat()}|60"
    assert f'value="{value}"' in page
    moved = client.post(url, {"slot": value})
    assert moved.status_code == 302
    session.refresh_from_db()
    assert (session.start, session.end, session.sequence) == (thursday, thursday + dt.timedelta(hours=1), 1)


def test_reschedule_onto_a_taken_time_offers_alternatives(client: Any, world: World) -> None:
    session = _booked(world)
    thursday = dt.datetime(2027, 3, 4, 15, tzinfo=UTC)
    services.booking_create(
        actor=world.admin, tutor=world.tutor, student=world.other_student, start=thursday, duration_min=60
    )
    client.force_login(world.student)
    url = reverse("scheduling:booking_reschedule", kwargs={"booking_id": session.pk})
    response = client.post(url, {"slot": f"{world.tutor.pk}|{thursday.isoformat()}|60"})
    assert response.status_code == 409
    assert response.context["taken"][0][0] == thursday + dt.timedelta(hours=1)
    session.refresh_from_db()
    assert session.start == WED_10


# --- ways in: the home page's next steps and the class page ------------------------------------


@pytest.mark.parametrize(
    ("persona", "links"),
    [
        ("tutor", ["scheduling:my_availability", "scheduling:my_week"]),
        ("student", ["scheduling:my_sessions"]),
        ("guardian", ["scheduling:my_sessions"]),
        ("teacher", ["scheduling:my_sessions"]),
        ("admin", ["scheduling:tutor_list"]),
    ],
)
def test_home_next_steps_link_the_scheduling_pages(
    client: Any, world: World, persona: str, links: list[str]
) -> None:
    from tutoring_core.accounts.api import role_assign
    from tutoring_core.accounts.models import Role

    if persona == "tutor":
        role_assign(tenant=world.tenant, user=world.tutor, role=Role.TUTOR)
    client.force_login(getattr(world, persona))
    page = client.get(reverse("web:home")).content.decode()
    for name in links:
        assert f'<li><a href="{reverse(name)}">' in page


def test_class_page_links_its_booking_page(client: Any, world: World) -> None:
    client.force_login(world.student)
    page = client.get(reverse("web:class_detail", kwargs={"class_id": world.klass.pk})).content.decode()
    assert f'<a class="button" href="{_book_url(world)}">Book a tutor</a>' in page


def test_a_double_click_holds_once(client: Any, world: World) -> None:
    client.force_login(world.student)
    first = client.post(_hold_url(world), {"slot": _slot(world, MON_9)})
    second = client.post(_hold_url(world), {"slot": _slot(world, MON_9)})
    session = Session.objects.get()
    assert (
        first["Location"]
        == second["Location"]
        == reverse("scheduling:booking_confirm", kwargs={"booking_id": session.pk})
    )


def test_deep_linking_offers_the_booking_page_and_each_tutor_serving_the_class(world: World) -> None:
    from lti_tool.views import _choices
    from tests.factories import UserFactory
    from tests.scheduling.factories import TutorProfileFactory

    elsewhere = TutorProfileFactory(
        user=UserFactory(tenant=world.tenant, first_name="Omar", last_name="Diaz")
    )
    elsewhere.classes.set([world.other_class])  # serves Biology only
    klass, options = _choices({"class_id": str(world.klass.pk), "tenant": str(world.tenant.pk)})
    assert klass is not None and klass.id == world.klass.pk
    assert [(o["value"], o["title"], o["kind"]) for o in options] == [
        ("class", "Algebra I: tutoring", "Class tutoring page"),
        ("booking", "Algebra I: book a tutor", "Booking page"),
        (f"tutor:{world.tutor.pk}", "Tutoring with Priya Shah", "Tutor's page"),
    ]


def test_booking_page_shows_ten_tutors_a_page(client: Any, world: World) -> None:
    from tests.factories import UserFactory
    from tests.scheduling.factories import TutorProfileFactory

    for n in range(10):
        TutorProfileFactory(
            user=UserFactory(tenant=world.tenant, first_name="Zed", last_name=f"Tutor{n:02d}")
        )
    client.force_login(world.student)
    first = client.get(_book_url(world))
    assert [t["profile"].user.last_name for t in first.context["tutors"]] == ["Shah"] + [
        f"Tutor{n:02d}" for n in range(9)
    ]
    assert "Tutors 1\u201310 of 11" in first.content.decode()
    second = client.get(_book_url(world), {"page": "2"})
    assert [t["profile"].user.last_name for t in second.context["tutors"]] == ["Tutor09"]


def test_the_tutors_home_link_opens_the_availability_editor(client: Any, world: World) -> None:
    """ "Set your weekly availability" on a tutor's home page leads to the editor with their hours."""
    import re

    from tutoring_core.accounts.api import role_assign
    from tutoring_core.accounts.models import Role

    role_assign(tenant=world.tenant, user=world.tutor, role=Role.TUTOR)
    client.force_login(world.tutor)
    home = client.get(reverse("web:home")).content.decode()
    (href,) = re.findall(
        r'<li><a href="([^"]+)">Set your weekly availability so students can book you\.</a>', home
    )
    editor = client.get(href)
    assert editor.status_code == 200
    assert editor.templates[0].name == "scheduling/availability.html"
    assert [f.initial["weekday"] for f in editor.context["weekly"].initial_forms] == [0, 1, 2, 3, 4]


def test_a_tutor_without_a_profile_is_told_why_not_shown_a_404(client: Any, world: World) -> None:
    """The tutor role came from the roster, but no district admin made a profile yet."""
    from tutoring_core.accounts.api import role_assign
    from tutoring_core.accounts.models import Role

    role_assign(tenant=world.tenant, user=world.teacher, role=Role.TUTOR)
    client.force_login(world.teacher)
    for name in ("scheduling:my_availability", "scheduling:my_week"):
        response = client.get(reverse(name))
        assert response.status_code == 200
        page = response.content.decode()
        assert "<h1>Your tutor profile is not set up yet</h1>" in page
        assert "Ask a district admin to make you a tutor." in page
    assert not TutorProfile.objects.filter(user=world.teacher).exists()
