"""Writes for tenants, people, identities, roles and the audit log."""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX, make_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import Model
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tutoring_core.accounts.data import IdentityKey, LinkHint, PersonProfile, PersonResult, RowsQuery
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


# --- Bulk writes for roster sync at district scale ----------------------------------
# person_resolve and role_assign do a few queries per person, which is right for a
# launch and far too slow for 50,000 people a night. These take a chunk of rows and
# do a fixed number of queries per chunk. Same rules: keyed on ExternalIdentity,
# empty values never blank what we know, email matches are only candidates.


@dataclass(frozen=True)
class PersonRow:
    subject: str
    given_name: str = ""
    family_name: str = ""
    email: str = ""
    is_active: bool = True
    # The subject this person had before the source re-keyed them (same issuer):
    # the new key joins that person instead of creating a stranger.
    previous_subject: str = ""


@dataclass(frozen=True)
class PersonBulkResult:
    user_id: uuid.UUID
    action: str  # "created" | "updated" | "unchanged" | "relinked"


def _profile_values(row: PersonRow) -> dict[str, Any]:
    values: dict[str, Any] = {"is_active": row.is_active}
    for attr, value in (
        ("first_name", row.given_name),
        ("last_name", row.family_name),
        ("email", row.email.strip().lower()),
    ):
        value = value.strip()[: User._meta.get_field(attr).max_length]  # type: ignore[union-attr]
        if value:
            values[attr] = value
    return values


@transaction.atomic
def people_bulk_upsert(
    *, tenant: Tenant, kind: str, issuer: str, rows: Sequence[PersonRow]
) -> dict[str, PersonBulkResult]:
    """Create or update the people ``rows`` name under (kind, issuer). Returns subject -> result.

    Callers pass chunks (a few thousand rows); subjects must be unique in a chunk.
    """
    now = timezone.now()
    wanted = {r.subject for r in rows} | {r.previous_subject for r in rows if r.previous_subject}
    known = dict(
        ExternalIdentity.objects.filter(
            tenant=tenant, kind=kind, issuer=issuer, subject__in=wanted
        ).values_list("subject", "user_id")
    )
    users = {u.pk: u for u in User.objects.filter(tenant=tenant, pk__in=set(known.values()))}
    results: dict[str, PersonBulkResult] = {}
    to_update: dict[uuid.UUID, set[str]] = {}
    new_users: list[User] = []
    new_identities: list[ExternalIdentity] = []
    for row in rows:
        user_id = known.get(row.subject)
        action = "updated"
        if user_id is None and row.previous_subject and row.previous_subject in known:
            user_id = known[row.previous_subject]
            new_identities.append(
                ExternalIdentity(
                    tenant=tenant,
                    kind=kind,
                    issuer=issuer,
                    subject=row.subject,
                    user_id=user_id,
                    last_seen_at=now,
                )
            )
            known[row.subject] = user_id
            action = "relinked"
        if user_id is not None:
            user = users[user_id]
            changed = _changed_fields(user, _profile_values(row))
            if changed:
                to_update.setdefault(user.pk, set()).update(changed)
            elif action != "relinked":
                action = "unchanged"
            results[row.subject] = PersonBulkResult(user_id=user.pk, action=action)
            continue
        # The same unusable password set_unusable_password() makes, without its
        # per-character random.choice loop (seconds at 50,000 people).
        user = User(
            tenant=tenant,
            username=_username_for(tenant),
            password=UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30),
        )
        for attr, value in _profile_values(row).items():
            setattr(user, attr, value)
        new_users.append(user)
        new_identities.append(
            ExternalIdentity(
                tenant=tenant, kind=kind, issuer=issuer, subject=row.subject, user=user, last_seen_at=now
            )
        )
        known[row.subject] = user.pk
        results[row.subject] = PersonBulkResult(user_id=user.pk, action="created")
    _insert_new(User, new_users)
    _insert_new(ExternalIdentity, new_identities)
    if to_update:
        fields = sorted(set().union(*to_update.values()) | {"updated_at"})
        changed_users = [users[pk] for pk in to_update]
        for user in changed_users:
            user.updated_at = now
        User.objects.bulk_update(changed_users, fields, batch_size=500)
    emails = {u.email for u in new_users if u.email}
    if emails:
        # ARCHITECTURE.md: an email match is a candidate for an admin, never a merge.
        new_ids = {u.pk for u in new_users}
        others: dict[str, list[uuid.UUID]] = {}
        for pk, email in (
            User.objects.filter(tenant=tenant, email__in=emails)
            .exclude(pk__in=new_ids)
            .values_list("pk", "email")
        ):
            others.setdefault(email, []).append(pk)
        # Candidates are the people who were there before: earlier rows of this chunk
        # too, so the result does not depend on where a caller cuts its chunks.
        found = []
        for u in new_users:
            found += [
                LinkCandidate(tenant=tenant, user=u, candidate_id=c, reason="email")
                for c in others.get(u.email, ())
            ]
            if u.email:
                others.setdefault(u.email, []).append(u.pk)
        LinkCandidate.objects.bulk_create(found, ignore_conflicts=True)
    return results


def _insert_new(model: type[Model], objs: Sequence[Model]) -> None:
    """INSERT brand-new rows: COPY on PostgreSQL, bulk_create elsewhere.

    bulk_create spends most of a district import compiling and quoting one
    parameter per field per row; COPY streams the same values through psycopg's
    C row writer. Same contract as bulk_create without ignore_conflicts: a
    duplicate key raises IntegrityError and the caller's transaction rolls back.
    Database-generated primary keys (AutoField) are left to the sequence and not
    read back, so callers must not need them.
    """
    if not objs:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objs, batch_size=1000)
        return
    fields = [f for f in model._meta.concrete_fields if not getattr(f, "db_returning", False)]
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        table = connection.ops.quote_name(model._meta.db_table)
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for obj in objs:
                # pre_save fills auto_now / auto_now_add as save() and bulk_create do.
                copy.write_row([f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields])
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias


def _changed_fields(obj: Any, values: dict[str, Any]) -> list[str]:
    changed = []
    for attr, value in values.items():
        if getattr(obj, attr) != value:
            setattr(obj, attr, value)
            changed.append(attr)
    return changed


def users_bulk_set_active(*, tenant: Tenant, user_ids: Sequence[uuid.UUID], is_active: bool) -> int:
    """Deactivate (or reactivate) people; they and their history stay."""
    return (
        User.objects.filter(tenant=tenant, pk__in=list(user_ids))
        .exclude(is_active=is_active)
        .update(is_active=is_active, updated_at=timezone.now())
    )


@dataclass(frozen=True)
class RoleRow:
    user_id: uuid.UUID
    role: str
    school_id: uuid.UUID | None = None


@transaction.atomic
def roles_bulk_assign(*, tenant: Tenant, rows: Sequence[RoleRow], source: str) -> dict[RoleRow, int]:
    """Grant roles (tenant- or school-wide), reactivating old grants. Returns row -> assignment id."""
    unknown = {row.role for row in rows} - set(Role.values)
    if unknown:
        raise ValueError(f"Unknown role {sorted(unknown)[0]!r}.")
    user_ids = {r.user_id for r in rows}
    if User.objects.filter(tenant=tenant, pk__in=user_ids).count() != len(user_ids):
        raise ValueError("Every person must belong to this tenant.")

    def existing() -> dict[RoleRow, tuple[int, bool]]:
        found = RoleAssignment.objects.filter(tenant=tenant, user_id__in=user_ids, klass__isnull=True)
        return {
            RoleRow(a.user_id, a.role, a.school_id): (a.pk, a.is_active)
            for a in found.only("pk", "user_id", "role", "school_id", "is_active")
        }

    have = existing()
    missing = [r for r in dict.fromkeys(rows) if r not in have]
    if missing:
        _roles_insert_missing(tenant=tenant, rows=missing, source=source)
        have = existing()
    inactive = [have[r][0] for r in rows if not have[r][1]]
    if inactive:
        RoleAssignment.objects.filter(pk__in=inactive).update(is_active=True, updated_at=timezone.now())
    return {r: have[r][0] for r in rows}


def _roles_insert_missing(*, tenant: Tenant, rows: Sequence[RoleRow], source: str) -> None:
    """Insert grants, skipping any a concurrent writer added first (any unique constraint)."""
    if connection.vendor != "postgresql":
        RoleAssignment.objects.bulk_create(
            [
                RoleAssignment(
                    tenant=tenant, user_id=r.user_id, role=r.role, school_id=r.school_id, source=source
                )
                for r in rows
            ],
            ignore_conflicts=True,
        )
        return
    # COPY into a temporary table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING: the
    # same statement bulk_create(ignore_conflicts=True) makes, without compiling and
    # quoting every value in Python. Runs inside roles_bulk_assign's transaction: the
    # temporary table empties itself at commit.
    now = timezone.now()
    table = connection.ops.quote_name(RoleAssignment._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS accounts_role_chunk (user_id uuid, role text, school_id uuid)"
            " ON COMMIT DELETE ROWS"
        )
        cursor.execute("DELETE FROM accounts_role_chunk")  # an earlier call in this transaction
        with cursor.cursor.copy("COPY accounts_role_chunk (user_id, role, school_id) FROM STDIN") as copy:
            for r in rows:
                copy.write_row((r.user_id, r.role, r.school_id))
        cursor.execute(
            f"""INSERT INTO {table} (tenant_id, user_id, role, school_id, klass_id, source, is_active,
                                     created_at, updated_at)
                SELECT %s, c.user_id, c.role, c.school_id, NULL, %s, TRUE, %s, %s FROM accounts_role_chunk c
                ON CONFLICT DO NOTHING""",  # noqa: S608 - table name from the model; values are parameters
            [tenant.pk, source, now, now],
        )


def roles_bulk_deactivate(*, tenant: Tenant, assignment_ids: Sequence[int]) -> int:
    return RoleAssignment.objects.filter(tenant=tenant, pk__in=list(assignment_ids), is_active=True).update(
        is_active=False, updated_at=timezone.now()
    )


@transaction.atomic
def guardian_links_bulk_upsert(
    *,
    tenant: Tenant,
    pairs: Sequence[tuple[uuid.UUID, uuid.UUID]],
    source: str,
    relationship: str = "guardian",
) -> dict[tuple[uuid.UUID, uuid.UUID], int]:
    """Link (guardian_id, student_id) pairs, reactivating old links. Returns pair -> link id."""
    pairs = [p for p in dict.fromkeys(pairs) if p[0] != p[1]]
    people = {p for pair in pairs for p in pair}
    if User.objects.filter(tenant=tenant, pk__in=people).count() != len(people):
        raise ValueError("Every person must belong to this tenant.")

    def existing() -> dict[tuple[uuid.UUID, uuid.UUID], tuple[int, bool]]:
        found = GuardianLink.objects.filter(
            tenant=tenant, guardian_id__in={g for g, _ in pairs}, student_id__in={s for _, s in pairs}
        )
        return {
            (g.guardian_id, g.student_id): (g.pk, g.is_active)
            for g in found.only("pk", "guardian_id", "student_id", "is_active")
        }

    have = existing()
    missing = [p for p in pairs if p not in have]
    if missing:
        GuardianLink.objects.bulk_create(
            [
                GuardianLink(
                    tenant=tenant, guardian_id=g, student_id=s, relationship=relationship, source=source
                )
                for g, s in missing
            ],
            ignore_conflicts=True,
        )
        have = existing()
    inactive = [have[p][0] for p in pairs if not have[p][1]]
    if inactive:
        GuardianLink.objects.filter(pk__in=inactive).update(is_active=True, updated_at=timezone.now())
    return {p: have[p][0] for p in pairs}


def guardian_links_bulk_deactivate(*, tenant: Tenant, link_ids: Sequence[int]) -> int:
    return GuardianLink.objects.filter(tenant=tenant, pk__in=list(link_ids), is_active=True).update(
        is_active=False, updated_at=timezone.now()
    )


# --- Set-based bulk writes (PostgreSQL) -------------------------------------------------
# The same upserts as above for rows a caller selects in SQL (a staging table joined to
# its own mapping): the rows go from one table to the next inside the server instead of
# round-tripping through Python, which was most of a district import. The rules are the
# Python functions' (same normalisation, same checks, same results); each function writes
# (key, core id) pairs into the caller's result table ``into`` (columns key bigint, core_id
# text) and must run inside the caller's transaction (its temporary table empties itself
# at commit).

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def _result_table(into: str) -> str:
    if connection.vendor != "postgresql":
        raise NotImplementedError("The set-based bulk writes need PostgreSQL; use the row functions.")
    if not _IDENTIFIER.fullmatch(into):
        raise ValueError(f"{into!r} is not a plain table name.")
    return into


def _rows_table(cursor: Any, name: str, columns: str, rows: RowsQuery) -> int:
    """Materialise the caller's rows in a temporary table of ours (checked, then read
    by several statements); returns their number."""
    cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS")
    cursor.execute(f"DELETE FROM {name}")  # noqa: S608 - an earlier call in this transaction
    names = ", ".join(c.split()[0] for c in columns.split(", "))
    cursor.execute(f"INSERT INTO {name} ({names}) SELECT {names} FROM ({rows.sql}) q", list(rows.params))  # noqa: S608
    return int(cursor.rowcount)


def _check_tenant_users(cursor: Any, *, tenant: Tenant, table: str, columns: Sequence[str]) -> None:
    users = User._meta.db_table
    for column in columns:
        cursor.execute(
            f"""SELECT EXISTS (SELECT 1 FROM {table} r WHERE r.{column} IS NOT NULL AND NOT EXISTS
                    (SELECT 1 FROM {users} u WHERE u.id = r.{column} AND u.tenant_id = %s))""",  # noqa: S608
            [tenant.pk],
        )
        if cursor.fetchone()[0]:
            raise ValueError("Every person must belong to this tenant.")


def _check_roles(cursor: Any, table: str) -> None:
    cursor.execute(f"SELECT DISTINCT role FROM {table} WHERE NOT (role = ANY(%s))", [list(Role.values)])  # noqa: S608
    unknown = sorted(r[0] for r in cursor.fetchall())
    if unknown:
        raise ValueError(f"Unknown role {unknown[0]!r}.")


def roles_bulk_assign_query(*, tenant: Tenant, rows: RowsQuery, source: str, into: str) -> int:
    """The set-based roles_bulk_assign: ``rows`` selects (key, user_id, role, school_id).
    Grants tenant- or school-wide roles, reactivating old grants; writes (key, assignment
    id) into ``into``. Returns the number of rows."""
    into = _result_table(into)
    now = timezone.now()
    table = RoleAssignment._meta.db_table
    with connection.cursor() as cursor:
        n = _rows_table(
            cursor, "accounts_role_rows", "key bigint, user_id uuid, role text, school_id uuid", rows
        )
        if not n:
            return 0
        _check_roles(cursor, "accounts_role_rows")
        _check_tenant_users(cursor, tenant=tenant, table="accounts_role_rows", columns=["user_id"])
        # Any unique constraint may already hold the grant (a concurrent writer too): skip it.
        cursor.execute(
            f"""INSERT INTO {table} (tenant_id, user_id, role, school_id, klass_id, source, is_active,
                                     created_at, updated_at)
                SELECT DISTINCT %s::uuid, r.user_id, r.role, r.school_id, NULL::uuid, %s, TRUE, %s::timestamptz,
                       %s::timestamptz
                FROM accounts_role_rows r
                ON CONFLICT DO NOTHING""",  # noqa: S608
            [tenant.pk, source, now, now],
        )
        cursor.execute(
            f"""UPDATE {table} a SET is_active = TRUE, updated_at = %s
                FROM accounts_role_rows r
                WHERE a.tenant_id = %s AND a.user_id = r.user_id AND a.role = r.role AND a.klass_id IS NULL
                  AND a.school_id IS NOT DISTINCT FROM r.school_id AND NOT a.is_active""",  # noqa: S608
            [now, tenant.pk],
        )
        cursor.execute(
            f"""INSERT INTO {into} (key, core_id)
                SELECT r.key, a.id FROM accounts_role_rows r
                JOIN {table} a ON a.user_id = r.user_id AND a.role = r.role AND a.klass_id IS NULL
                     AND a.school_id IS NOT DISTINCT FROM r.school_id AND a.tenant_id = %s""",  # noqa: S608
            [tenant.pk],
        )
    return n


def _sql_profile_value(column: str, expression: str, *, lower: bool = False) -> str:
    """_profile_values() in SQL: trimmed (Python's str.strip), lowercased for email,
    cut to the column's length; '' means "keep what we know"."""
    length: int = User._meta.get_field(column).max_length  # type: ignore[union-attr,assignment]
    trim = "regexp_replace({}, '^[[:space:]]+|[[:space:]]+$', '', 'g')"
    value = trim.format(f"COALESCE({expression}, '')")
    if lower:
        value = trim.format(f"lower({value})")
    return f"left({value}, {length:d})"


def people_bulk_upsert_query(*, tenant: Tenant, kind: str, issuer: str, rows: RowsQuery, into: str) -> int:
    """The set-based people_bulk_upsert: ``rows`` selects (key, subject, given_name,
    family_name, email, is_active, previous_subject), subjects unique. Same rules: keyed
    on the external identity, a re-keyed subject joins its previous person, empty values
    never blank what we know, an email match is only a candidate. Writes (key, user id)
    into ``into``; returns the number of rows."""
    into = _result_table(into)
    now = timezone.now()
    users, identities = User._meta.db_table, ExternalIdentity._meta.db_table
    candidates = LinkCandidate._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS accounts_person_rows (key bigint, subject text,"
            " first_name text, last_name text, email text, is_active boolean, user_id uuid, relinked boolean,"
            " created boolean) ON COMMIT DELETE ROWS"
        )
        cursor.execute("DELETE FROM accounts_person_rows")  # an earlier call in this transaction
        identity = f"""SELECT i.user_id FROM {identities} i WHERE i.tenant_id = %s AND i.kind = %s
                       AND i.issuer = %s AND i.subject = {{}} LIMIT 1"""  # noqa: S608
        cursor.execute(
            f"""INSERT INTO accounts_person_rows (key, subject, first_name, last_name, email, is_active, user_id,
                                                  relinked, created)
                SELECT q.key, q.subject, {_sql_profile_value("first_name", "q.given_name")},
                       {_sql_profile_value("last_name", "q.family_name")},
                       {_sql_profile_value("email", "q.email", lower=True)}, q.is_active,
                       COALESCE(cur.user_id, prev.user_id, gen_random_uuid()),
                       cur.user_id IS NULL AND prev.user_id IS NOT NULL, cur.user_id IS NULL AND prev.user_id IS NULL
                FROM ({rows.sql}) q
                LEFT JOIN LATERAL ({identity.format("q.subject")}) cur ON TRUE
                LEFT JOIN LATERAL ({identity.format("q.previous_subject")}) prev ON q.previous_subject <> ''""",  # noqa: S608
            [*rows.params, tenant.pk, kind, issuer, tenant.pk, kind, issuer],
        )
        n = int(cursor.rowcount)
        if not n:
            return 0
        cursor.execute(
            f"""INSERT INTO {users} (id, password, last_login, is_superuser, username, first_name, last_name, email,
                                     is_staff, is_active, date_joined, tenant_id, display_name,
                                     preferred_time_zone, email_verified, updated_at)
                SELECT r.user_id, %s || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), NULL,
                       FALSE, %s || left(replace(gen_random_uuid()::text, '-', ''), 16), r.first_name,
                       r.last_name, r.email, FALSE, r.is_active, %s, %s, '', '', FALSE, %s
                FROM accounts_person_rows r WHERE r.created ORDER BY r.key""",  # noqa: S608
            [UNUSABLE_PASSWORD_PREFIX, f"{tenant.slug}.", now, tenant.pk, now],
        )
        cursor.execute(
            f"""INSERT INTO {identities} (tenant_id, kind, issuer, subject, user_id, last_seen_at, created_at,
                                          updated_at)
                SELECT %s, %s, %s, r.subject, r.user_id, %s, %s, %s FROM accounts_person_rows r
                WHERE r.created OR r.relinked ORDER BY r.key""",  # noqa: S608
            [tenant.pk, kind, issuer, now, now, now],
        )
        # Known people: only what changed, and only non-empty values (the last row of a
        # person named twice wins, as row by row).
        cursor.execute(
            f"""UPDATE {users} u SET
                    first_name = CASE WHEN r.first_name <> '' THEN r.first_name ELSE u.first_name END,
                    last_name = CASE WHEN r.last_name <> '' THEN r.last_name ELSE u.last_name END,
                    email = CASE WHEN r.email <> '' THEN r.email ELSE u.email END,
                    is_active = r.is_active, updated_at = %s
                FROM (SELECT DISTINCT ON (user_id) * FROM accounts_person_rows WHERE NOT created
                      ORDER BY user_id, key DESC) r
                WHERE u.id = r.user_id AND u.tenant_id = %s
                  AND (u.is_active <> r.is_active OR (r.first_name <> '' AND u.first_name <> r.first_name)
                       OR (r.last_name <> '' AND u.last_name <> r.last_name)
                       OR (r.email <> '' AND u.email <> r.email))""",  # noqa: S608
            [now, tenant.pk],
        )
        # ARCHITECTURE.md: an email match is a candidate for an admin, never a merge.
        # Candidates are the tenant's people who were there before this one.
        cursor.execute(
            f"""INSERT INTO {candidates} (tenant_id, user_id, candidate_id, reason, status, created_at, updated_at)
                SELECT %s, r.user_id, u.id, 'email', %s, %s, %s FROM accounts_person_rows r
                JOIN {users} u ON u.tenant_id = %s AND u.email = r.email AND u.id <> r.user_id
                WHERE r.created AND r.email <> ''
                  AND NOT EXISTS (SELECT 1 FROM accounts_person_rows n WHERE n.created AND n.user_id = u.id
                                  AND n.key > r.key)
                ON CONFLICT DO NOTHING""",  # noqa: S608
            [tenant.pk, LinkCandidate.Status.OPEN, now, now, tenant.pk],
        )
        cursor.execute(
            f"INSERT INTO {into} (key, core_id) SELECT key, user_id FROM accounts_person_rows"  # noqa: S608
        )
    return n
