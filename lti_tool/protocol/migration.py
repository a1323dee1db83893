"""LTI 1.1 -> 1.3 migration: the ``oauth_consumer_key_sign`` of the lti1p1 claim.

LTI 1.3 Core, Appendix "LTI 1.1 migration claim" (https://www.imsglobal.org/spec/lti/v1p3/migr):
the platform proves it holds the LTI 1.1 shared secret of ``oauth_consumer_key`` by
signing, with HMAC-SHA256 keyed by that secret, the string

    oauth_consumer_key & deployment_id & iss & client_id & exp & nonce

(values from the same id_token, joined by "&") and sending the base64 digest.
Binding exp and nonce makes the signature as single-use as the launch itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any


def _number(value: Any) -> str:
    # exp is a NumericDate; an integral float (1551290856.0) is written as an integer.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def consumer_key_sign(
    *,
    oauth_consumer_key: str,
    deployment_id: str,
    issuer: str,
    client_id: str,
    exp: Any,
    nonce: str,
    secret: str,
) -> str:
    """The ``oauth_consumer_key_sign`` a platform holding ``secret`` sends."""
    base = "&".join((oauth_consumer_key, deployment_id, issuer, client_id, _number(exp), nonce))
    digest = hmac.new(secret.encode(), base.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def consumer_key_sign_valid(
    claim: Mapping[str, Any],
    body: Mapping[str, Any],
    *,
    client_id: str,
    deployment_id: str,
    consumer_key: str,
    secret: str,
) -> bool:
    """Whether the lti1p1 ``claim`` of a verified id_token ``body`` is signed with the
    LTI 1.1 ``secret`` of ``consumer_key`` (the registration's own key: a platform may
    not claim another consumer's people)."""
    key = claim.get("oauth_consumer_key")
    sign = claim.get("oauth_consumer_key_sign")
    if not (consumer_key and secret and isinstance(key, str) and isinstance(sign, str)):
        return False
    if not hmac.compare_digest(key, consumer_key):
        return False
    expected = consumer_key_sign(
        oauth_consumer_key=key,
        deployment_id=deployment_id,
        issuer=str(body.get("iss", "")),
        client_id=client_id,
        exp=body.get("exp"),
        nonce=str(body.get("nonce", "")),
        secret=secret,
    )
    return hmac.compare_digest(expected.encode(), sign.encode())
