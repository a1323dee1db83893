"""Writes: registrations, deployments under their policy, and provisioning on launch."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone

from lti_tool.advantage.api import placement_seen_at_launch
from lti_tool.errors import RegistrationInvalid
from lti_tool.models import Deployment, LtiContext, PlatformRegistration, Preset, ResourceLink
from lti_tool.protocol import presets
from lti_tool.protocol import roles as lis_roles
from lti_tool.protocol.claims import LaunchClaims
from lti_tool.protocol.errors import LaunchRejected
from tutoring_core.accounts.api import (
    IdentityKey,
    IdentityKind,
    LinkHint,
    PersonProfile,
    Tenant,
    User,
    audit_record,
    person_current,
    person_for_sign_in,
    person_resolve,
)
from tutoring_core.classes.api import (
    ClassKeyKind,
    ClassKeyRef,
    Source,
    class_enrollment_current,
    class_upsert,
    enrollment_upsert,
    person_class_current,
)
from tutoring_core.rows import save_fields, set_changed

logger = logging.getLogger(__name__)

# Custom parameters our deep-linking content items carry, naming what to open.
CUSTOM_TARGET = "hub_target"
CUSTOM_TUTOR = "hub_tutor"
# Set by our deep-linking response on a gradable item: the column planned for it
# (lti_tool.advantage.api.placement_plan), bound at the placed link's first launch.
CUSTOM_PLACEMENT = "hub_placement"
# Another integration's placeable the link opens (progress.api.placeable_get), e.g. "scorm:<package id>".
CUSTOM_ACTIVITY = "hub_activity"


def _check_url(value: str, label: str) -> str:
    value = value.strip()
    try:
        URLValidator(schemes=["https", "http"])(value)
    except ValidationError:
        raise RegistrationInvalid(f"{label} must be an http(s) URL, not {value!r}.") from None
    return value


@transaction.atomic
def registration_create(
    *,
    tenant: Tenant,
    preset: str,
    issuer: str,
    client_id: str,
    auth_login_url: str = "",
    auth_token_url: str = "",
    key_set_url: str = "",
    auth_audience: str = "",
    deployment_ids: tuple[str, ...] = (),
    deployment_policy: str = PlatformRegistration.DeploymentPolicy.HOLD,
    name: str = "",
    actor: User | None = None,
) -> PlatformRegistration:
    """Register a platform for a tenant, filling what the preset dictates.

    Raises RegistrationInvalid (nothing written) for a bad preset, URL or a
    duplicate (issuer, client_id)."""
    if preset not in Preset.values:
        raise RegistrationInvalid(f"Unknown preset {preset!r}; choose one of {', '.join(Preset.values)}.")
    if deployment_policy not in PlatformRegistration.DeploymentPolicy.values:
        raise RegistrationInvalid(f"Unknown deployment policy {deployment_policy!r}.")
    if not client_id.strip():
        raise RegistrationInvalid("client_id is required (the LMS shows it when you add the tool).")
    filled = presets.fill(
        preset,
        issuer=issuer.strip(),
        client_id=client_id.strip(),
        auth_login_url=auth_login_url.strip(),
        auth_token_url=auth_token_url.strip(),
        key_set_url=key_set_url.strip(),
        auth_audience=auth_audience.strip(),
    )
    missing = [label for label, value in filled.items() if not value and label != "auth_audience"]
    if missing:
        raise RegistrationInvalid(
            f"The {preset} preset cannot fill {', '.join(missing)}; give them explicitly."
        )
    registration = PlatformRegistration(
        tenant=tenant,
        name=name or f"{Preset(preset).label} ({filled['issuer']})",
        preset=preset,
        issuer=filled["issuer"],
        client_id=client_id.strip(),
        auth_login_url=_check_url(filled["auth_login_url"], "The OIDC auth URL"),
        auth_token_url=_check_url(filled["auth_token_url"], "The token URL"),
        key_set_url=_check_url(filled["key_set_url"], "The JWKS URL"),
        auth_audience=filled["auth_audience"],
        deployment_policy=deployment_policy,
    )
    _check_url(registration.issuer, "The issuer")
    if PlatformRegistration.objects.filter(
        issuer=registration.issuer, client_id=registration.client_id
    ).exists():
        raise RegistrationInvalid(
            f"A registration for issuer {registration.issuer} and client_id {registration.client_id} already exists."
        )
    try:
        with transaction.atomic():
            registration.save()
    except IntegrityError:
        raise RegistrationInvalid(
            f"A registration for issuer {registration.issuer} and client_id {registration.client_id} already exists."
        ) from None
    for deployment_id in deployment_ids:
        if deployment_id.strip():
            Deployment.objects.create(
                tenant=tenant, registration=registration, deployment_id=deployment_id.strip()
            )
    audit_record(
        tenant=tenant,
        actor=actor,
        action="lti.registration.create",
        target=registration,
        details={"issuer": registration.issuer, "client_id": registration.client_id, "preset": preset},
    )
    return registration


def deployment_resolve(
    *, registration: PlatformRegistration, deployment_id: str, known: Deployment | None = None
) -> Deployment:
    """The deployment a launch names, under the registration's policy.

    accept_new: an unknown id is recorded active. hold: it is recorded pending (so
    an admin sees it and can approve) and this launch is refused. ``known`` is the
    row the launch already read with its registration (one query instead of two).
    """
    if known is not None and (known.registration_id, known.deployment_id) == (registration.pk, deployment_id):
        deployment: Deployment | None = known
    else:
        deployment = Deployment.objects.filter(registration=registration, deployment_id=deployment_id).first()
    if deployment is None:
        accept = registration.deployment_policy == PlatformRegistration.DeploymentPolicy.ACCEPT_NEW
        status = Deployment.Status.ACTIVE if accept else Deployment.Status.PENDING
        try:
            with transaction.atomic():
                deployment = Deployment.objects.create(
                    tenant_id=registration.tenant_id,
                    registration=registration,
                    deployment_id=deployment_id,
                    status=status,
                )
        except IntegrityError:
            deployment = Deployment.objects.get(registration=registration, deployment_id=deployment_id)
        else:
            audit_record(
                tenant=registration.tenant,
                actor=None,
                action="lti.deployment.seen",
                target=deployment,
                details={"deployment_id": deployment_id, "status": status},
            )
    if deployment.status == Deployment.Status.PENDING:
        raise LaunchRejected(
            "deployment_pending",
            f"This LMS installation (deployment {deployment_id}) is waiting for your district admin's "
            "approval in the tutoring hub.",
            status=403,
        )
    if deployment.status != Deployment.Status.ACTIVE:
        raise LaunchRejected(
            "deployment_disabled",
            f"The LMS installation (deployment {deployment_id}) is disabled.",
            status=403,
        )
    return deployment


@dataclass(frozen=True)
class LaunchOutcome:
    user: User
    role: str
    class_id: uuid.UUID | None
    context: LtiContext | None
    resource_link: ResourceLink | None
    person_created: bool


def _profile(claims: LaunchClaims) -> PersonProfile:
    return PersonProfile(
        given_name=claims.given_name[:150],
        family_name=claims.family_name[:150],
        display_name=(claims.name or f"{claims.given_name} {claims.family_name}".strip())[:200],
        email=claims.email[:254],
        # The LMS asserts the address but has not proven it to us: never trusted for linking.
        email_verified=False,
    )


def _link_hints(claims: LaunchClaims) -> list[LinkHint]:
    hints = []
    if claims.person_sourcedid:
        # LIS person_sourcedid names the roster sourcedId (any roster connection).
        hints.append(LinkHint(kind=IdentityKind.ONEROSTER, subject=claims.person_sourcedid))
    if claims.lti1p1 and claims.lti1p1.get("user_id") and claims.lti1p1.get("oauth_consumer_key"):
        # LTI 1.3 migration claim: the person an LTI 1.1 launch knew as user_id. Present
        # only when its oauth_consumer_key_sign verified (launch._lti1p1_verified).
        hints.append(
            LinkHint(
                kind=IdentityKind.LTI,
                issuer=f"lti1p1:{claims.lti1p1['oauth_consumer_key']}",
                subject=str(claims.lti1p1["user_id"]),
            )
        )
    return hints


def _target(custom: dict[str, Any]) -> tuple[str, str]:
    target = str(custom.get(CUSTOM_TARGET, "")).strip()
    if target == ResourceLink.Target.TUTOR:
        try:
            return target, str(uuid.UUID(str(custom.get(CUSTOM_TUTOR, ""))))
        except ValueError:
            return ResourceLink.Target.CLASS, ""
    if target in ResourceLink.Target.values:
        return target, ""
    return ResourceLink.Target.CLASS, ""


# A class clicking one link at once must not queue on that link's row: rows are
# written only when a claim changed, or to refresh last_launch_at now and then.
LAST_LAUNCH_RESOLUTION = dt.timedelta(minutes=5)


def _seen(
    model: Any, lookup: dict[str, Any], values: dict[str, Any], now: dt.datetime, *, row: Any = None
) -> Any:
    """Upsert the row ``lookup`` names; ``row`` is that row when the caller already read it."""
    if row is None:
        row = model.objects.filter(**lookup).first()
    if row is None:
        row, _created = model.objects.update_or_create(**lookup, defaults={**values, "last_launch_at": now})
        return row
    changed = set_changed(row, values)
    stale = row.last_launch_at is None or now - row.last_launch_at >= LAST_LAUNCH_RESOLUTION
    if changed or stale:
        row.last_launch_at = now
        save_fields(row, [*changed, "last_launch_at"])
    return row


# No savepoint of its own: the launch view already runs this in its transaction
# (with the sign-in), and any error here rolls all of it back; a savepoint would
# only add two round trips to every launch.
@transaction.atomic(savepoint=False)
def launch_provision(
    *,
    registration: PlatformRegistration,
    deployment: Deployment,
    claims: LaunchClaims,
    known_link: ResourceLink | None = None,
    link_read_for: tuple[uuid.UUID, str] | None = None,
) -> LaunchOutcome:
    """Upsert the person, the class, the enrollment, the context and the resource link
    a validated launch names. Idempotent: the same launch twice changes nothing.
    ``known_link`` is what the launch already read, with its deployment, for the
    (deployment pk, resource_link_id) ``link_read_for`` (selectors.launch_rows): the
    link with its context, or None for none. It stands in for this function's own
    read only when that pair is the one the verified claims name."""
    tenant = registration.tenant
    now = timezone.now()
    # A repeat launch of a known person, class and link reads one row of each and
    # writes nothing here (the *_current reads); anything new or changed goes
    # through the core's upserts. So the identity's last_seen_at, like the link's
    # last_launch_at, is refreshed at most every LAST_LAUNCH_RESOLUTION.
    key = IdentityKey(kind=IdentityKind.LTI, issuer=registration.issuer, subject=claims.subject)
    profile = _profile(claims)
    role = lis_roles.class_role(claims.roles)
    title = claims.context_title or claims.context_label
    # Context ids are unique per deployment (LTI Core 1.3 §5.4.1).
    class_key = (
        ClassKeyRef(
            kind=ClassKeyKind.LTI_CONTEXT,
            issuer=registration.issuer,
            subject=f"{deployment.deployment_id}/{claims.context_id}",
        )
        if claims.context_id
        else None
    )
    # The person, and the class with their enrollment, in one read when both are
    # known and current; class_checked says the class answer is already in.
    class_id: uuid.UUID | None = None
    class_checked = False
    if class_key is not None:
        user, class_id = person_class_current(
            tenant=tenant,
            person=key,
            profile=profile,
            seen_within=LAST_LAUNCH_RESOLUTION,
            key=class_key,
            role=role,
            title=title,
            code=claims.context_label,
        )
        class_checked = user is not None
    else:
        user = person_current(tenant=tenant, key=key, profile=profile, seen_within=LAST_LAUNCH_RESOLUTION)
    person_created = False
    if user is None:
        person = person_resolve(tenant=tenant, key=key, profile=profile, link_hints=_link_hints(claims))
        user = person_for_sign_in(tenant=tenant, user_id=person.user_id)
        person_created = person.created
    # The link (with its context) in one read; the context is read on its own
    # only when the link is new or moved.
    if link_read_for != (deployment.pk, claims.resource_link_id):
        known_link = None
    if link_read_for != (deployment.pk, claims.resource_link_id) and claims.resource_link_id:
        known_link = (
            ResourceLink.objects.select_related("context")
            .filter(deployment=deployment, resource_link_id=claims.resource_link_id)
            .order_by()  # unique; no sort
            .first()
        )

    context = None
    if claims.context_id:
        link_to: list[ClassKeyRef] = []
        if claims.lti1p1 and claims.lti1p1.get("context_id") and claims.lti1p1.get("oauth_consumer_key"):
            link_to.append(
                ClassKeyRef(
                    kind=ClassKeyKind.LTI_CONTEXT,
                    issuer=f"lti1p1:{claims.lti1p1['oauth_consumer_key']}",
                    subject=str(claims.lti1p1["context_id"]),
                )
            )
        if claims.course_section_sourcedid:
            # LIS course_section_sourcedid names the roster class (any roster connection).
            link_to.append(
                ClassKeyRef(kind=ClassKeyKind.ONEROSTER, issuer=None, subject=claims.course_section_sourcedid)
            )
        assert class_key is not None
        if not class_checked:
            class_id = class_enrollment_current(
                tenant=tenant, key=class_key, user=user, role=role, title=title, code=claims.context_label
            )
        if class_id is None:
            result = class_upsert(
                tenant=tenant,
                key=class_key,
                title=title,
                code=claims.context_label,
                source=Source.LTI,
                link_to=link_to,
            )
            class_id = result.id
            enrollment_upsert(tenant=tenant, class_id=class_id, user=user, role=role, source=Source.LTI)
        values: dict[str, Any] = {
            "tenant_id": tenant.pk,
            "registration_id": registration.pk,
            "klass_id": class_id,
            "title": claims.context_title[:255],
            "label": claims.context_label[:255],
        }
        if claims.nrps_url:
            # Keep a known NRPS endpoint when a launch omits the claim.
            values.update(
                nrps_memberships_url=claims.nrps_url, nrps_service_versions=list(claims.nrps_versions)
            )
        known_context = None
        if (
            known_link is not None
            and known_link.context is not None
            and known_link.context.deployment_id == deployment.pk
            and known_link.context.context_id == claims.context_id
        ):
            known_context = known_link.context
        context = _seen(
            LtiContext,
            {"deployment": deployment, "context_id": claims.context_id},
            values,
            now,
            row=known_context,
        )

    link = None
    if claims.resource_link_id:
        target, target_ref = _target(dict(claims.custom))
        values = {
            "tenant_id": tenant.pk,
            "registration_id": registration.pk,
            "context_id": context.pk if context else None,
            "title": claims.resource_link_title[:255],
            "target": target,
            "target_ref": target_ref,
            "custom": dict(claims.custom),
            "extension_claims": dict(claims.extensions),
        }
        if claims.ags is not None:
            values.update(
                ags_lineitems_url=claims.ags.lineitems,
                ags_lineitem_url=claims.ags.lineitem,
                ags_scopes=list(claims.ags.scopes),
            )
        link = _seen(
            ResourceLink,
            {"deployment": deployment, "resource_link_id": claims.resource_link_id},
            values,
            now,
            row=known_link,
        )
        if claims.ags is not None and claims.ags.lineitem and class_id is not None:
            # Grades for this link flow back through AGS (lti_tool.advantage).
            placement_seen_at_launch(
                tenant=tenant,
                registration_id=registration.pk,
                class_id=class_id,
                resource_link_id=claims.resource_link_id,
                title=claims.resource_link_title or claims.context_title or "Activity",
                lineitem_url=claims.ags.lineitem,
                lineitems_url=claims.ags.lineitems or "",
                context_id=claims.context_id or "",
                placement_ref=str(claims.custom.get(CUSTOM_PLACEMENT, "")),
            )
    return LaunchOutcome(
        user=user,
        role=role,
        class_id=class_id,
        context=context,
        resource_link=link,
        person_created=person_created,
    )
