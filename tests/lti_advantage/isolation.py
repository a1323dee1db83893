"""Isolation makers for lti_advantage's admin models (its URLs take ``class_id``,
which the core registers)."""

from __future__ import annotations

import uuid

from tests import factories as f
from tests.isolation import admin_model
from tutoring_core.accounts.models import Role, Tenant
from tutoring_core.progress import api as progress


def _line_item(tenant: Tenant) -> object:
    from lti_tool.advantage.models import LineItem

    klass = f.ClassFactory(tenant=tenant)
    activity = progress.activity_upsert(
        tenant=tenant, class_id=klass.pk, key=f"lti:{uuid.uuid4()}", title="Quiz"
    )
    return LineItem.objects.create(
        tenant=tenant,
        registration_id=uuid.uuid4(),
        activity_id=activity.id,
        label="Quiz",
        url=f"https://lms.test/li/{uuid.uuid4().hex}",
    )


@admin_model("lti_advantage.LineItem")
def _lineitem(tenant: Tenant) -> object:
    return _line_item(tenant)


@admin_model("lti_advantage.ScoreDelivery")
def _delivery(tenant: Tenant) -> object:
    from lti_tool.advantage.models import AGS_DESTINATION, LineItem, ScoreDelivery

    line_item = _line_item(tenant)
    assert isinstance(line_item, LineItem)
    student = f.UserFactory(tenant=tenant)
    f.EnrollmentFactory(klass=line_item.activity.klass, user=student, role=Role.STUDENT)
    progress.destination_attach(
        tenant=tenant, activity_id=line_item.activity_id, kind=AGS_DESTINATION, key=str(line_item.pk)
    )
    recorded = progress.result_record(
        tenant=tenant, activity_id=line_item.activity_id, user_id=student.pk, score_given=3, source="teacher"
    )
    return ScoreDelivery.objects.get(pk=recorded.outbox_entry_ids[0])


@admin_model("lti_advantage.MembershipSync")
def _sync(tenant: Tenant) -> object:
    from lti_tool.advantage.models import MembershipSync

    return MembershipSync.objects.create(
        tenant=tenant,
        klass=f.ClassFactory(tenant=tenant),
        registration_id=uuid.uuid4(),
        memberships_url="https://lms.test/memberships",
    )
