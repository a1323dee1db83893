"""Writes for tenants, people, identities, roles and the audit log."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db import IntegrityError, connection, transaction
from django.db.models import Model
from django.utils import timezone

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
    return AuditLog.objects.create(
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
    identity.save(update_fields=["last_seen_at", "updated_at"])
    user = identity.user
    changed = _apply_profile(user, profile)
    if changed:
        user.save(update_fields=[*changed, "updated_at"])


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
            changed = _apply_profile(user, profile)
            if changed:
                user.save(update_fields=[*changed, "updated_at"])
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
        LinkCandidate.objects.bulk_create(
            [
                LinkCandidate(tenant=tenant, user=u, candidate_id=c, reason="email")
                for u in new_users
                for c in others.get(u.email, ())
            ],
            ignore_conflicts=True,
        )
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
