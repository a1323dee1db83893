"""Writes for tenants, people, identities, roles and the audit log."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tutoring_core.accounts.data import IdentityKey, LinkHint, PersonProfile, PersonResult
from tutoring_core.accounts.errors import MergeRefused, ProvisioningRefused
from tutoring_core.accounts.models import (
    AuditLog,
    ExternalIdentity,
    GuardianLink,
    LinkCandidate,
    Role,
    RoleAssignment,
    Tenant,
    User,
    UserMerge,
)
from tutoring_core.rows import save_fields

logger = logging.getLogger(__name__)


def tenant_create(
    *, slug: str, name: str, kind: str = Tenant.Kind.DISTRICT, time_zone: str = "UTC"
) -> tuple[Tenant, bool]:
    """Create a tenant, or return the existing one with that slug unchanged."""
    tenant = Tenant(slug=slug, name=name, kind=kind, time_zone=time_zone)
    tenant.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            tenant.save()
    except IntegrityError:
        return Tenant.objects.get(slug=slug), False
    audit_record(tenant=tenant, actor=None, action="tenant.create", target=tenant)
    return tenant, True


def audit_record(
    *,
    tenant: Tenant | None,
    actor: User | None,
    action: str,
    target: Any = None,
    ip_address: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    target_type = target_id = target_label = ""
    if target is not None:
        target_type = target._meta.label_lower
        target_id = str(target.pk)
        target_label = str(target)[:200]
    entry = AuditLog(
        tenant=tenant,
        actor=actor,
        actor_label=(str(actor) if actor else "system")[:200],
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        ip_address=ip_address,
        details=details or {},
    )
    # Append-only: one INSERT (force_insert skips the UPDATE attempt a save() of a
    # row with a primary key would make).
    entry.save(force_insert=True)
    return entry


@dataclass(frozen=True)
class SetPasswordLink:
    url: str
    expires_at: dt.datetime


@transaction.atomic
def district_admin_ensure(*, tenant: Tenant, email: str) -> tuple[User, bool]:
    """The district admin of ``tenant`` who signs in as ``email``: created the first
    time (no usable password yet, staff, the tenant-wide district_admin role), the
    same person unchanged after. The email, lower-cased, is the username, so the
    person knows what to type on the sign-in page."""
    address = email.strip()
    try:
        validate_email(address)
    except ValidationError:
        raise ValidationError({"admin_email": [f"{email!r} is not an email address."]}) from None
    username = address.lower()
    user, created = User.objects.get_or_create(
        username=username,
        defaults={"tenant": tenant, "email": address, "is_staff": True, "password": make_password(None)},
    )
    if user.tenant_id != tenant.pk:
        # Usernames are global; never hand another district's (or platform staff's)
        # account to this one.
        raise ValidationError(
            {"admin_email": [f"The account {username!r} already exists outside district {tenant.slug!r}."]}
        )
    if not user.is_active:
        raise ValidationError(
            {"admin_email": [f"The account {username!r} is deactivated; reactivate it in the admin first."]}
        )
    role_assign(tenant=tenant, user=user, role=Role.DISTRICT_ADMIN, source="manual")
    if created:
        audit_record(tenant=tenant, actor=None, action="tenant.admin_create", target=user)
    return user, created


def set_password_link_issue(*, user: User) -> SetPasswordLink:
    """A one-time link to the set-password page for ``user``. Django's password-reset
    tokens: the link stops working once a password is set (the token hashes the
    password) and after settings.PASSWORD_RESET_TIMEOUT (24 h). Issuing one writes
    nothing but its audit row; earlier links stay valid until either happens."""
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("web:set_password", kwargs={"uidb64": uidb64, "token": token})
    expires_at = timezone.now() + dt.timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT)
    audit_record(
        tenant=user.tenant,
        actor=None,
        action="auth.set_password_link",
        target=user,
        details={"expires_at": expires_at.isoformat()},
    )
    return SetPasswordLink(url=f"{settings.PUBLIC_BASE_URL}{path}", expires_at=expires_at)


def _username_for(tenant: Tenant) -> str:
    # Provisioned people never sign in with a password here, so the username is
    # only a unique handle; tenant slug first keeps the admin list readable.
    return f"{tenant.slug}.{uuid.uuid4().hex[:16]}"


def _apply_profile(user: User, profile: PersonProfile) -> list[str]:
    """Copy non-empty profile values onto ``user``; return the changed fields.

    Empty values never blank what we know: an LMS that sends no personal data
    must not erase the roster's names.
    """
    changed = []
    for attr, value in (
        ("first_name", profile.given_name),
        ("last_name", profile.family_name),
        ("display_name", profile.display_name),
        ("email", profile.email.strip().lower()),
    ):
        value = value.strip()[: User._meta.get_field(attr).max_length]  # type: ignore[union-attr]
        if value and getattr(user, attr) != value:
            setattr(user, attr, value)
            changed.append(attr)
    if profile.email and profile.email_verified and not user.email_verified:
        user.email_verified = True
        changed.append("email_verified")
    return changed


def _users_for_hint(tenant: Tenant, hint: LinkHint) -> set[uuid.UUID]:
    identities = ExternalIdentity.objects.filter(tenant=tenant, kind=hint.kind, subject=hint.subject)
    if hint.issuer is not None:
        identities = identities.filter(issuer=hint.issuer)
    return set(identities.values_list("user_id", flat=True))


def _touch_identity(identity: ExternalIdentity, profile: PersonProfile) -> None:
    identity.last_seen_at = timezone.now()
    save_fields(identity, ["last_seen_at"])
    user = identity.user
    save_fields(user, _apply_profile(user, profile))


def person_resolve(
    *,
    tenant: Tenant,
    key: IdentityKey,
    profile: PersonProfile,
    link_hints: Sequence[LinkHint] = (),
    create: bool = True,
) -> PersonResult:
    """Find, link or create the person another system calls ``key``.

    Order (ARCHITECTURE.md, Identity): the key itself; then each hint in turn,
    linking only when it names exactly one person; then, if ``create``, a new
    person. An email match never links: it is recorded as a LinkCandidate.
    Safe under concurrency: two first launches of one person make one user.
    """
    for _attempt in range(3):
        existing = (
            ExternalIdentity.objects.select_related("user")
            .filter(tenant=tenant, kind=key.kind, issuer=key.issuer, subject=key.subject)
            .first()
        )
        if existing is not None:
            _touch_identity(existing, profile)
            return PersonResult(user_id=existing.user_id, created=False, matched_by="identity")
        try:
            return _person_link_or_create(
                tenant=tenant, key=key, profile=profile, link_hints=link_hints, create=create
            )
        except IntegrityError:
            # Another process inserted the same key between our read and write;
            # our transaction rolled back whole, so read again and use theirs.
            logger.info("identity race on %s:%s:%s, retrying", key.kind, key.issuer, key.subject)
    raise RuntimeError(f"Could not resolve identity {key} after concurrent inserts.")


@transaction.atomic
def _person_link_or_create(
    *,
    tenant: Tenant,
    key: IdentityKey,
    profile: PersonProfile,
    link_hints: Sequence[LinkHint],
    create: bool,
) -> PersonResult:
    now = timezone.now()
    ambiguous: set[uuid.UUID] = set()
    for hint in link_hints:
        if not hint.subject:
            continue
        users = _users_for_hint(tenant, hint)
        if len(users) == 1:
            user = User.objects.get(pk=users.pop())
            ExternalIdentity.objects.create(
                tenant=tenant,
                kind=key.kind,
                issuer=key.issuer,
                subject=key.subject,
                user=user,
                last_seen_at=now,
            )
            save_fields(user, _apply_profile(user, profile))
            audit_record(
                tenant=tenant,
                actor=None,
                action="identity.link",
                target=user,
                details={"key": [key.kind, key.issuer, key.subject], "by": [hint.kind, hint.subject]},
            )
            return PersonResult(user_id=user.pk, created=False, matched_by=f"hint:{hint.kind}")
        ambiguous |= users

    if not create:
        raise ProvisioningRefused(
            f"No account in {tenant.name} matches this {key.kind} identity, "
            "and this sign-in path does not create accounts."
        )

    user = User(tenant=tenant, username=_username_for(tenant))
    _apply_profile(user, profile)
    user.set_unusable_password()
    user.save()
    ExternalIdentity.objects.create(
        tenant=tenant, kind=key.kind, issuer=key.issuer, subject=key.subject, user=user, last_seen_at=now
    )
    candidates = set(ambiguous)
    if user.email:
        candidates |= set(
            User.objects.filter(tenant=tenant, email__iexact=user.email)
            .exclude(pk=user.pk)
            .values_list("pk", flat=True)
        )
    for candidate_id in sorted(candidates):
        LinkCandidate.objects.get_or_create(
            tenant=tenant,
            user=user,
            candidate_id=candidate_id,
            reason="email" if candidate_id not in ambiguous else "ambiguous-hint",
        )
    audit_record(
        tenant=tenant,
        actor=None,
        action="person.create",
        target=user,
        details={
            "key": [key.kind, key.issuer, key.subject],
            "candidates": [str(c) for c in sorted(candidates)],
        },
    )
    return PersonResult(
        user_id=user.pk, created=True, matched_by="created", candidates=tuple(sorted(candidates))
    )


def identity_link(*, tenant: Tenant, user: User, key: IdentityKey) -> ExternalIdentity:
    """Attach ``key`` to ``user`` explicitly (an admin's decision). Idempotent."""
    if user.tenant_id != tenant.pk:
        raise MergeRefused("That person belongs to another tenant.")
    identity, _created = ExternalIdentity.objects.get_or_create(
        tenant=tenant, kind=key.kind, issuer=key.issuer, subject=key.subject, defaults={"user": user}
    )
    if identity.user_id != user.pk:
        raise MergeRefused(f"{key.kind} identity {key.subject} already belongs to another person.")
    return identity


@transaction.atomic
def users_merge(*, tenant: Tenant, kept: User, merged: User, actor: User | None, reason: str) -> UserMerge:
    """Fold ``merged`` into ``kept``: identities, enrollments, roles and guardian links move;
    ``merged`` is deactivated, and the merge is recorded. Only an explicit call merges."""
    from tutoring_core.classes.models import Enrollment

    if kept.pk == merged.pk:
        raise MergeRefused("A person cannot be merged into themselves.")
    if kept.tenant_id != tenant.pk or merged.tenant_id != tenant.pk:
        raise MergeRefused("Both people must belong to this tenant.")
    # Lock both in primary-key order so two merges cannot deadlock.
    list(User.objects.select_for_update().filter(pk__in=[kept.pk, merged.pk]).order_by("pk"))
    moved: dict[str, int] = {}
    moved["identities"] = ExternalIdentity.objects.filter(user=merged).update(user=kept)
    count = 0
    for enrollment in Enrollment.objects.filter(user=merged):
        if not Enrollment.objects.filter(klass=enrollment.klass_id, user=kept, role=enrollment.role).exists():
            enrollment.user = kept
            enrollment.save(update_fields=["user", "updated_at"])
            count += 1
    moved["enrollments"] = count
    count = 0
    for assignment in RoleAssignment.objects.filter(user=merged):
        duplicate = RoleAssignment.objects.filter(
            user=kept, role=assignment.role, school=assignment.school_id, klass=assignment.klass_id
        ).exists()
        if not duplicate:
            assignment.user = kept
            assignment.save(update_fields=["user", "updated_at"])
            count += 1
    moved["roles"] = count
    merged.is_active = False
    merged.save(update_fields=["is_active", "updated_at"])
    LinkCandidate.objects.filter(user__in=[kept, merged], candidate__in=[kept, merged]).update(
        status=LinkCandidate.Status.MERGED
    )
    record = UserMerge.objects.create(
        tenant=tenant, kept=kept, merged=merged, actor=actor, reason=reason, moved=moved
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        action="person.merge",
        target=kept,
        details={"merged": str(merged.pk), **moved},
    )
    return record


def role_assign(
    *,
    tenant: Tenant,
    user: User,
    role: str,
    school_id: uuid.UUID | None = None,
    class_id: uuid.UUID | None = None,
    source: str = "manual",
) -> tuple[RoleAssignment, bool]:
    """Grant a role at tenant, school or class scope. Idempotent; reactivates."""
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}.")
    # None means "not at that scope" and matches IS NULL.
    scope: dict[str, Any] = {"school_id": school_id, "klass_id": class_id}
    try:
        with transaction.atomic():
            assignment, created = RoleAssignment.objects.get_or_create(
                tenant=tenant, user=user, role=role, **scope, defaults={"source": source}
            )
    except IntegrityError:
        assignment = RoleAssignment.objects.get(user=user, role=role, **scope)
        created = False
    if not assignment.is_active:
        assignment.is_active = True
        assignment.save(update_fields=["is_active", "updated_at"])
    return assignment, created


def guardian_link(
    *, tenant: Tenant, guardian: User, student: User, relationship: str = "guardian", source: str = "manual"
) -> tuple[GuardianLink, bool]:
    link, created = GuardianLink.objects.update_or_create(
        guardian=guardian,
        student=student,
        defaults={"tenant": tenant, "relationship": relationship, "source": source, "is_active": True},
    )
    return link, created
