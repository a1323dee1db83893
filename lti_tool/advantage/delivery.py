"""Score delivery: one outbox entry to one platform line item, exactly as AGS 2.0
asks, with the retry rules of STYLE.md (transient errors only, backoff with
jitter, Retry-After, a limit, a terminal state an admin can see)."""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from dataclasses import dataclass

from django.conf import settings

from lti_tool.advantage import throttle
from lti_tool.advantage.models import LineItem
from lti_tool.advantage.platforms import PlatformAccess, PlatformUnavailable, platform_access
from lti_tool.advantage.protocol import media
from lti_tool.advantage.protocol.ags import Score, score_payload, scores_url
from lti_tool.advantage.protocol.errors import ProtocolError
from lti_tool.advantage.protocol.retry import backoff_seconds, is_rate_limited, is_transient
from lti_tool.advantage.selectors import lti_user_id
from lti_tool.advantage.services import ServiceError, lineitem_sync
from lti_tool.advantage.tokens import TokenError, access_token, token_invalidate
from tutoring_core import http
from tutoring_core.accounts.api import audit_record, tenants_by_id
from tutoring_core.progress import api as progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one run did: ``delivered``, ``retry`` (with ``delay``), ``deferred``
    (not sent: platform paused or over its rate), ``failed`` or ``skipped``
    (not claimable: done, superseded, not due or taken)."""

    kind: str
    delay: float = 0.0
    detail: str = ""


def _new_submission(source: str) -> bool:
    # A student's own work (SCORM, an assessment) is a submission in Canvas's
    # SpeedGrader; a teacher's override grades the existing submission instead.
    return source != progress.ResultSource.TEACHER


def score_deliver(*, entry_id: uuid.UUID) -> Outcome:
    """Claim one entry and send it, within the platform's limits (deferred when the
    platform is paused or over its rate). The dispatcher (dispatcher.py) is the
    production path; this one serves the admin's and tests' one-off sends."""
    item = progress.outbox_claim(entry_id=entry_id, lease_seconds=settings.LTI_AGS_LEASE_SECONDS)
    if item is None:
        return Outcome("skipped")
    target = _target(item)
    if isinstance(target, Outcome):
        return target
    line_item, access = target
    registration = access.registration_id

    paused = throttle.paused_for(registration)
    if paused > 0:
        return _defer(item, paused + random.uniform(0, min(2.0, paused)))
    if not throttle.acquire_rate(registration, per_second=settings.LTI_AGS_RATE_LIMIT_PER_SECOND):
        return _defer(item, random.uniform(0.05, 1.0))
    slot = concurrency_slot(registration)
    if not slot.acquire():
        return _defer(item, random.uniform(0.05, 1.0))
    try:
        return _post(item, line_item, access)
    finally:
        slot.release()


def concurrency_slot(registration_id: str) -> throttle.ConcurrencySlot:
    return throttle.ConcurrencySlot(
        registration_id,
        limit=settings.LTI_AGS_MAX_CONCURRENCY,
        hold_seconds=settings.LTI_ADVANTAGE_CONNECT_TIMEOUT + settings.LTI_ADVANTAGE_READ_TIMEOUT + 10,
    )


def deliver_leased(item: progress.OutboxItem) -> Outcome:
    """Send an entry a dispatcher leased and paced (it holds a rate permit and a
    concurrency slot for it)."""
    target = _target(item)
    if isinstance(target, Outcome):
        return target
    line_item, access = target
    return _post(item, line_item, access)


def release(item: progress.OutboxItem) -> Outcome:
    """Hand back a leased entry that was not sent (paused platform, end of a run)."""
    progress.outbox_release(item=item)
    return Outcome("deferred")


def _target(item: progress.OutboxItem) -> tuple[LineItem, PlatformAccess] | Outcome:
    """The column and platform an entry goes to, setting the column up on the
    platform first if needed; an Outcome when the entry cannot go now."""
    key = _uuid(item.destination_key)
    line_item = LineItem.objects.filter(pk=key, tenant_id=item.tenant_id).first() if key else None
    if line_item is None:
        return _fail(
            item, None, "The gradebook column (line item) for this activity is missing on our side.", None
        )
    if not line_item.url:
        # Created on demand: the column is found or made on the platform first.
        try:
            line_item = lineitem_sync(line_item_id=line_item.pk)
        except ServiceError as exc:
            if exc.transient:
                delay = backoff_seconds(
                    item.attempts,
                    base=settings.LTI_AGS_BACKOFF_BASE_SECONDS,
                    cap=settings.LTI_AGS_BACKOFF_CAP_SECONDS,
                    retry_after=exc.retry_after,
                )
                progress.outbox_mark_retry(
                    item=item, error=str(exc), status_code=exc.status, delay_seconds=delay
                )
                return Outcome("retry", delay=delay, detail=str(exc))
            return _fail(item, line_item, f"The gradebook column could not be set up: {exc}", exc.status)
        except PlatformUnavailable as exc:
            return _fail(item, line_item, f"The platform registration cannot be used: {exc}", None)
    try:
        access = platform_access(line_item.registration_id)
    except PlatformUnavailable as exc:
        return _fail(item, line_item, f"The platform registration cannot be used: {exc}", None)
    return line_item, access


def _post(item: progress.OutboxItem, line_item: LineItem, access: PlatformAccess) -> Outcome:
    user_id = lti_user_id(tenant_id=item.tenant_id, issuer=access.issuer, user_id=item.user_id)
    if not user_id:
        return _fail(
            item,
            line_item,
            "This student has no account on the platform we know of (never launched the tool and not on the "
            "synced class list); sync the class list, then retry.",
            None,
        )
    try:
        body = score_payload(
            Score(
                user_id=user_id,
                timestamp=item.recorded_at,
                activity_progress=item.activity_progress,
                grading_progress=item.grading_progress,
                score_given=item.score_given,
                score_maximum=item.score_maximum if item.score_given is not None else None,
                comment=item.comment,
            ),
            canvas=access.platform_kind == "canvas",
            new_submission=_new_submission(item.source),
        )
    except ProtocolError as exc:
        return _fail(item, line_item, f"The score cannot be sent: {exc}", None)

    for attempt_token in range(2):  # a second go only after a 401 with a cached token
        try:
            token = access_token(access, [media.SCOPE_SCORE])
        except TokenError as exc:
            if exc.transient:
                return _transient(item, line_item, access, str(exc), exc.status, exc.retry_after)
            return _fail(item, line_item, str(exc), exc.status)
        sent_at = time.time()
        try:
            response = http.post(
                scores_url(line_item.url),
                data=json.dumps(body),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": media.SCORE,
                    "Accept": "application/json",
                },
                timeout=(settings.LTI_ADVANTAGE_CONNECT_TIMEOUT, settings.LTI_ADVANTAGE_READ_TIMEOUT),
                retries=0,  # retries are ours: recorded on the row, with backoff
                raise_for_status=False,
            )
        except http.OutboundHTTPError as exc:
            if exc.transient:
                return _transient(
                    item, line_item, access, str(exc), exc.status, exc.retry_after, sent_at=sent_at
                )
            return _fail(item, line_item, str(exc), exc.status)
        status = response.status_code
        if status == 401 and attempt_token == 0:
            token_invalidate(access, [media.SCOPE_SCORE], token)
            continue
        break
    text = response.text[:500]
    if 200 <= status < 300:
        throttle.record_success(access.registration_id)
        progress.outbox_mark_delivered(item=item, status_code=status)
        return Outcome("delivered")
    if status == 409:
        # The platform already holds a score with this timestamp or a later one: ours
        # arrived before (a retry after a lost answer) or a newer one did. Either
        # way the platform is not behind us, so sending again would be wrong.
        throttle.record_success(access.registration_id)
        progress.outbox_mark_delivered(
            item=item, status_code=status, note="The platform already had this score or a newer one."
        )
        return Outcome("delivered", detail="conflict")
    retry_after = http.parse_retry_after(response.headers.get("Retry-After"))
    if is_transient(status, text):
        return _transient(
            item,
            line_item,
            access,
            f"The platform answered {status}: {text}",
            status,
            retry_after,
            sent_at=sent_at,
        )
    throttle.record_success(access.registration_id)  # up and answering, if not pleased with this score
    return _fail(item, line_item, f"The platform refused the score ({status}): {text}", status)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _defer(item: progress.OutboxItem, delay: float) -> Outcome:
    progress.outbox_mark_retry(
        item=item, error="", status_code=None, delay_seconds=delay, count_attempt=False
    )
    return Outcome("deferred", delay=delay)


def _transient(
    item: progress.OutboxItem,
    line_item: LineItem,
    access: PlatformAccess,
    error: str,
    status: int | None,
    retry_after: float | None,
    *,
    sent_at: float | None = None,
) -> Outcome:
    if is_rate_limited(status, error):
        # This row waits at least Retry-After. If the platform keeps saying we are
        # too fast, every worker backs off, not just this row (see throttle).
        throttle.record_rate_limited(access.registration_id, retry_after)
    else:
        throttle.record_transient_failure(access.registration_id, sent_at=sent_at)
    if item.attempts >= settings.LTI_AGS_MAX_ATTEMPTS:
        return _fail(item, line_item, f"Gave up after {item.attempts} attempts. Last error: {error}", status)
    delay = backoff_seconds(
        item.attempts,
        base=settings.LTI_AGS_BACKOFF_BASE_SECONDS,
        cap=settings.LTI_AGS_BACKOFF_CAP_SECONDS,
        retry_after=retry_after,
    )
    progress.outbox_mark_retry(item=item, error=error, status_code=status, delay_seconds=delay)
    return Outcome("retry", delay=delay, detail=error)


def _fail(item: progress.OutboxItem, line_item: LineItem | None, error: str, status: int | None) -> Outcome:
    if progress.outbox_mark_failed(item=item, error=error, status_code=status):
        tenant = tenants_by_id([item.tenant_id]).get(item.tenant_id)
        audit_record(
            tenant=tenant,
            actor=None,
            action="grades.delivery_failed",
            target=line_item,
            details={"entry": str(item.id), "status": status, "error": error[:500]},
        )
    logger.warning("Score delivery %s failed: %s", item.id, error)
    return Outcome("failed", detail=error)
