"""Service access tokens (client-credentials grant), cached for every worker.

The token for a (registration, scope set) lives in the Django cache (the
database cache by default, Redis in production) until shortly before the
platform's ``expires_in``. A cache lock makes one process fetch while the others
wait for its answer, so a burst of deliveries costs one token request per
expiry window, not one per worker.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid

from django.conf import settings
from django.core.cache import cache

from lti_tool.advantage.platforms import PlatformAccess
from lti_tool.advantage.protocol.errors import ProtocolError
from lti_tool.advantage.protocol.media import scope_key
from lti_tool.advantage.protocol.tokens import client_assertion, parse_token_response, token_request_form
from tutoring_core import http

logger = logging.getLogger(__name__)

LOCK_SECONDS = 30
WAIT_SECONDS = 35.0


class TokenError(Exception):
    """The platform would not issue a token. ``transient`` says whether to retry."""

    def __init__(
        self, message: str, *, status: int | None, transient: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient
        self.retry_after = retry_after


def _key(access: PlatformAccess, scopes: list[str]) -> str:
    digest = hashlib.sha256(
        f"{access.registration_id}|{access.client_id}|{scope_key(scopes)}".encode()
    ).hexdigest()
    return f"lti-adv:token:{digest[:40]}"


def _cached(key: str) -> str | None:
    """The cached token if it is still within its lifetime.

    The entry carries its own expiry as well as the cache timeout: the cache's
    clock (Redis) and ours can disagree, and a token one second past its time
    fails every delivery made with it.
    """
    entry = cache.get(key)
    if not isinstance(entry, dict) or entry.get("expires_at", 0) <= time.time():
        return None
    return str(entry["token"])


def access_token(access: PlatformAccess, scopes: list[str]) -> str:
    """A bearer token for ``scopes``, from the shared cache or freshly requested."""
    key = _key(access, scopes)
    token = _cached(key)
    if token:
        return token
    lock = f"{key}:lock"
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + WAIT_SECONDS
    delay = 0.02
    while True:
        if cache.add(lock, owner, timeout=LOCK_SECONDS):
            try:
                token = _cached(key)  # another process may have just finished
                if token:
                    return token
                return _fetch_and_store(access, scopes, key)
            finally:
                if cache.get(lock) == owner:
                    cache.delete(lock)
        token = _cached(key)
        if token:
            return token
        if time.monotonic() > deadline:
            raise TokenError(
                "Timed out waiting for another worker's token request.", status=None, transient=True
            )
        time.sleep(delay)
        delay = min(0.25, delay * 1.5)


def _fetch_and_store(access: PlatformAccess, scopes: list[str], key: str) -> str:
    assertion = client_assertion(
        client_id=access.client_id,
        audience=access.audience or access.token_url,
        private_key_pem=access.private_key_pem,
        key_id=access.key_id,
    )
    try:
        response = http.post(
            access.token_url,
            data=token_request_form(assertion=assertion, scopes=scopes),
            headers={"Accept": "application/json"},
            timeout=(settings.LTI_ADVANTAGE_CONNECT_TIMEOUT, settings.LTI_ADVANTAGE_READ_TIMEOUT),
        )
    except http.OutboundHTTPError as exc:
        # 400/401 from a token endpoint means our registration or key is wrong: a
        # person must fix it, retrying will not.
        raise TokenError(
            f"The platform's token endpoint refused the request: {exc}",
            status=exc.status,
            transient=exc.transient,
            retry_after=exc.retry_after,
        ) from exc
    try:
        token = parse_token_response(response.json())
    except (ValueError, ProtocolError) as exc:
        raise TokenError(
            f"The platform's token endpoint answered badly: {exc}",
            status=response.status_code,
            transient=False,
        ) from exc
    margin = min(settings.LTI_ADVANTAGE_TOKEN_MARGIN_SECONDS, token.expires_in // 10)
    lifetime = max(1, token.expires_in - margin)
    cache.set(key, {"token": token.value, "expires_at": time.time() + lifetime}, timeout=lifetime)
    logger.info(
        "Fetched a service token for registration %s (%s s)", access.registration_id, token.expires_in
    )
    return token.value


def token_invalidate(access: PlatformAccess, scopes: list[str], token: str) -> None:
    """Forget ``token`` after the platform rejected it (401), unless a newer one
    has replaced it already."""
    key = _key(access, scopes)
    if _cached(key) == token:
        cache.delete(key)
