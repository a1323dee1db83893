"""OpenID Connect relying party: discovery, authorization URL (PKCE, state,
nonce), code exchange and ID token validation.

authlib supplies the OAuth 2.0 pieces (token generation, PKCE S256, grant URI)
and joserfc (authlib's JOSE library; ``authlib.jose`` is deprecated in favour of
it) verifies JWTs. All HTTP goes through ``tutoring_core.http``, so discovery,
JWKS and token calls get its timeouts and SSRF guard.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from django.utils import timezone
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    DecodeError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from sso.models import IdentityProvider
from sso.protocol.errors import SignInRejected
from tutoring_core import http

DISCOVERY_TTL = dt.timedelta(hours=24)
JWKS_TTL = dt.timedelta(hours=1)
# A kid we do not know triggers one JWKS refetch, but not more often than this:
# otherwise a stream of forged tokens would make us hammer the IdP.
JWKS_MIN_REFRESH = dt.timedelta(seconds=60)


def _get_json(url: str, what: str) -> dict[str, Any]:
    try:
        body = http.get(url).json()
    except http.OutboundHTTPError as exc:
        raise SignInRejected("idp-unreachable", f"Could not fetch the {what} from {url}: {exc}") from None
    except ValueError:
        raise SignInRejected("idp-bad-document", f"The {what} at {url} is not JSON.") from None
    if not isinstance(body, dict):
        raise SignInRejected("idp-bad-document", f"The {what} at {url} is not a JSON object.")
    return body


def discover(idp: IdentityProvider, *, force: bool = False) -> dict[str, Any]:
    fresh = idp.discovery_fetched_at and timezone.now() - idp.discovery_fetched_at < DISCOVERY_TTL
    if idp.discovery and fresh and not force:
        return dict(idp.discovery)
    url = idp.issuer.rstrip("/") + "/.well-known/openid-configuration"
    doc = _get_json(url, "OpenID configuration")
    # OIDC Discovery 1.0 §4.3: the issuer in the document must equal the one we asked.
    if doc.get("issuer") != idp.issuer.rstrip("/") and doc.get("issuer") != idp.issuer:
        raise SignInRejected(
            "issuer-mismatch",
            f"The discovery document names issuer {doc.get('issuer')!r}, not the configured {idp.issuer!r}.",
        )
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not doc.get(key):
            raise SignInRejected("idp-bad-document", f"The OpenID configuration has no {key}.")
    idp.discovery = doc
    idp.discovery_fetched_at = timezone.now()
    idp.save(update_fields=["discovery", "discovery_fetched_at", "updated_at"])
    return doc


def _import_keys(jwks: dict[str, Any]) -> KeySet:
    try:
        return KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise SignInRejected(
            "idp-bad-document", f"The provider's JSON Web Key Set cannot be used: {exc}"
        ) from None


def key_set(idp: IdentityProvider, *, force: bool = False) -> KeySet:
    now = timezone.now()
    fresh = idp.jwks_fetched_at and now - idp.jwks_fetched_at < JWKS_TTL
    recently = idp.jwks_fetched_at and now - idp.jwks_fetched_at < JWKS_MIN_REFRESH
    if idp.jwks and ((fresh and not force) or (force and recently)):
        return _import_keys(idp.jwks)
    doc = discover(idp)
    jwks = _get_json(doc["jwks_uri"], "JSON Web Key Set")
    keys = _import_keys(jwks)  # a broken set is not cached
    idp.jwks = jwks
    idp.jwks_fetched_at = now
    idp.save(update_fields=["jwks", "jwks_fetched_at", "updated_at"])
    return keys


@dataclass(frozen=True)
class AuthorizationStart:
    url: str
    state: str
    nonce: str
    code_verifier: str


def authorization_start(idp: IdentityProvider, *, redirect_uri: str) -> AuthorizationStart:
    doc = discover(idp)
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    url = prepare_grant_uri(
        doc["authorization_endpoint"],
        client_id=idp.client_id,
        response_type="code",
        redirect_uri=redirect_uri,
        scope=idp.scopes or "openid",
        state=state,
        nonce=nonce,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    return AuthorizationStart(url=url, state=state, nonce=nonce, code_verifier=verifier)


def authorization_response_issuer_check(idp: IdentityProvider, iss: str | None) -> None:
    """RFC 9207 §2.4: when the authorization response (or error response) carries
    ``iss``, it must equal this provider's issuer identifier (simple string
    comparison) before anything else in the response is used, so a response from
    another provider (a mix-up attack) never has its code sent to this one.
    Without ``iss`` the response is handled as before."""
    if iss is None:
        return
    expected = discover(idp)["issuer"]
    if iss != expected:
        raise SignInRejected(
            "iss-mismatch",
            f"The sign-in response comes from {iss!r}, not from {idp.name} ({expected!r}); start again.",
        )


def exchange_code(
    idp: IdentityProvider, *, code: str, redirect_uri: str, code_verifier: str
) -> dict[str, Any]:
    doc = discover(idp)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    auth: tuple[str, str] | None = None
    if "client_secret_basic" in methods:
        auth = (idp.client_id, idp.client_secret)
    else:
        data |= {"client_id": idp.client_id, "client_secret": idp.client_secret}
    try:
        response = http.post(
            doc["token_endpoint"], data=data, auth=auth, headers={"Accept": "application/json"}
        )
        tokens = response.json()
    except http.OutboundHTTPError as exc:
        raise SignInRejected(
            "token-exchange", f"The provider refused the authorization code: {exc}"
        ) from None
    except ValueError:
        raise SignInRejected("token-exchange", "The token endpoint did not answer JSON.") from None
    if not isinstance(tokens, dict) or not tokens.get("id_token"):
        raise SignInRejected("token-exchange", "The token response has no id_token.")
    return tokens


def validate_id_token(idp: IdentityProvider, *, id_token: str, nonce: str) -> dict[str, Any]:
    """Verify signature (pinned algorithms), iss, aud, azp, exp, iat and nonce."""
    try:
        header = jws.extract_compact(id_token.encode()).protected
    except (DecodeError, JoseError, ValueError):
        raise SignInRejected("id-token-malformed", "The ID token is not a compact JWS.") from None
    alg = str(header.get("alg", ""))
    if alg not in idp.algorithms:
        raise SignInRejected(
            "id-token-algorithm",
            f"The ID token is signed with {alg!r}, which this provider is not allowed to use "
            f"(allowed: {', '.join(idp.algorithms)}).",
        )
    keys = key_set(idp)
    kid = header.get("kid")
    if kid and not any(k.kid == kid for k in keys.keys):
        keys = key_set(idp, force=True)  # the IdP may have rotated its keys
    try:
        token = jwt.decode(id_token, keys, algorithms=idp.algorithms)
    except BadSignatureError:
        raise SignInRejected("id-token-signature", "The ID token's signature does not verify.") from None
    except (JoseError, ValueError) as exc:
        raise SignInRejected("id-token-signature", f"The ID token could not be verified: {exc}") from None
    claims = dict(token.claims)
    issuer = discover(idp)["issuer"]
    registry = jwt.JWTClaimsRegistry(
        leeway=idp.clock_skew_seconds,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": idp.client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise SignInRejected("id-token-expired", "The ID token has expired.") from None
    except MissingClaimError as exc:
        raise SignInRejected("id-token-claims", f"The ID token lacks a required claim: {exc}") from None
    except InvalidClaimError as exc:
        name = getattr(exc, "claim", "")
        shown = json.dumps(claims.get(name)) if name else ""
        raise SignInRejected(
            f"id-token-{name or 'claim'}", f"The ID token's {name!r} claim is wrong (got {shown})."
        ) from None
    except JoseError as exc:
        raise SignInRejected("id-token-claims", f"The ID token's claims are invalid: {exc}") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    # OIDC Core §3.1.3.7: with several audiences, azp must be present and be us.
    if len(audiences) > 1 and claims.get("azp") != idp.client_id:
        raise SignInRejected(
            "id-token-azp", "The ID token has several audiences and its azp is not this client."
        )
    return claims


def userinfo(idp: IdentityProvider, *, access_token: str, subject: str) -> dict[str, Any]:
    endpoint = discover(idp).get("userinfo_endpoint")
    if not endpoint:
        return {}
    try:
        info = http.get(endpoint, headers={"Authorization": f"Bearer {access_token}"}).json()
    except (http.OutboundHTTPError, ValueError) as exc:
        raise SignInRejected("userinfo", f"Could not read the userinfo endpoint: {exc}") from None
    # OIDC Core §5.3.2: a userinfo answer for another subject must not be used.
    if not isinstance(info, dict) or info.get("sub") != subject:
        raise SignInRejected("userinfo", "The userinfo answer is for another subject.")
    return info
