"""Writes for API tokens and idempotency records."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from tutoring_core.accounts.models import User
from tutoring_core.accounts.services import audit_record
from tutoring_core.apiauth.models import ApiToken, IdempotencyRecord

# "hub_" marks the string as ours (secret scanners can match it); 32 random bytes
# as URL-safe base64 (43 characters) follow it.
TOKEN_PREFIX = "hub_"  # noqa: S105 - a marker, not a secret
PREFIX_SHOWN = len(TOKEN_PREFIX) + 8
IDEMPOTENCY_KEY_MAX = 255


class TokenRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewToken:
    """A token as created: ``token`` is the only time the secret exists outside the caller."""

    token: str
    row: ApiToken


def token_create(*, person: User, created_by: User | None = None, name: str = "") -> NewToken:
    """Create a bearer token acting as ``person``. The secret is returned once, never stored."""
    if person.tenant_id is None:
        raise TokenRefused("Platform staff without a tenant cannot hold API tokens; use a district account.")
    if not person.is_active:
        raise TokenRefused(f"{person} is deactivated; an API token for them would not work.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        tenant_id=person.tenant_id,
        person=person,
        name=name[:100],
        prefix=token[:PREFIX_SHOWN],
        secret_hash=token_hash(token),
        created_by=created_by,
    )
    audit_record(
        tenant=person.tenant,
        actor=created_by,
        action="api.token_create",
        target=row,
        details={"person": str(person.pk), "prefix": row.prefix},
    )
    return NewToken(token=token, row=row)


def token_revoke(*, token_id: Any, actor: User | None) -> bool:
    """Revoke a token; True if this call revoked it (False: it already was)."""
    now = timezone.now()
    changed = ApiToken.objects.filter(pk=token_id, revoked_at__isnull=True).update(
        revoked_at=now, revoked_by=actor, updated_at=now
    )
    if changed:
        row = ApiToken.objects.select_related("tenant").get(pk=token_id)
        audit_record(
            tenant=row.tenant,
            actor=actor,
            action="api.token_revoke",
            target=row,
            details={"prefix": row.prefix},
        )
    return bool(changed)


def token_authenticate(token: str) -> tuple[ApiToken, User] | None:
    """The token's row and person, if the token is live and its person and tenant active.

    ``last_used_at`` is written at most once per API_TOKEN_LAST_USED_SECONDS, so a busy
    client does not turn every read into a write.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    try:
        row = ApiToken.objects.select_related("person", "person__tenant").get(secret_hash=token_hash(token))
    except ApiToken.DoesNotExist:
        return None
    person = row.person
    if (
        row.revoked_at is not None
        or not person.is_active
        or person.tenant_id != row.tenant_id
        or person.tenant is None
        or not person.tenant.is_active
    ):
        return None
    now = timezone.now()
    stale = now - dt.timedelta(seconds=settings.API_TOKEN_LAST_USED_SECONDS)
    if row.last_used_at is None or row.last_used_at <= stale:
        ApiToken.objects.filter(pk=row.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale)
        ).update(last_used_at=now)
        row.last_used_at = now
    return row, person


# --- Idempotency ---------------------------------------------------------------------


class IdempotencyConflict(Exception):
    """The key was used before for another request (another body, path or method)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def idempotency_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be used as an Idempotency-Key, or None."""
    if not key:
        return "The Idempotency-Key header is empty; send a unique value such as a UUID, or leave it out."
    if len(key) > IDEMPOTENCY_KEY_MAX:
        return f"The Idempotency-Key header is longer than {IDEMPOTENCY_KEY_MAX} characters."
    if not all(" " <= char <= "~" for char in key):
        return "The Idempotency-Key header may contain printable ASCII characters only."
    return None


def request_fingerprint(body: Any) -> str:
    """A hash of the request's meaning: its JSON body with keys in a fixed order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: Any
    replayed: bool = False


def idempotent(
    *,
    person: User,
    key: str | None,
    method: str,
    path: str,
    body: Any,
    run: Callable[[], Answer],
) -> Answer:
    """Run ``run`` once per (tenant, person, key) and return its first answer ever after.

    Without a key, ``run`` simply runs. With one, the record is inserted first, in the
    same transaction as ``run``'s writes: a concurrent retry blocks on the unique key
    until the first commits, then replays its answer. An exception out of ``run``
    (a 5xx) rolls the record back with the work, so a retry does the work again.
    Answers ``run`` returns (2xx, and refusals such as 409) are recorded and replayed.
    """
    if key is None:
        return run()
    tenant_id = person.tenant_id
    assert tenant_id is not None, "API tokens belong to people of a tenant"
    fingerprint = request_fingerprint(body)
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                tenant_id=tenant_id,
                person=person,
                key=key,
                method=method,
                path=path[:500],
                request_hash=fingerprint,
            )
            answer = run()
            record.status_code = answer.status_code
            record.response_body = answer.body
            record.save(update_fields=["status_code", "response_body"])
            return answer
    except IntegrityError:
        existing = IdempotencyRecord.objects.filter(tenant_id=tenant_id, person=person, key=key).first()
        if existing is None:
            raise  # not our unique key: a constraint of the work itself
    if existing.method != method or existing.path != path[:500]:
        raise IdempotencyConflict(
            f"This Idempotency-Key was already used for {existing.method} {existing.path}; "
            "use a new key for a new request."
        )
    if existing.request_hash != fingerprint:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request body; "
            "use a new key for a new request, or resend the first body unchanged."
        )
    if existing.status_code is None:
        # Only possible if a row were written outside idempotent(); answer as "busy".
        raise IdempotencyConflict(
            "A request with this Idempotency-Key is still being processed; retry shortly."
        )
    return Answer(status_code=existing.status_code, body=existing.response_body, replayed=True)


def idempotency_purge(*, older_than: dt.timedelta | None = None) -> int:
    """Delete records older than API_IDEMPOTENCY_TTL_HOURS; returns how many."""
    if older_than is None:
        older_than = dt.timedelta(hours=settings.API_IDEMPOTENCY_TTL_HOURS)
    cutoff = timezone.now() - older_than
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
