"""The core's result recording and outbox: validation, superseding, claims and leases."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from tests.factories import ClassFactory, EnrollmentFactory, TenantFactory, UserFactory
from tutoring_core.accounts.models import Role
from tutoring_core.progress import api as progress
from tutoring_core.progress import services
from tutoring_core.progress.models import OutboxEntry, OutboxStatus, Result

WHEN = dt.datetime(2026, 10, 5, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def setup(db: Any) -> dict[str, Any]:
    tenant = TenantFactory(slug="east")
    klass = ClassFactory(tenant=tenant)
    student = UserFactory(tenant=tenant)
    EnrollmentFactory(klass=klass, user=student, role=Role.STUDENT)
    activity = progress.activity_upsert(
        tenant=tenant, class_id=klass.pk, key="scorm:pkg-1", title="Cells", score_maximum=20
    )
    progress.destination_attach(tenant=tenant, activity_id=activity.id, kind="lti_ags", key="LI-1")
    progress.destination_attach(
        tenant=tenant, activity_id=activity.id, kind="oneroster_gradebook", key="GB-1"
    )
    return {"tenant": tenant, "klass": klass, "student": student, "activity": activity}


def _record(s: dict[str, Any], score: Any, when: dt.datetime = WHEN, **kw: Any) -> progress.RecordedResult:
    return progress.result_record(
        tenant=s["tenant"],
        activity_id=s["activity"].id,
        user_id=s["student"].pk,
        score_given=score,
        source=progress.ResultSource.SCORM,
        recorded_at=when,
        **kw,
    )


def test_activity_upsert_is_idempotent(setup: dict[str, Any]) -> None:
    again = progress.activity_upsert(
        tenant=setup["tenant"],
        class_id=setup["klass"].pk,
        key="scorm:pkg-1",
        title="Cells II",
        score_maximum=25,
    )
    assert (again.id, again.created, again.title, again.score_maximum) == (
        setup["activity"].id,
        False,
        "Cells II",
        Decimal(25),
    )


def test_a_result_writes_one_outbox_entry_per_destination(setup: dict[str, Any]) -> None:
    recorded = _record(setup, "15.5", comment="Lab done")

    result = Result.objects.get(pk=recorded.id)
    assert (result.score_given, result.score_maximum, result.comment, result.recorded_at) == (
        Decimal("15.5000"),
        Decimal("20.0000"),
        "Lab done",
        WHEN,
    )
    entries = OutboxEntry.objects.filter(result=result).order_by("destination_kind")
    assert [(e.destination_kind, e.destination_key, e.status, e.attempts) for e in entries] == [
        ("lti_ags", "LI-1", OutboxStatus.PENDING, 0),
        ("oneroster_gradebook", "GB-1", OutboxStatus.PENDING, 0),
    ]
    assert set(recorded.outbox_entry_ids) == {e.pk for e in entries}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"score_given": -1}, "cannot be negative"),
        ({"score_given": "abc"}, "must be a number"),
        ({"score_given": "NaN"}, "finite"),
        ({"score_given": 1, "score_maximum": 0}, "greater than zero"),
        ({"score_given": None}, "needs a score"),
        ({"score_given": 1, "activity_progress": "Done"}, "Activity progress must be one of"),
        ({"score_given": 1, "comment": "x" * 4001}, "too long"),
        ({"score_given": 1, "recorded_at": dt.datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    setup: dict[str, Any], kwargs: dict[str, Any], message: str
) -> None:
    args = {"recorded_at": WHEN, **kwargs}
    with pytest.raises(progress.ProgressError, match=message):
        progress.result_record(
            tenant=setup["tenant"],
            activity_id=setup["activity"].id,
            user_id=setup["student"].pk,
            source=progress.ResultSource.SCORM,
            **args,
        )
    assert Result.objects.count() == 0
    assert OutboxEntry.objects.count() == 0


def test_only_students_of_the_class_in_the_tenant_get_results(setup: dict[str, Any]) -> None:
    outsider = UserFactory(tenant=setup["tenant"])
    other_tenant = TenantFactory(slug="west")
    for user_id, tenant in ((outsider.pk, setup["tenant"]), (setup["student"].pk, other_tenant)):
        with pytest.raises(progress.ProgressError):
            progress.result_record(
                tenant=tenant,
                activity_id=setup["activity"].id,
                user_id=user_id,
                score_given=1,
                source="scorm",
            )
    assert Result.objects.count() == 0


def test_newer_result_supersedes_pending_and_failed_entries(setup: dict[str, Any]) -> None:
    first = _record(setup, 5)
    ags_first = OutboxEntry.objects.get(pk__in=first.outbox_entry_ids, destination_kind="lti_ags")
    OutboxEntry.objects.filter(pk=ags_first.pk).update(status=OutboxStatus.FAILED)
    second = _record(setup, 7, WHEN + dt.timedelta(seconds=1))

    assert set(second.superseded_entry_ids) == set(first.outbox_entry_ids)
    assert set(OutboxEntry.objects.filter(result_id=first.id).values_list("status", flat=True)) == {
        OutboxStatus.SUPERSEDED
    }
    assert set(OutboxEntry.objects.filter(result_id=second.id).values_list("status", flat=True)) == {
        OutboxStatus.PENDING
    }


def test_claim_is_exclusive_and_leases_expire(setup: dict[str, Any]) -> None:
    (entry_id,) = [
        e
        for e in _record(setup, 5).outbox_entry_ids
        if OutboxEntry.objects.get(pk=e).destination_kind == "lti_ags"
    ]
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        item = progress.outbox_claim(entry_id=entry_id, lease_seconds=60)
        assert item is not None and (item.attempts, item.score_given, item.source) == (
            1,
            Decimal("5.0000"),
            "scorm",
        )
        assert progress.outbox_claim(entry_id=entry_id, lease_seconds=60) is None
    # The worker died: after the lease, another may claim it, and the dead one's
    # late outcome is refused (fencing on the lease).
    with time_machine.travel(now + dt.timedelta(seconds=61), tick=False):
        assert progress.outbox_due(kind="lti_ags") == [entry_id]
        again = progress.outbox_claim(entry_id=entry_id, lease_seconds=60)
        assert again is not None and again.attempts == 2
        assert progress.outbox_mark_delivered(item=item, status_code=200) is False
        assert progress.outbox_mark_delivered(item=again, status_code=200) is True
    entry = OutboxEntry.objects.get(pk=entry_id)
    assert (entry.status, entry.attempts, entry.lease_expires_at) == (OutboxStatus.DELIVERED, 2, None)


def test_a_sibling_waits_while_an_older_delivery_is_in_flight(setup: dict[str, Any]) -> None:
    first = _record(setup, 5)
    first_ags = OutboxEntry.objects.get(pk__in=first.outbox_entry_ids, destination_kind="lti_ags").pk
    assert progress.outbox_claim(entry_id=first_ags, lease_seconds=60) is not None
    second = _record(setup, 6, WHEN + dt.timedelta(seconds=1))
    second_ags = OutboxEntry.objects.get(pk__in=second.outbox_entry_ids, destination_kind="lti_ags").pk

    assert OutboxEntry.objects.get(pk=first_ags).status == OutboxStatus.IN_FLIGHT  # in flight: not superseded
    assert progress.outbox_claim(entry_id=second_ags, lease_seconds=60) is None


def test_retry_without_counting_and_requeue_of_failures(setup: dict[str, Any]) -> None:
    ags = next(
        e
        for e in _record(setup, 5).outbox_entry_ids
        if OutboxEntry.objects.get(pk=e).destination_kind == "lti_ags"
    )
    item = progress.outbox_claim(entry_id=ags, lease_seconds=60)
    assert item is not None
    assert progress.outbox_mark_retry(
        item=item, error="", status_code=None, delay_seconds=0, count_attempt=False
    )
    assert OutboxEntry.objects.get(pk=ags).attempts == 0
    item = progress.outbox_claim(entry_id=ags, lease_seconds=60)
    assert item is not None
    assert progress.outbox_mark_failed(
        item=item, error="The platform refused the score (400)", status_code=400
    )

    assert progress.outbox_requeue(tenant=TenantFactory(slug="elsewhere"), entry_ids=[ags]) == []
    assert progress.outbox_requeue(tenant=setup["tenant"], entry_ids=[ags]) == [ags]
    entry = OutboxEntry.objects.get(pk=ags)
    assert (entry.status, entry.attempts, entry.last_error) == (OutboxStatus.PENDING, 0, "")


def test_notifier_hears_new_entries_after_commit(
    setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    heard: list[uuid.UUID] = []
    previous = services._NOTIFIERS.get("oneroster_gradebook")
    progress.outbox_register_notifier(kind="oneroster_gradebook", notify=heard.extend)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            recorded = _record(setup, 5)
            assert heard == []
    finally:
        if previous is None:
            services._NOTIFIERS.pop("oneroster_gradebook", None)
        else:
            services._NOTIFIERS["oneroster_gradebook"] = previous
    assert heard == [
        OutboxEntry.objects.get(pk__in=recorded.outbox_entry_ids, destination_kind="oneroster_gradebook").pk
    ]


def test_latest_results_for_the_class_page(setup: dict[str, Any]) -> None:
    _record(setup, 5)
    _record(setup, 9, WHEN + dt.timedelta(minutes=1), comment="retake")
    latest = progress.latest_results(tenant=setup["tenant"], activity_ids=[setup["activity"].id])
    row = latest[(setup["activity"].id, setup["student"].pk)]
    assert (row.score_given, row.comment, row.delivery_status) == (Decimal("9.0000"), "retake", "pending")


def test_a_retry_of_an_older_score_gives_way_to_a_newer_one(setup: dict[str, Any]) -> None:
    first = _record(setup, 5)
    first_ags = OutboxEntry.objects.get(pk__in=first.outbox_entry_ids, destination_kind="lti_ags").pk
    item = progress.outbox_claim(entry_id=first_ags, lease_seconds=60)
    assert item is not None
    second = _record(setup, 6, WHEN + dt.timedelta(seconds=1))  # lands while the first is in flight
    second_ags = OutboxEntry.objects.get(pk__in=second.outbox_entry_ids, destination_kind="lti_ags").pk

    assert progress.outbox_mark_retry(item=item, error="503", status_code=503, delay_seconds=5) is True

    entry = OutboxEntry.objects.get(pk=first_ags)
    assert (entry.status, entry.superseded_by_id) == (OutboxStatus.SUPERSEDED, second_ags)
    assert progress.outbox_claim(entry_id=second_ags, lease_seconds=60) is not None
