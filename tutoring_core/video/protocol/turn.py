"""TURN credentials in coturn's REST-API shared-secret scheme (``use-auth-secret``).

draft-uberti-behave-turn-rest-00 as coturn implements it: the username is
``"<expiry unix time>:<user id>"`` and the password is
``base64(HMAC-SHA1(static-auth-secret, username))``. coturn refuses the pair once the
expiry has passed, so a leaked credential is worth minutes, not months.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class TurnCredential:
    username: str
    credential: str
    expires_at: int  # unix seconds


def turn_credential(*, secret: str, person_id: str, now: int, ttl_seconds: int) -> TurnCredential:
    if not secret:
        raise ValueError("A TURN shared secret is needed.")
    if ":" in person_id:
        raise ValueError("The person id may not contain ':' (coturn splits the username on it).")
    expires = int(now) + int(ttl_seconds)
    username = f"{expires}:{person_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredential(username=username, credential=base64.b64encode(digest).decode(), expires_at=expires)


def ice_servers(
    *, stun_urls: list[str], turn_urls: list[str], credential: TurnCredential | None
) -> list[dict[str, object]]:
    """RTCConfiguration.iceServers for the browser."""
    servers: list[dict[str, object]] = []
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls and credential is not None:
        servers.append(
            {"urls": list(turn_urls), "username": credential.username, "credential": credential.credential}
        )
    return servers
