"""The class page's grades and class list, and the deliveries admin page."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from lti_tool.advantage import tasks
from lti_tool.advantage.delivery import score_deliver
from lti_tool.advantage.models import LineItem, MembershipSync, ScoreDelivery
from lti_tool.models import ResourceLink
from tests.factories import TenantFactory, UserFactory, district_admin
from tests.lti_advantage.conftest import CONTEXT, World
from tutoring_core.accounts.models import AuditLog
from tutoring_core.progress import api as progress
from tutoring_core.progress.models import OutboxEntry, OutboxStatus, Result

pytestmark = pytest.mark.peer


def _url(world: World, name: str = "class_grades") -> str:
    return reverse(f"lti_advantage:{name}", kwargs={"class_id": world.klass.pk})


@pytest.mark.parametrize("who", ["teacher", "district_admin"])
def test_staff_see_the_grades_page(client: Any, world: World, who: str) -> None:
    user = world.teacher if who == "teacher" else district_admin(world.tenant)
    client.force_login(user)
    response = client.get(_url(world))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Quiz 1" in body
    for student in world.students:
        assert student.full_name in body
    assert "Sync class list from the LMS" in body


@pytest.mark.parametrize("who", ["student_same_class", "bystander_same_tenant", "admin_other_tenant"])
def test_others_get_404_everywhere(client: Any, world: World, who: str) -> None:
    if who == "student_same_class":
        user = world.students[0]
    elif who == "bystander_same_tenant":
        user = UserFactory(tenant=world.tenant)
    else:
        user = district_admin(TenantFactory(slug="far-away"))
    client.force_login(user)
    for name in ("class_grades", "class_grades_setup", "class_roster_sync"):
        assert client.get(_url(world, name)).status_code == 404
        assert (
            client.post(_url(world, name), {"activity": str(world.line_item.activity_id)}).status_code == 404
        )
    assert Result.objects.count() == 0
    assert MembershipSync.objects.count() == 0


def test_teacher_enters_a_score_and_it_reaches_the_lms(
    client: Any, world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(world.teacher)
    student = world.students[1]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            _url(world),
            {
                "activity": str(world.line_item.activity_id),
                "student": str(student.pk),
                "score": "8.25",
                "comment": "Well argued",
            },
        )
    assert response.status_code == 302
    result = Result.objects.get()
    assert (result.user_id, result.score_given, result.comment, result.source, result.recorded_by_id) == (
        student.pk,
        8.25,
        "Well argued",
        "teacher",
        world.teacher.pk,
    )
    assert len(callbacks) == 1  # the delivery task is enqueued after commit
    entry = OutboxEntry.objects.get(result=result)
    assert AuditLog.objects.filter(action="grades.score_entered", actor=world.teacher).count() == 1

    assert score_deliver(entry_id=entry.pk).kind == "delivered"
    sent = world.lms.latest_score(world.line_item.url, world.subs[student.pk])
    assert (sent["scoreGiven"], sent["comment"], sent["activityProgress"]) == (
        8.25,
        "Well argued",
        "Completed",
    )
    page = client.get(_url(world)).content.decode()
    assert "in LMS" in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"score": "-1"}, "greater than or equal to 0"),
        ({"score": "lots"}, "Enter a number"),
        ({"student": "not-a-uuid"}, "Enter a valid UUID"),
        ({"activity": "00000000-0000-0000-0000-000000000000"}, "not placed in this class"),
        ({"student": "OUTSIDER"}, "not an active student of this activity"),
        ({"comment": "x" * 4001}, "at most 4000 characters"),
    ],
)
def test_bad_score_input_is_a_400_that_changes_nothing(
    client: Any, world: World, change: dict[str, str], message: str
) -> None:
    client.force_login(world.teacher)
    data = {
        "activity": str(world.line_item.activity_id),
        "student": str(world.students[0].pk),
        "score": "5",
        "comment": "",
    }
    data.update(change)
    if data["student"] == "OUTSIDER":
        data["student"] = str(UserFactory(tenant=world.tenant).pk)
    response = client.post(_url(world), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Result.objects.count() == 0
    assert OutboxEntry.objects.count() == 0
    assert world.lms.score_log == []


def test_roster_sync_from_the_class_page_shows_its_result(
    client: Any, world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(world.teacher)
    world.lms.add_member(
        CONTEXT, "New-Dee", ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"], name="Dee Ng"
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert client.post(_url(world, "class_roster_sync")).status_code == 302
        # Pressing again while it is queued joins the queued sync.
        assert client.post(_url(world, "class_roster_sync")).status_code == 302
    assert len(callbacks) == 1
    sync = MembershipSync.objects.get()
    assert (sync.status, sync.requested_by_id) == (MembershipSync.Status.PENDING, world.teacher.pk)

    assert tasks.sync_membership.apply(args=[str(sync.pk)]).get() == "done"

    page = client.get(_url(world)).content.decode()
    assert "Dee Ng" in page
    sync.refresh_from_db()
    # New: Dee and the teacher's LMS account (the students were enrolled already).
    assert (sync.status, sync.added, sync.members_seen) == (MembershipSync.Status.DONE, 2, 5)
    assert "2 added" in page


def test_setup_makes_columns_for_gradable_placements(
    client: Any, world: World, django_capture_on_commit_callbacks: Any
) -> None:
    ResourceLink.objects.create(
        tenant=world.tenant,
        registration=world.registration,
        deployment=world.link.deployment,
        context=world.context,
        resource_link_id="rl-Essay",
        title="Essay",
        ags_lineitems_url=world.lms.lineitems_url(CONTEXT),
        ags_scopes=["https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"],
    )
    client.force_login(world.teacher)
    assert "1 activity placed in the LMS can send grades" in client.get(_url(world)).content.decode()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert client.post(_url(world, "class_grades_setup")).status_code == 302
    assert len(callbacks) == 1
    essay = LineItem.objects.get(resource_link_id="rl-Essay")
    assert essay.url == ""

    assert tasks.sync_line_item.apply(args=[str(essay.pk)]).get() == "synced"
    essay.refresh_from_db()
    assert world.lms.lineitems[CONTEXT][essay.url]["label"] == "Essay"


def test_admin_lists_failed_deliveries_and_retries_them(client: Any, world: World) -> None:
    world.lms.remove_member(CONTEXT, world.subs[world.students[0].pk])
    recorded = progress.result_record(
        tenant=world.tenant,
        activity_id=world.line_item.activity_id,
        user_id=world.students[0].pk,
        score_given=4,
        source="teacher",
    )
    (entry_id,) = recorded.outbox_entry_ids
    assert score_deliver(entry_id=entry_id).kind == "failed"
    admin_user = district_admin(world.tenant)
    client.force_login(admin_user)

    listing = client.get(reverse("admin:lti_advantage_scoredelivery_changelist") + "?state=open")
    assert listing.status_code == 200
    assert "is not a member of this course" in listing.content.decode()

    response = client.post(
        reverse("admin:lti_advantage_scoredelivery_changelist"),
        {"action": "retry_deliveries", "_selected_action": [str(entry_id)]},
    )
    assert response.status_code == 302
    entry = ScoreDelivery.objects.get(pk=entry_id)
    assert (entry.status, entry.attempts, entry.last_error) == (OutboxStatus.PENDING, 0, "")
    assert AuditLog.objects.filter(action="grades.delivery_retry", actor=admin_user).count() == 1

    # Fixed on the platform side: the retry delivers.
    world.lms.add_member(CONTEXT, world.subs[world.students[0].pk], ["Learner"])
    assert score_deliver(entry_id=entry_id).kind == "delivered"


def test_admin_shows_sync_progress(client: Any, world: World) -> None:
    MembershipSync.objects.create(
        tenant=world.tenant,
        klass=world.klass,
        registration_id=world.registration.pk,
        memberships_url=world.lms.memberships_url(CONTEXT),
        status=MembershipSync.Status.RUNNING,
        pages=3,
        members_seen=150,
    )
    client.force_login(district_admin(world.tenant))
    listing = client.get(reverse("admin:lti_advantage_membershipsync_changelist")).content.decode()
    assert "Running" in listing and "150" in listing
