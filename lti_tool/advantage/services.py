"""Writes of the LTI Advantage services: placements and line items (AGS), and
class-list syncs (NRPS)."""

from __future__ import annotations

import json
import logging
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from lti_tool.advantage.models import AGS_DESTINATION, LineItem, MembershipSync
from lti_tool.advantage.platforms import PlatformAccess, platform_access
from lti_tool.advantage.protocol import media
from lti_tool.advantage.protocol.ags import (
    LineItem as LineItemShape,
)
from lti_tool.advantage.protocol.ags import (
    ResultRecord,
    lineitem_payload,
    parse_lineitem,
    parse_lineitem_container,
    parse_result_container,
    results_url,
)
from lti_tool.advantage.protocol.errors import ProtocolError
from lti_tool.advantage.protocol.nrps import hub_role, parse_membership_container
from lti_tool.advantage.protocol.paging import next_page_url
from lti_tool.advantage.protocol.retry import is_transient
from lti_tool.advantage.tokens import TokenError, access_token, token_invalidate
from tutoring_core import http
from tutoring_core.accounts.api import (
    IdentityKey,
    IdentityKind,
    LinkHint,
    PersonProfile,
    Tenant,
    User,
    audit_record,
    person_for_sign_in,
    person_resolve,
)
from tutoring_core.classes import api as classes
from tutoring_core.progress import api as progress
from tutoring_core.rows import save_changed

logger = logging.getLogger(__name__)

MAX_PAGES = 2000


class ServiceError(Exception):
    """A call to a platform service failed. ``transient`` says whether to retry."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient
        self.retry_after = retry_after


# --- calling a service --------------------------------------------------------------


def _call(
    access: PlatformAccess,
    method: str,
    url: str,
    *,
    scopes: list[str],
    accept: str,
    body: Any = None,
    content_type: str = "",
) -> tuple[Any, str | None]:
    """One authorised service call; returns (JSON body, Link header). A 401 with a
    cached token refreshes the token once (the platform may have revoked it)."""
    for attempt in range(2):
        try:
            token = access_token(access, scopes)
        except TokenError as exc:
            raise ServiceError(
                str(exc), status=exc.status, transient=exc.transient, retry_after=exc.retry_after
            ) from exc
        headers = {"Authorization": f"Bearer {token}", "Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            response = http.request(
                method,
                url,
                data=None if body is None else json.dumps(body),
                headers=headers,
                timeout=(settings.LTI_ADVANTAGE_CONNECT_TIMEOUT, settings.LTI_ADVANTAGE_READ_TIMEOUT),
                raise_for_status=False,
            )
        except http.OutboundHTTPError as exc:
            raise ServiceError(str(exc), status=exc.status, transient=exc.transient) from exc
        if response.status_code == 401 and attempt == 0:
            token_invalidate(access, scopes, token)
            continue
        if response.status_code >= 400:
            text = response.text[:300]
            raise ServiceError(
                f"{method} {url} answered {response.status_code}: {text}",
                status=response.status_code,
                transient=is_transient(response.status_code, text),
                retry_after=http.parse_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code == 204 or not response.content:
            return None, response.headers.get("Link")
        try:
            return response.json(), response.headers.get("Link")
        except ValueError:
            raise ServiceError(
                f"{method} {url} answered something that is not JSON.", status=response.status_code
            ) from None
    raise AssertionError("unreachable")


def _paged(access: PlatformAccess, url: str, *, scopes: list[str], accept: str) -> list[Any]:
    """Every page of a paged GET, following rel="next" exactly as given."""
    pages: list[Any] = []
    seen: set[str] = set()
    next_url: str | None = url
    while next_url:
        if next_url in seen or len(pages) >= MAX_PAGES:
            raise ServiceError(f"The platform's paging does not end (at {next_url}).")
        seen.add(next_url)
        data, link = _call(access, "GET", next_url, scopes=scopes, accept=accept)
        pages.append(data)
        next_url = next_page_url(link)
    return pages


# --- placements and line items (AGS) -----------------------------------------------


def placement_register(
    *,
    tenant: Tenant,
    registration_id: uuid.UUID,
    class_id: uuid.UUID,
    resource_link_id: str,
    title: str,
    score_maximum: Decimal | int | float = 100,
    context_id: str = "",
    lineitem_url: str = "",
    lineitems_url: str = "",
    resource_id: str = "",
    tag: str = "",
    activity_key: str = "",
) -> LineItem:
    """Make a placed resource link gradable: a progress activity, its line item, and
    the outbox destination that carries the activity's results there. Idempotent.

    ``lineitem_url`` comes from the launch's AGS claim when the platform made the
    column (deep linking); otherwise the column is found or created in
    ``lineitems_url`` by :func:`lineitem_sync`. ``activity_key`` names a placement
    whose resource link the platform has not named yet (:func:`placement_plan`).
    """
    if not lineitem_url and not lineitems_url and not activity_key:
        raise ProtocolError("The platform gave no line item service for this link (no AGS claim).")
    activity = progress.activity_upsert(
        tenant=tenant,
        class_id=class_id,
        key=activity_key or f"lti:{registration_id}:{resource_link_id}",
        title=title,
        score_maximum=score_maximum,
    )
    values = {
        "tenant": tenant,
        "context_id": context_id,
        "resource_link_id": resource_link_id,
        "lineitems_url": lineitems_url,
        "label": title.strip()[:255] or "Activity",
        "score_maximum": activity.score_maximum,
        "resource_id": resource_id or str(activity.id),
        "tag": tag,
    }
    with transaction.atomic():
        try:
            with transaction.atomic():
                line_item, created = LineItem.objects.get_or_create(
                    registration_id=registration_id,
                    activity_id=activity.id,
                    defaults={**values, "url": lineitem_url},
                )
        except IntegrityError:
            line_item, created = (
                LineItem.objects.get(registration_id=registration_id, activity_id=activity.id),
                False,
            )
        if not created:
            wanted = {f: v for f, v in values.items() if f != "tenant"}
            if lineitem_url:
                wanted["url"] = lineitem_url
            save_changed(line_item, wanted)
        progress.destination_attach(
            tenant=tenant,
            activity_id=activity.id,
            kind=AGS_DESTINATION,
            key=str(line_item.pk),
            channel=str(registration_id),  # one dispatcher and one rate limit per platform
        )
    return line_item


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
) -> LineItem:
    """A gradable item a teacher chose in deep linking, as a column of the class's
    grades page at once, before the platform has named its resource link.

    The deep-linking response asks the platform to make the column (its lineItem
    carries ``resourceId = placement_ref``) and the placed link to carry
    ``placement_ref`` as a custom parameter. The link's first launch binds this
    row to the platform's column (:func:`placement_bind`); until then a delivery
    finds the column in ``lineitems_url`` by that resource id. No sync is queued
    here: one run before the platform has read the response would make a second
    column there.

    ``activity_key`` names the progress activity whose results the column gets when
    the item records its own (a SCORM course played in the class); by default the
    placement has an activity of its own."""
    return placement_register(
        tenant=tenant,
        registration_id=registration_id,
        class_id=class_id,
        resource_link_id="",
        title=title,
        score_maximum=score_maximum,
        context_id=context_id,
        lineitems_url=lineitems_url,
        resource_id=placement_ref,
        activity_key=activity_key or f"lti:{registration_id}:placement:{placement_ref}",
    )


def placement_bind(
    *,
    tenant_id: uuid.UUID,
    registration_id: uuid.UUID,
    placement_ref: str,
    resource_link_id: str,
    lineitem_url: str,
    lineitems_url: str = "",
) -> bool:
    """The first launch of a link placed by deep linking: its planned column takes
    the platform's line item URL and resource link id. Claimed by update, so two
    first launches bind it once; False when there is nothing left to bind."""
    if LineItem.objects.filter(registration_id=registration_id, url=lineitem_url).exists():
        return False  # the column is known already (a delivery found it)
    values: dict[str, object] = {
        "url": lineitem_url,
        "resource_link_id": resource_link_id,
        "updated_at": timezone.now(),
    }
    if lineitems_url:
        values["lineitems_url"] = lineitems_url
    try:
        with transaction.atomic():
            bound = LineItem.objects.filter(
                tenant_id=tenant_id, registration_id=registration_id, resource_id=placement_ref, url=""
            ).update(**values)
    except IntegrityError:  # another launch bound that URL to this row a moment ago
        return False
    return bound == 1


def _apply_shape(line_item: LineItem, shape: LineItemShape) -> None:
    line_item.url = shape.id
    line_item.synced_at = timezone.now()
    line_item.save(update_fields=["url", "synced_at", "updated_at"])


def lineitem_sync(*, line_item_id: uuid.UUID) -> LineItem:
    """Make sure the column exists on the platform: found by our resource id (or
    the resource link) in the context's line items, created if absent."""
    line_item = LineItem.objects.get(pk=line_item_id)
    if line_item.url:
        return line_item
    if not line_item.lineitems_url:
        raise ServiceError("The platform gave no line items service for this context.")
    access = platform_access(line_item.registration_id)
    scopes = [media.SCOPE_LINEITEM]
    base = line_item.lineitems_url
    query = (
        {"resource_id": line_item.resource_id}
        if line_item.resource_id
        else {"resource_link_id": line_item.resource_link_id}
    )
    if line_item.tag:
        query["tag"] = line_item.tag
    separator = "&" if "?" in base else "?"
    try:
        found: list[LineItemShape] = []
        for page in _paged(
            access, f"{base}{separator}{urlencode(query)}", scopes=scopes, accept=media.LINEITEM_CONTAINER
        ):
            found.extend(parse_lineitem_container(page))
    except ProtocolError as exc:
        raise ServiceError(f"The platform's line items are malformed: {exc}") from exc
    # A platform may ignore the filters; match on our side too.
    matches = [
        shape
        for shape in found
        if (line_item.resource_id and shape.resource_id == line_item.resource_id)
        or (not line_item.resource_id and shape.resource_link_id == line_item.resource_link_id)
    ]
    if matches:
        _apply_shape(line_item, matches[0])
        return line_item
    payload = lineitem_payload(
        label=line_item.label,
        score_maximum=line_item.score_maximum,
        resource_id=line_item.resource_id,
        resource_link_id=line_item.resource_link_id,
        tag=line_item.tag,
    )
    created, _ = _call(
        access, "POST", base, scopes=scopes, accept=media.LINEITEM, body=payload, content_type=media.LINEITEM
    )
    try:
        shape = parse_lineitem(created)
    except ProtocolError as exc:
        raise ServiceError(f"The platform answered a malformed line item: {exc}") from exc
    _apply_shape(line_item, shape)
    return line_item


def lineitem_update(*, line_item_id: uuid.UUID, label: str, score_maximum: Decimal | int | float) -> LineItem:
    """Rename or rescale the column on the platform (PUT), then here."""
    line_item = lineitem_sync(line_item_id=line_item_id)
    access = platform_access(line_item.registration_id)
    payload = lineitem_payload(
        label=label,
        score_maximum=score_maximum,
        resource_id=line_item.resource_id,
        resource_link_id=line_item.resource_link_id,
        tag=line_item.tag,
    )
    data, _ = _call(
        access,
        "PUT",
        line_item.url,
        scopes=[media.SCOPE_LINEITEM],
        accept=media.LINEITEM,
        body={**payload, "id": line_item.url},
        content_type=media.LINEITEM,
    )
    shape = parse_lineitem(data)
    line_item.label = shape.label
    line_item.score_maximum = shape.score_maximum
    line_item.synced_at = timezone.now()
    line_item.save(update_fields=["label", "score_maximum", "synced_at", "updated_at"])
    return line_item


def results_read(*, line_item_id: uuid.UUID) -> list[ResultRecord]:
    """The platform's results for the column, every page."""
    line_item = LineItem.objects.get(pk=line_item_id)
    if not line_item.url:
        return []
    access = platform_access(line_item.registration_id)
    records: list[ResultRecord] = []
    for page in _paged(
        access,
        results_url(line_item.url),
        scopes=[media.SCOPE_RESULT_READONLY],
        accept=media.RESULT_CONTAINER,
    ):
        records.extend(parse_result_container(page))
    return records


# --- class lists (NRPS) -------------------------------------------------------------


def membership_sync_request(
    *,
    tenant: Tenant,
    class_id: uuid.UUID,
    registration_id: uuid.UUID,
    memberships_url: str,
    requested_by: User | None = None,
) -> tuple[MembershipSync, bool]:
    """Queue a class-list sync, or return the one already queued or running.
    Returns (sync, created); the caller enqueues the task for a new one."""
    existing = MembershipSync.objects.filter(
        tenant=tenant,
        klass_id=class_id,
        status__in=(MembershipSync.Status.PENDING, MembershipSync.Status.RUNNING),
    ).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            sync = MembershipSync.objects.create(
                tenant=tenant,
                klass_id=class_id,
                registration_id=registration_id,
                memberships_url=memberships_url,
                requested_by=requested_by,
            )
    except IntegrityError:  # another request queued one at the same moment
        return MembershipSync.objects.get(
            klass_id=class_id, status__in=(MembershipSync.Status.PENDING, MembershipSync.Status.RUNNING)
        ), False
    return sync, True


def membership_sync_run(*, sync_id: uuid.UUID) -> MembershipSync:
    """Read every page of the class list and apply the differences: new members
    enrolled, role changes applied, members gone (or Inactive/Deleted) made
    inactive. Deactivation happens only after the last page arrived, so a sync
    cut short never empties a class."""
    now = timezone.now()
    claimed = MembershipSync.objects.filter(pk=sync_id, status=MembershipSync.Status.PENDING).update(
        status=MembershipSync.Status.RUNNING, started_at=now, updated_at=now
    )
    sync = MembershipSync.objects.select_related("tenant").get(pk=sync_id)
    if claimed != 1:
        return sync
    try:
        _membership_apply(sync)
    except ServiceError as exc:
        if exc.transient:
            # Hand it back for the task to retry later.
            MembershipSync.objects.filter(pk=sync.pk).update(
                status=MembershipSync.Status.PENDING, error=str(exc)[:2000]
            )
            raise
        _sync_fail(sync, str(exc))
    except ProtocolError as exc:
        _sync_fail(sync, f"The platform's class list is malformed: {exc}")
    sync.refresh_from_db()
    return sync


def membership_sync_give_up(*, sync_id: uuid.UUID, error: str) -> None:
    sync = MembershipSync.objects.get(pk=sync_id)
    _sync_fail(sync, error)


def _sync_fail(sync: MembershipSync, error: str) -> None:
    MembershipSync.objects.filter(pk=sync.pk).update(
        status=MembershipSync.Status.FAILED,
        error=error[:2000],
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    audit_record(
        tenant=sync.tenant,
        actor=None,
        action="lti.nrps_sync_failed",
        target=sync,
        details={"error": error[:500]},
    )


def _membership_apply(sync: MembershipSync) -> None:
    access = platform_access(sync.registration_id)
    tenant = sync.tenant
    current: dict[uuid.UUID, set[str]] = {}
    if classes.class_info(tenant_id=tenant.pk, class_id=sync.klass_id) is None:
        raise ServiceError("The class of this class-list sync is not in its tenant.")
    for member in classes.class_member_list(tenant_id=tenant.pk, class_id=sync.klass_id):
        if member.source == classes.Source.LTI:
            current.setdefault(member.user_id, set()).add(member.role)
    keep: set[uuid.UUID] = set()
    counts = {"pages": 0, "members_seen": 0, "added": 0, "role_changes": 0, "skipped": 0}
    next_url: str | None = sync.memberships_url
    seen_urls: set[str] = set()
    while next_url:
        if next_url in seen_urls or counts["pages"] >= MAX_PAGES:
            raise ServiceError(f"The platform's class list paging does not end (at {next_url}).")
        seen_urls.add(next_url)
        data, link = _call(
            access, "GET", next_url, scopes=[media.SCOPE_NRPS], accept=media.MEMBERSHIP_CONTAINER
        )
        page = parse_membership_container(data)
        for member in page.members:
            counts["members_seen"] += 1
            role = hub_role(list(member.roles))
            if role is None or member.status != "Active":
                counts["skipped"] += role is None
                continue
            person = person_resolve(
                tenant=tenant,
                key=IdentityKey(kind=IdentityKind.LTI, issuer=access.issuer, subject=member.user_id),
                profile=PersonProfile(
                    given_name=member.given_name,
                    family_name=member.family_name,
                    display_name=member.name,
                    email=member.email,
                ),
                link_hints=[LinkHint(kind=IdentityKind.ONEROSTER, subject=member.lis_person_sourcedid)]
                if member.lis_person_sourcedid
                else [],
            )
            user = person_for_sign_in(tenant=tenant, user_id=person.user_id)
            keep.add(user.pk)
            had = current.get(user.pk, set())
            result = classes.enrollment_upsert(
                tenant=tenant, class_id=sync.klass_id, user=user, role=role, source=classes.Source.LTI
            )
            if had and role not in had:
                counts["role_changes"] += 1
            elif result.changed:
                counts["added"] += 1
            for old_role in had - {role}:
                classes.enrollment_deactivate(
                    tenant=tenant, class_id=sync.klass_id, user=user, role=old_role, source=classes.Source.LTI
                )
        counts["pages"] += 1
        MembershipSync.objects.filter(pk=sync.pk).update(**counts, updated_at=timezone.now())
        next_url = next_page_url(link)
    deactivated = classes.enrollment_deactivate(
        tenant=tenant, class_id=sync.klass_id, source=classes.Source.LTI, keep_user_ids=keep
    )
    MembershipSync.objects.filter(pk=sync.pk).update(
        **counts,
        deactivated=deactivated,
        status=MembershipSync.Status.DONE,
        error="",
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    audit_record(
        tenant=tenant,
        actor=sync.requested_by,
        action="lti.nrps_sync",
        target=sync,
        details={**counts, "deactivated": deactivated},
    )
