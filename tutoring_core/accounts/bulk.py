"""Bulk writes of people, roles and guardian links, for roster sync at district scale.

person_resolve and role_assign do a few queries per person, which is right for a
launch and far too slow for 50,000 people a night. These take a chunk of rows and do
a fixed number of queries per chunk, through the ORM, on SQLite and PostgreSQL alike
(one engine: the tests run what production runs). Same rules as the row functions:
keyed on ExternalIdentity, empty values never blank what we know, email matches are
only candidates.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db import transaction
from django.utils import timezone

from tutoring_core.accounts.data import PersonBulkResult, PersonRow, RoleRow
from tutoring_core.accounts.models import (
    ExternalIdentity,
    GuardianLink,
    LinkCandidate,
    Role,
    RoleAssignment,
    Tenant,
    User,
)
from tutoring_core.accounts.services import _username_for
from tutoring_core.bulk_write import bulk_write, bulk_write_values
from tutoring_core.rows import set_changed


def _max_length(model: type[Any], name: str) -> int:
    return int(model._meta.get_field(name).max_length)


_PROFILE_FIELDS = (("first_name", "given_name"), ("last_name", "family_name"), ("email", "email"))
_PROFILE_LENGTHS = {field: _max_length(User, field) for field, _ in _PROFILE_FIELDS}


def _profile_values(row: PersonRow) -> dict[str, Any]:
    """The user fields a row sets: trimmed, email lowercased, cut to the column's
    length; empty values are left out (they never blank what we know)."""
    values: dict[str, Any] = {"is_active": row.is_active}
    for field, attr in _PROFILE_FIELDS:
        value = getattr(row, attr).strip()
        if field == "email":
            value = value.lower()
        value = value[: _PROFILE_LENGTHS[field]]
        if value:
            values[field] = value
    return values


def _check_tenant_people(tenant: Tenant, user_ids: set[uuid.UUID]) -> None:
    if User.objects.filter(tenant=tenant, pk__in=user_ids).count() != len(user_ids):
        raise ValueError("Every person must belong to this tenant.")


def _check_roles(roles: set[str]) -> None:
    unknown = roles - set(Role.values)
    if unknown:
        raise ValueError(f"Unknown role {sorted(unknown)[0]!r}.")


@transaction.atomic
def people_bulk_upsert(
    *, tenant: Tenant, kind: str, issuer: str, rows: Sequence[PersonRow]
) -> dict[str, PersonBulkResult]:
    """Create or update the people ``rows`` name under (kind, issuer). Returns subject -> result.

    A re-keyed subject (``previous_subject``) joins its previous person. A subject
    named twice takes the values of its last row. Callers pass chunks (a few
    thousand rows); the result does not depend on where they cut them."""
    now = timezone.now()
    rows = list({r.subject: r for r in rows}.values())  # the last row of a subject wins
    wanted = {r.subject for r in rows} | {r.previous_subject for r in rows if r.previous_subject}
    known = dict(
        ExternalIdentity.objects.filter(
            tenant=tenant, kind=kind, issuer=issuer, subject__in=wanted
        ).values_list("subject", "user_id")
    )
    users = {u.pk: u for u in User.objects.filter(tenant=tenant, pk__in=set(known.values()))}
    results: dict[str, PersonBulkResult] = {}
    changed_fields: set[str] = set()
    changed_users: dict[uuid.UUID, User] = {}
    new_users: list[dict[str, Any]] = []
    new_identities: list[dict[str, Any]] = []
    identity = {"tenant_id": tenant.pk, "kind": kind, "issuer": issuer, "last_seen_at": now}
    for row in rows:
        user_id = known.get(row.subject)
        action = "updated"
        if user_id is None and row.previous_subject and row.previous_subject in known:
            user_id = known[row.previous_subject]
            new_identities.append({**identity, "subject": row.subject, "user_id": user_id})
            known[row.subject] = user_id
            action = "relinked"
        if user_id is not None:
            user = users[user_id]
            changed = set_changed(user, _profile_values(row))
            if changed:
                changed_fields.update(changed)
                changed_users[user.pk] = user
            elif action != "relinked":
                action = "unchanged"
            results[row.subject] = PersonBulkResult(user_id=user.pk, action=action)
            continue
        # The same unusable password set_unusable_password() makes, without its
        # per-character random.choice loop (seconds at 50,000 people).
        user_id = uuid.uuid4()
        new_users.append(
            {
                "id": user_id,
                "tenant_id": tenant.pk,
                "username": _username_for(tenant),
                "password": UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30),
                **_profile_values(row),
            }
        )
        new_identities.append({**identity, "subject": row.subject, "user_id": user_id})
        known[row.subject] = user_id
        results[row.subject] = PersonBulkResult(user_id=user_id, action="created")
    # Values, not instances: a district's 50,000 User instances cost more than their rows.
    bulk_write_values(User, new_users)
    bulk_write_values(ExternalIdentity, new_identities)
    if changed_users:
        for user in changed_users.values():
            user.updated_at = now
        User.objects.bulk_update(
            list(changed_users.values()), sorted(changed_fields | {"updated_at"}), batch_size=500
        )
    _email_candidates(tenant, [(u["id"], u.get("email", "")) for u in new_users])
    return results


def _email_candidates(tenant: Tenant, new_users: list[tuple[uuid.UUID, str]]) -> None:
    """ARCHITECTURE.md: an email match is a candidate for an admin, never a merge.
    Candidates are the people who were there before: earlier rows of this chunk too,
    so the result does not depend on where a caller cuts its chunks."""
    emails = {email for _, email in new_users if email}
    if not emails:
        return
    new_ids = {user_id for user_id, _ in new_users}
    others: dict[str, list[uuid.UUID]] = {}
    # The chunk's own new people are left out here, not in the query: a second list of
    # 20,000 ids to compile and send cost more than the rows it saves (bench/roster.py).
    for pk, email in User.objects.filter(tenant=tenant, email__in=emails).values_list("pk", "email"):
        if pk not in new_ids:
            others.setdefault(email, []).append(pk)
    found = []
    for user_id, email in new_users:
        found += [
            LinkCandidate(tenant=tenant, user_id=user_id, candidate_id=other, reason="email")
            for other in others.get(email, ())
        ]
        if email:
            others.setdefault(email, []).append(user_id)
    bulk_write(LinkCandidate, found, ignore_conflicts=True)


def users_bulk_set_active(*, tenant: Tenant, user_ids: Sequence[uuid.UUID], is_active: bool) -> int:
    """Deactivate (or reactivate) people; they and their history stay."""
    return (
        User.objects.filter(tenant=tenant, pk__in=list(user_ids))
        .exclude(is_active=is_active)
        .update(is_active=is_active, updated_at=timezone.now())
    )


@transaction.atomic
def roles_bulk_assign(*, tenant: Tenant, rows: Sequence[RoleRow], source: str) -> dict[RoleRow, int]:
    """Grant roles (tenant- or school-wide), reactivating old grants. Returns row -> assignment id."""
    _check_roles({row.role for row in rows})
    user_ids = {r.user_id for r in rows}
    _check_tenant_people(tenant, user_ids)

    def existing() -> dict[RoleRow, tuple[int, bool]]:
        found = RoleAssignment.objects.filter(tenant=tenant, user_id__in=user_ids, klass__isnull=True)
        return {
            RoleRow(user_id, role, school_id): (pk, active)
            for pk, user_id, role, school_id, active in found.values_list(
                "pk", "user_id", "role", "school_id", "is_active"
            )
        }

    have = existing()
    missing = [r for r in dict.fromkeys(rows) if r not in have]
    if missing:
        # The grant's unique constraints are partial (tenant-wide, per school, per
        # class), which ON CONFLICT cannot name: insert what is missing, skipping any
        # a concurrent writer added first; RETURNING gives the new ids.
        written = bulk_write_values(
            RoleAssignment,
            [
                {
                    "tenant_id": tenant.pk,
                    "user_id": r.user_id,
                    "role": r.role,
                    "school_id": r.school_id,
                    "source": source,
                }
                for r in missing
            ],
            ignore_conflicts=True,
            returning=("id", "user", "role", "school"),
        )
        have.update(
            {RoleRow(user_id, role, school_id): (pk, True) for pk, user_id, role, school_id in written}
        )
        if len(written) < len(missing):  # a concurrent writer's grants: read them
            have = existing()
    inactive = [have[r][0] for r in rows if not have[r][1]]
    if inactive:
        RoleAssignment.objects.filter(pk__in=inactive).update(is_active=True, updated_at=timezone.now())
    return {r: have[r][0] for r in rows}


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
    _check_tenant_people(tenant, {p for pair in pairs for p in pair})

    def existing() -> dict[tuple[uuid.UUID, uuid.UUID], tuple[int, bool]]:
        found = GuardianLink.objects.filter(
            tenant=tenant, guardian_id__in={g for g, _ in pairs}, student_id__in={s for _, s in pairs}
        )
        return {
            (guardian, student): (pk, active)
            for pk, guardian, student, active in found.values_list(
                "pk", "guardian_id", "student_id", "is_active"
            )
        }

    have = existing()
    missing = [p for p in pairs if p not in have]
    if missing:
        bulk_write(
            GuardianLink,
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
