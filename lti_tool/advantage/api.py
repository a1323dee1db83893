"""The door other apps use into the LTI Advantage services.

``lti_tool`` calls :func:`placement_register` when a launch (or a deep-linking
return) carries an AGS claim, so the placement's results reach the platform's
gradebook; anyone may queue a class-list sync. Results themselves are recorded
through ``tutoring_core.progress.api.result_record``, never here.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from functools import partial

from django.db import transaction

from lti_tool.advantage import services, tasks
from lti_tool.advantage.data import Placement, SyncRef
from tutoring_core.accounts.api import Tenant, User

__all__ = ["Placement", "SyncRef", "membership_sync_queue", "placement_plan", "placement_register"]


def placement_register(
    *,
    tenant: Tenant,
    registration_id: uuid.UUID,
    class_id: uuid.UUID,
    resource_link_id: str,
    title: str,
    lineitem_url: str = "",
    lineitems_url: str = "",
    context_id: str = "",
    score_maximum: Decimal | int | float = 100,
) -> Placement:
    """Make a placed resource link gradable (idempotent). Without a ``lineitem_url``
    the column is found or created in ``lineitems_url`` after commit."""
    line_item = services.placement_register(
        tenant=tenant,
        registration_id=registration_id,
        class_id=class_id,
        resource_link_id=resource_link_id,
        title=title,
        score_maximum=score_maximum,
        context_id=context_id,
        lineitem_url=lineitem_url,
        lineitems_url=lineitems_url,
    )
    if not line_item.url:
        transaction.on_commit(partial(tasks.sync_line_item.delay, str(line_item.pk)))
    return Placement(
        line_item_id=line_item.pk,
        activity_id=line_item.activity_id,
        label=line_item.label,
        line_item_url=line_item.url,
    )


def placement_seen_at_launch(
    *,
    tenant: Tenant,
    registration_id: uuid.UUID,
    class_id: uuid.UUID,
    resource_link_id: str,
    title: str,
    lineitem_url: str,
    lineitems_url: str = "",
    context_id: str = "",
    placement_ref: str = "",
) -> Placement | None:
    """A launch whose AGS claim binds a line item to its link (the platform made the
    column, e.g. from a deep-linking lineItem): make the link gradable once. Cheap on
    relaunch: one indexed lookup when the column is known already. ``placement_ref``
    (the link's custom parameter, set by our deep-linking response) names the column
    :func:`placement_plan` made for it: that one is bound, no second one is made."""
    from lti_tool.advantage.models import LineItem

    if LineItem.objects.filter(registration_id=registration_id, url=lineitem_url).exists():
        return None
    if placement_ref and services.placement_bind(
        tenant_id=tenant.pk,
        registration_id=registration_id,
        placement_ref=placement_ref,
        resource_link_id=resource_link_id,
        lineitem_url=lineitem_url,
        lineitems_url=lineitems_url,
    ):
        return None
    return placement_register(
        tenant=tenant,
        registration_id=registration_id,
        class_id=class_id,
        resource_link_id=resource_link_id,
        title=title,
        lineitem_url=lineitem_url,
        lineitems_url=lineitems_url,
        context_id=context_id,
    )


def placement_plan(
    *,
    tenant: Tenant,
    registration_id: uuid.UUID,
    class_id: uuid.UUID,
    placement_ref: str,
    title: str,
    score_maximum: Decimal | int | float = 100,
    context_id: str = "",
    lineitems_url: str = "",
    activity_key: str = "",
) -> Placement:
    """A gradable deep-linking item: its column on the class's grades page now, bound
    to the platform's column at the placed link's first launch (see
    ``services.placement_plan``). Idempotent for one ``placement_ref``. ``activity_key``:
    the progress activity the column gets results from, when the placed item records
    its own (a SCORM course in the class); by default one of the placement's own."""
    line_item = services.placement_plan(
        tenant=tenant,
        registration_id=registration_id,
        class_id=class_id,
        placement_ref=placement_ref,
        title=title,
        score_maximum=score_maximum,
        context_id=context_id,
        lineitems_url=lineitems_url,
        activity_key=activity_key,
    )
    return Placement(
        line_item_id=line_item.pk,
        activity_id=line_item.activity_id,
        label=line_item.label,
        line_item_url=line_item.url,
    )


def membership_sync_queue(
    *,
    tenant: Tenant,
    class_id: uuid.UUID,
    registration_id: uuid.UUID,
    memberships_url: str,
    requested_by: User | None = None,
) -> SyncRef:
    """Queue an NRPS class-list sync (or join the one already queued)."""
    sync, created = services.membership_sync_request(
        tenant=tenant,
        class_id=class_id,
        registration_id=registration_id,
        memberships_url=memberships_url,
        requested_by=requested_by,
    )
    if created:
        transaction.on_commit(partial(tasks.sync_membership.delay, str(sync.pk)))
    return SyncRef(id=sync.pk, status=sync.status, created=created)
