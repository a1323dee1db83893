"""Reads shared by this app's services, tasks and views."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from django.db.models import QuerySet

from lti_tool.advantage.models import LineItem, MembershipSync
from tutoring_core.accounts.api import IdentityKind, Tenant, identity_subject, tenants_by_id


def lti_user_id(*, tenant_id: uuid.UUID, issuer: str, user_id: uuid.UUID) -> str | None:
    """The platform's ``sub`` for a hub user (their LTI identity under ``issuer``)."""
    return identity_subject(tenant_id=tenant_id, user_id=user_id, kind=IdentityKind.LTI, issuer=issuer)


def line_items_for_class(*, tenant_id: uuid.UUID, class_id: uuid.UUID) -> QuerySet[LineItem]:
    return LineItem.objects.filter(tenant_id=tenant_id, activity__klass_id=class_id).select_related(
        "activity"
    )


def latest_membership_sync(*, tenant_id: uuid.UUID, class_id: uuid.UUID) -> MembershipSync | None:
    return (
        MembershipSync.objects.filter(tenant_id=tenant_id, klass_id=class_id).order_by("-created_at").first()
    )


def served_classes() -> Iterator[tuple[Tenant, uuid.UUID]]:
    """Classes with a gradable placement or an earlier class-list sync, once each."""
    pairs = set(LineItem.objects.values_list("tenant_id", "activity__klass_id"))
    pairs |= set(MembershipSync.objects.values_list("tenant_id", "klass_id"))
    tenants = tenants_by_id(tenant_id for tenant_id, _ in pairs)
    for tenant_id, class_id in sorted(pairs, key=lambda pair: (str(pair[0]), str(pair[1]))):
        if tenant_id in tenants:
            yield tenants[tenant_id], class_id
