"""People and their external identities: resolve a key to a person, link, merge."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from django.db import IntegrityError, transaction
from django.utils import timezone

from tutoring_core.accounts.data import IdentityKey, LinkHint, PersonProfile, PersonResult
from tutoring_core.accounts.errors import MergeRefused, ProvisioningRefused
from tutoring_core.accounts.models import (
    ExternalIdentity,
    LinkCandidate,
    RoleAssignment,
    Tenant,
    User,
    UserMerge,
)
from tutoring_core.accounts.services.audit import audit_record
from tutoring_core.rows import save_changed, save_fields

logger = logging.getLogger(__name__)


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
            save_changed(enrollment, {"user_id": kept.pk})
            count += 1
    moved["enrollments"] = count
    count = 0
    for assignment in RoleAssignment.objects.filter(user=merged):
        duplicate = RoleAssignment.objects.filter(
            user=kept, role=assignment.role, school=assignment.school_id, klass=assignment.klass_id
        ).exists()
        if not duplicate:
            save_changed(assignment, {"user_id": kept.pk})
            count += 1
    moved["roles"] = count
    save_changed(merged, {"is_active": False})
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
