"""Session attendance records in progress (issue 15 point 4): the room's computation, the
tutor's correction (versioned, audited, kept), bad input refused with nothing written, the
summaries, and the read-only admin a district admin reads them in."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import pytest
import time_machine
from django.test import Client

from tests import factories as f
from tutoring_core.accounts.models import AuditLog
from tutoring_core.progress import api as progress
from tutoring_core.progress.models import SessionAttendance, SessionAttendanceHistory

START = dt.datetime(2027, 3, 3, 16, tzinfo=dt.UTC)
M = dt.timedelta(minutes=1)


def _facts(tenant: Any, person: Any, **changes: Any) -> progress.AttendanceFacts:
    facts = progress.AttendanceFacts(
        tenant_id=tenant.pk,
        session_id=uuid.UUID(int=7),
        class_id=None,
        person_id=person.pk,
        session_start=START,
        session_end=START + 60 * M,
        outcome="late",
        first_joined_at=START + 8 * M,
        last_left_at=START + 60 * M,
        minutes_present=52,
        late_minutes=8,
        left_early_minutes=0,
        source="signaling",
    )
    return dataclasses.replace(facts, **changes)


def test_record_then_correct_then_recompute(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    tutor, student = f.UserFactory(tenant=tenant), f.UserFactory(tenant=tenant)
    first = progress.attendance_record(facts=_facts(tenant, student))
    assert (first.outcome, first.version, first.source) == ("late", 1, "signaling")
    assert progress.attendance_record(facts=_facts(tenant, student)) == first  # same facts: nothing new
    # A provider's late leave: the room computes again, the replaced state is kept.
    second = progress.attendance_record(
        facts=_facts(tenant, student, outcome="late", last_left_at=START + 50 * M, left_early_minutes=10)
    )
    assert (second.version, second.left_early_minutes) == (2, 10)
    with time_machine.travel(START + 70 * M, tick=False):
        corrected = progress.attendance_correct(
            actor=tutor, facts=_facts(tenant, student), outcome="attended"
        )
    assert (corrected.outcome, corrected.source, corrected.corrected_by_id, corrected.version) == (
        "attended",
        "tutor_correction",
        tutor.pk,
        3,
    )
    assert corrected.corrected_at == START + 70 * M
    kept = progress.attendance_record(facts=_facts(tenant, student, outcome="no_show"))
    assert kept == corrected
    history = list(
        SessionAttendanceHistory.objects.values_list("version", "outcome", "source", "left_early_minutes")
    )
    assert history == [(1, "late", "signaling", 0), (2, "late", "signaling", 10)]
    log = AuditLog.objects.get(action="progress.attendance.correct")
    assert log.details["from"] == "late"
    assert log.details["version"] == 3
    # The same correction again changes nothing and is not audited twice.
    progress.attendance_correct(actor=tutor, facts=_facts(tenant, student), outcome="attended")
    assert SessionAttendance.objects.get().version == 3
    assert AuditLog.objects.filter(action="progress.attendance.correct").count() == 1


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"outcome": "asleep"}, "Give one of: attended, late, left_early, no_show."),
        (
            {"source": "tutor_correction"},
            "A room's attendance comes from signaling, a provider or its join page.",
        ),
        ({"source": "rumour"}, "A room's attendance comes from signaling, a provider or its join page."),
    ],
)
def test_bad_facts_are_refused_and_nothing_is_written(db: Any, changes: dict[str, str], reason: str) -> None:
    tenant = f.TenantFactory(slug="north")
    student = f.UserFactory(tenant=tenant)
    with pytest.raises(progress.ProgressError) as refused:
        progress.attendance_record(facts=_facts(tenant, student, **changes))
    assert str(refused.value) == reason
    assert SessionAttendance.objects.count() == 0


def test_another_tenants_tutor_cannot_correct(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    student = f.UserFactory(tenant=tenant)
    progress.attendance_record(facts=_facts(tenant, student))
    stranger = f.UserFactory(tenant=f.TenantFactory(slug="south"))
    with pytest.raises(progress.ProgressError):
        progress.attendance_correct(actor=stranger, facts=_facts(tenant, student), outcome="attended")
    assert (SessionAttendance.objects.get().outcome, SessionAttendanceHistory.objects.count()) == ("late", 0)
    assert not AuditLog.objects.filter(action="progress.attendance.correct").exists()


def test_summaries_count_each_outcome_in_one_query(db: Any, django_assert_num_queries: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    ann, bob = f.UserFactory(tenant=tenant), f.UserFactory(tenant=tenant)
    for number, outcome in enumerate(["attended", "late", "late", "no_show"]):
        progress.attendance_record(
            facts=_facts(tenant, ann, session_id=uuid.UUID(int=number), outcome=outcome)
        )
    with django_assert_num_queries(1):
        summaries = progress.attendance_summaries(tenant_id=tenant.pk, person_ids=[ann.pk, bob.pk])
    assert summaries == {
        ann.pk: progress.AttendanceSummary(person_id=ann.pk, attended=1, late=2, left_early=0, no_show=1),
        bob.pk: progress.AttendanceSummary(person_id=bob.pk),
    }
    assert summaries[ann.pk].sessions == 4
    other = f.TenantFactory(slug="south")
    assert progress.attendance_summaries(tenant_id=other.pk, person_ids=[ann.pk])[ann.pk].sessions == 0


def test_district_admin_reads_a_record_and_its_history(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    tutor, student = f.UserFactory(tenant=tenant), f.UserFactory(tenant=tenant, first_name="Sam")
    progress.attendance_record(facts=_facts(tenant, student))
    progress.attendance_correct(actor=tutor, facts=_facts(tenant, student), outcome="attended")
    record = SessionAttendance.objects.get()
    client = Client()
    client.force_login(f.district_admin(tenant))
    page = client.get(f"/admin/progress/sessionattendance/{record.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Replaced states" in html
    assert "Corrected by the tutor" in html
    assert (
        client.post(f"/admin/progress/sessionattendance/{record.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert SessionAttendance.objects.count() == 1
