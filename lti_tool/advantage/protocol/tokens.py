"""The client-credentials grant with a signed JWT assertion (1EdTech Security
Framework 1.0 §4.1, RFC 7523)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from lti_tool.advantage.protocol.errors import ProtocolError
from lti_tool.advantage.protocol.media import CLIENT_ASSERTION_TYPE


def client_assertion(
    *,
    client_id: str,
    audience: str,
    private_key_pem: str,
    key_id: str,
    lifetime: int = 300,
    now: float | None = None,
) -> str:
    """A fresh RS256 JWT naming the tool (iss = sub = client_id) to the token endpoint.
    A new ``jti`` every time: platforms reject a replayed assertion."""
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, private_key_pem, algorithm="RS256", headers={"kid": key_id})


def token_request_form(*, assertion: str, scopes: list[str]) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
        "scope": " ".join(sorted(set(scopes))),
    }


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_in: int
    scope: str


def parse_token_response(data: Any) -> AccessToken:
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("access_token"), str)
        or not data["access_token"]
    ):
        raise ProtocolError("The token endpoint answered without an access_token.")
    token_type = str(data.get("token_type", "")).lower()
    if token_type != "bearer":  # noqa: S105 (a token type, not a secret)
        raise ProtocolError(f"The token endpoint answered token_type {data.get('token_type')!r}, not Bearer.")
    expires = data.get("expires_in", 3600)
    if isinstance(expires, bool) or not isinstance(expires, int | float) or expires <= 0:
        raise ProtocolError("The token endpoint answered a non-positive expires_in.")
    return AccessToken(
        value=data["access_token"], expires_in=int(expires), scope=str(data.get("scope") or "")
    )
