"""Line items, results and class lists against the loopback LMS (mixed-case,
multi-page answers), and the service-token cache under concurrent load."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest

from lti_tool.advantage import services
from lti_tool.advantage.delivery import score_deliver
from lti_tool.advantage.models import MembershipSync
from lti_tool.advantage.platforms import platform_access
from lti_tool.advantage.protocol import media
from lti_tool.advantage.tokens import access_token
from tests.lti_advantage.conftest import CONTEXT, INSTRUCTOR, LEARNER, World, make_world
from tests.peers.lti_advantage_platform import AdvantagePlatform
from tutoring_core import http
from tutoring_core.accounts.models import ExternalIdentity, Role
from tutoring_core.classes.models import Enrollment, Source
from tutoring_core.progress import api as progress

pytestmark = pytest.mark.peer
TA = "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"


def test_line_item_is_created_on_demand_with_the_spec_shape(world: World) -> None:
    placed = services.placement_register(
        tenant=world.tenant,
        registration_id=world.registration.pk,
        class_id=world.klass.pk,
        resource_link_id="rl-Essay",
        title="Essay",
        score_maximum=50,
        context_id=CONTEXT,
        lineitems_url=world.lms.lineitems_url(CONTEXT),
        tag="writing",
    )
    assert placed.url == ""

    synced = services.lineitem_sync(line_item_id=placed.pk)

    platform_item = world.lms.lineitems[CONTEXT][synced.url]
    assert platform_item == {
        "id": synced.url,
        "label": "Essay",
        "scoreMaximum": 50,
        "resourceId": str(placed.activity_id),
        "resourceLinkId": "rl-Essay",
        "tag": "writing",
    }
    assert synced.url.startswith(world.lms.lineitems_url(CONTEXT) + "/")
    # Idempotent: already bound, nothing new on the platform.
    services.lineitem_sync(line_item_id=placed.pk)
    assert len(world.lms.lineitems[CONTEXT]) == 2


def test_an_existing_line_item_is_found_across_pages_not_duplicated(world: World) -> None:
    for n in range(3):
        world.lms.add_lineitem(CONTEXT, label=f"Other {n}", scoreMaximum=5, resourceId=f"other-{n}")
    existing = world.lms.add_lineitem(CONTEXT, label="Project", scoreMaximum=30, resourceId="proj-Res")
    placed = services.placement_register(
        tenant=world.tenant,
        registration_id=world.registration.pk,
        class_id=world.klass.pk,
        resource_link_id="rl-Project",
        title="Project",
        score_maximum=30,
        lineitems_url=world.lms.lineitems_url(CONTEXT),
        resource_id="proj-Res",
    )
    count = len(world.lms.lineitems[CONTEXT])

    assert services.lineitem_sync(line_item_id=placed.pk).url == existing["id"]
    assert len(world.lms.lineitems[CONTEXT]) == count


def test_line_item_update_puts_the_new_label(world: World) -> None:
    updated = services.lineitem_update(
        line_item_id=world.line_item.pk, label="Quiz 1 (retake)", score_maximum=12
    )
    assert (updated.label, updated.score_maximum) == ("Quiz 1 (retake)", Decimal(12))
    assert world.lms.lineitems[CONTEXT][world.line_item.url]["label"] == "Quiz 1 (retake)"
    assert world.lms.lineitems[CONTEXT][world.line_item.url]["scoreMaximum"] == 12


def test_results_are_read_back_through_every_page(world: World) -> None:
    for index, student in enumerate(world.students):
        recorded = progress.result_record(
            tenant=world.tenant,
            activity_id=world.line_item.activity_id,
            user_id=student.pk,
            score_given=index + 5,
            source=progress.ResultSource.TEACHER,
            comment=f"note {index}",
        )
        assert score_deliver(entry_id=recorded.outbox_entry_ids[0]).kind == "delivered"

    records = services.results_read(line_item_id=world.line_item.pk)  # page size 2: two pages

    got = sorted((r.user_id, r.result_score, r.result_maximum, r.comment) for r in records)
    assert got == sorted(
        (world.subs[s.pk], Decimal(i + 5), Decimal(10), f"note {i}") for i, s in enumerate(world.students)
    )


def test_the_peer_is_case_sensitive(world: World) -> None:
    access = platform_access(world.registration.pk)
    token = access_token(access, [media.SCOPE_NRPS])
    lowered = world.lms.memberships_url(CONTEXT).lower()
    with pytest.raises(http.OutboundHTTPError) as refused:
        http.get(lowered, headers={"Authorization": f"Bearer {token}"})
    assert refused.value.status == 404


def _sync(world: World) -> MembershipSync:
    sync, created = services.membership_sync_request(
        tenant=world.tenant,
        class_id=world.klass.pk,
        registration_id=world.registration.pk,
        memberships_url=world.lms.memberships_url(CONTEXT),
        requested_by=world.teacher,
    )
    assert created
    return services.membership_sync_run(sync_id=sync.pk)


def _lti_enrollments(world: World) -> set[tuple[str, str, str]]:
    return {
        (e.user.external_identities.get(kind="lti").subject, e.role, e.status)
        for e in Enrollment.objects.filter(klass=world.klass, source=Source.LTI).select_related("user")
    }


def test_class_list_sync_pages_through_and_applies_differences(world: World) -> None:
    lms = world.lms
    lms.add_member(
        CONTEXT, "New-Ana", [LEARNER], given_name="Ana", family_name="Diaz", email="ana@school.test"
    )
    lms.add_member(CONTEXT, "New-Ben", [TA], name="Ben Okafor")
    teacher_sub = next(m["user_id"] for m in lms.members[CONTEXT] if m["roles"] == [INSTRUCTOR])

    first = _sync(world)

    assert (
        first.status,
        first.pages,
        first.members_seen,
        first.added,
        first.role_changes,
        first.deactivated,
    ) == (
        MembershipSync.Status.DONE,
        3,
        6,
        3,
        0,
        0,
    )
    assert _lti_enrollments(world) == {
        (teacher_sub, Role.TEACHER, "active"),
        ("New-Ana", Role.STUDENT, "active"),
        ("New-Ben", Role.TUTOR, "active"),
    }
    ana = ExternalIdentity.objects.get(subject="New-Ana").user
    assert (ana.first_name, ana.last_name, ana.email) == ("Ana", "Diaz", "ana@school.test")

    # Next sync: Ana left, Ben became an instructor, Cy is listed but inactive.
    lms.remove_member(CONTEXT, "New-Ana")
    lms.add_member(CONTEXT, "New-Ben", [INSTRUCTOR], name="Ben Okafor")
    lms.add_member(CONTEXT, "New-Cy", [LEARNER])
    lms.members[CONTEXT][-1]["status"] = "Inactive"

    second = _sync(world)

    assert (second.status, second.members_seen, second.added, second.role_changes, second.deactivated) == (
        MembershipSync.Status.DONE,
        6,
        0,
        1,
        1,
    )
    assert _lti_enrollments(world) == {
        (teacher_sub, Role.TEACHER, "active"),
        ("New-Ana", Role.STUDENT, "inactive"),
        ("New-Ben", Role.TUTOR, "inactive"),
        ("New-Ben", Role.TEACHER, "active"),
    }
    # Members enrolled by hand (not from the LMS) are never touched by the sync.
    assert Enrollment.objects.filter(klass=world.klass, source=Source.MANUAL, status="active").count() == 4


def test_a_sync_cut_short_deactivates_nobody(world: World) -> None:
    _sync(world)
    before = _lti_enrollments(world)
    world.lms.faults.all_services = True
    world.lms.faults.share_500 = 1.0
    sync, _ = services.membership_sync_request(
        tenant=world.tenant,
        class_id=world.klass.pk,
        registration_id=world.registration.pk,
        memberships_url=world.lms.memberships_url(CONTEXT),
    )
    with pytest.raises(services.ServiceError) as failed:
        services.membership_sync_run(sync_id=sync.pk)
    assert failed.value.transient
    sync.refresh_from_db()
    assert sync.status == MembershipSync.Status.PENDING  # handed back for a retry
    assert _lti_enrollments(world) == before


def test_a_second_sync_request_joins_the_queued_one(world: World) -> None:
    args = {
        "tenant": world.tenant,
        "class_id": world.klass.pk,
        "registration_id": world.registration.pk,
        "memberships_url": world.lms.memberships_url(CONTEXT),
    }
    first, created = services.membership_sync_request(**args)
    second, created_again = services.membership_sync_request(**args)
    assert (created, created_again, second.pk) == (True, False, first.pk)


def test_one_token_request_under_concurrent_load(db: Any, settings: Any) -> None:
    # Production's shared cache (Redis, its own database here): twelve workers ask
    # for a token at the same instant on a cold cache. (The database cache shared
    # by two worker processes is exercised by test_worker_killed.py.)
    settings.CACHES = {
        "default": {
            "BACKEND": "tutoring_core.redis_cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/12",
            "KEY_PREFIX": f"ags-test-{uuid.uuid4().hex[:8]}",
        }
    }
    with AdvantagePlatform() as lms:
        world = make_world(lms, students=0)
        access = platform_access(world.registration.pk)
        barrier = threading.Barrier(12)
        tokens: list[str] = []
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                barrier.wait()
                tokens.append(access_token(access, [media.SCOPE_SCORE]))
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        assert errors == []
        assert len(tokens) == 12 and len(set(tokens)) == 1
        assert lms.stats.token_requests == 1
        # Another scope set is another token; the same set in another order is not.
        access_token(access, [media.SCOPE_NRPS])
        access_token(access, [media.SCOPE_SCORE, media.SCOPE_SCORE])
        assert lms.stats.token_requests == 2


def test_a_refused_assertion_is_a_clear_non_transient_error(world: World) -> None:
    from lti_tool.advantage.tokens import TokenError

    world.lms.set_tool_jwks({"keys": []})  # the platform no longer knows our key
    with pytest.raises(TokenError) as refused:
        access_token(platform_access(world.registration.pk), [media.SCOPE_SCORE])
    assert refused.value.transient is False
    assert refused.value.status == 400
    assert "invalid_client" in str(refused.value)


def test_token_cached_until_shortly_before_expiry(world: World, settings: Any) -> None:
    import time_machine

    world.lms.token_ttl = 100  # margin: min(60, 100 // 10) = 10 s
    access = platform_access(world.registration.pk)
    start = dt.datetime.now(dt.UTC)
    with time_machine.travel(start, tick=False):
        first = access_token(access, [media.SCOPE_LINEITEM])
    with time_machine.travel(start + dt.timedelta(seconds=89), tick=False):
        assert access_token(access, [media.SCOPE_LINEITEM]) == first
    assert world.lms.stats.token_requests == 1
    with time_machine.travel(start + dt.timedelta(seconds=91), tick=False):
        access_token(access, [media.SCOPE_LINEITEM])
    assert world.lms.stats.token_requests == 2


def test_the_api_door_registers_placements_idempotently(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    from lti_tool.advantage import api

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = api.placement_register(
            tenant=world.tenant,
            registration_id=world.registration.pk,
            class_id=world.klass.pk,
            resource_link_id="rl-Door",
            title="Door quiz",
            lineitems_url=world.lms.lineitems_url(CONTEXT),
        )
        again = api.placement_register(
            tenant=world.tenant,
            registration_id=world.registration.pk,
            class_id=world.klass.pk,
            resource_link_id="rl-Door",
            title="Door quiz",
            lineitems_url=world.lms.lineitems_url(CONTEXT),
        )
    assert (first.line_item_id, first.activity_id, first.line_item_url) == (
        again.line_item_id,
        again.activity_id,
        "",
    )
    assert len(callbacks) == 2  # each asks for the column to be found or made; the task is idempotent
    queued = api.membership_sync_queue(
        tenant=world.tenant,
        class_id=world.klass.pk,
        registration_id=world.registration.pk,
        memberships_url=world.lms.memberships_url(CONTEXT),
    )
    assert (queued.status, queued.created) == ("pending", True)
