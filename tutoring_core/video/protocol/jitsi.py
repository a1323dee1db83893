"""Jitsi Meet rooms with token authentication (prosody's ``token`` auth, "JWT tokens" in the
jitsi-meet docs): an HS256 JWT signed with the app secret, ``iss`` = the app id, ``aud`` the
audience the server accepts, ``sub`` the tenant/domain, ``room`` the one room it opens, ``exp``,
and ``context.user`` (id, name, email) with ``moderator`` for the tutor. ``context.features``
switches recording and live streaming off for everyone: the hub records only where it can show
that a recording runs and consent was given (issue 15 point 5), and Jitsi does not tell it.
"""

from __future__ import annotations

from urllib.parse import quote

import jwt


def room_token(
    *,
    app_id: str,
    secret: str,
    domain: str,
    room: str,
    user_id: str,
    name: str,
    email: str,
    moderator: bool,
    now: int,
    ttl_seconds: int,
    audience: str = "jitsi",
) -> str:
    if not app_id or not secret:
        raise ValueError("Jitsi needs an app id and an app secret.")
    claims = {
        "iss": app_id,
        "aud": audience,
        "sub": domain,
        "room": room,
        "nbf": now - 10,
        "exp": now + ttl_seconds,
        "moderator": moderator,
        "context": {
            "user": {
                "id": user_id,
                "name": name,
                "email": email,
                "moderator": "true" if moderator else "false",
            },
            "features": {"recording": "false", "livestreaming": "false"},
        },
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def join_url(*, base_url: str, room: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/{quote(room)}?jwt={token}"
