"""OIDC login and id_token validation, on pylti1p3 with the hub's storage and rules.

pylti1p3 drives the flow (registration lookup, state/nonce parameters, message
validators for resource-link and deep-linking messages, deep-link response JWTs).
We replace the parts that must work across processes and inside LMS iframes:

- state and nonce live in the shared cache (DB cache by default, Redis in
  production), not in the browser session; a launch spends its state (and with it
  the nonce) with ``cache.add``, so it is accepted once across every web process,
  and a second post of the same form is refused as used (state_used);
- the state is bound to the browser by a partitioned cookie, or by the platform's
  postMessage storage when the platform offers it (views.launch_storage);
- the platform JWKS is fetched through tutoring_core.http, cached, and refetched
  when an unknown kid appears, at most once per LTI_JWKS_REFETCH_SECONDS;
- the signature check pins RS256 and also verifies aud, azp, exp, iat and iss,
  which pylti1p3 leaves to the caller (it decodes with verify_aud off);
- the LTI 1.1 migration claim is kept only when its oauth_consumer_key_sign
  verifies with the registration's LTI 1.1 consumer key and shared secret
  (HubMessageLaunch._lti1p1_verified); otherwise it is dropped, not the launch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.urls import reverse
from pylti1p3.contrib.django.request import DjangoRequest
from pylti1p3.cookie import CookieService
from pylti1p3.deployment import Deployment as PyltiDeployment
from pylti1p3.exception import LtiException, OIDCException
from pylti1p3.message_launch import MessageLaunch
from pylti1p3.oidc_login import OIDCLogin
from pylti1p3.redirect import Redirect
from pylti1p3.registration import Registration
from pylti1p3.session import SessionService
from pylti1p3.tool_config import ToolConfAbstract

from lti_tool.keys import tool_key_current, tool_private_key
from lti_tool.models import Deployment, PlatformRegistration, ResourceLink
from lti_tool.protocol import claims as C
from lti_tool.protocol import migration
from lti_tool.protocol.errors import LaunchRejected
from lti_tool.selectors import launch_rows, registration_for_login
from tutoring_core.http import OutboundHTTPError
from tutoring_core.http import get as http_get

logger = logging.getLogger(__name__)

STATE_COOKIE_PREFIX = "lti1p3-"
STATE_USED_MESSAGE = "This launch was already used; start it again from the LMS."
ALLOWED_ALGORITHMS = ("RS256",)


def launch_url() -> str:
    return settings.PUBLIC_BASE_URL + reverse("lti_tool:launch")


def login_url() -> str:
    return settings.PUBLIC_BASE_URL + reverse("lti_tool:login")


# --- pylti1p3 adapters ----------------------------------------------------------


class HubRegistration(Registration):
    """pylti1p3's view of a PlatformRegistration, signing with the tool's current key."""

    def __init__(self, model: PlatformRegistration) -> None:
        self.model = model
        key = tool_key_current()
        self._kid = key.kid
        self.set_issuer(model.issuer).set_client_id(model.client_id)
        self.set_auth_login_url(model.auth_login_url).set_auth_token_url(model.auth_token_url)
        # A loaded key object (PyJWT signs with it as with a PEM) saves pylti1p3's
        # jwt.encode a ~30 ms PEM parse per deep-linking response.
        self.set_key_set_url(model.key_set_url).set_tool_private_key(tool_private_key(key))  # type: ignore[arg-type]
        if model.auth_audience:
            self.set_auth_audience(model.auth_audience)

    def get_kid(self) -> str:
        return self._kid


class HubToolConf(ToolConfAbstract[DjangoRequest]):
    """Registrations from the database. Every issuer may have many client ids."""

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_registration_by_issuer(self, iss: str, *args: Any, **kwargs: Any) -> Registration:
        raise NotImplementedError("Registrations are always found by issuer and client_id.")

    def find_registration_by_params(self, iss: str, client_id: str | None, *args: Any, **kwargs: Any) -> Any:
        registration = registration_for_login(issuer=iss, client_id=client_id)
        return HubRegistration(registration) if registration is not None else None

    def find_deployment(self, iss: str, deployment_id: str) -> PyltiDeployment | None:
        raise NotImplementedError

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str, *args: Any, **kwargs: Any
    ) -> PyltiDeployment | None:
        exists = Deployment.objects.filter(
            registration__issuer=iss,
            registration__client_id=client_id,
            deployment_id=deployment_id,
            status=Deployment.Status.ACTIVE,
        ).exists()
        return PyltiDeployment().set_deployment_id(deployment_id) if exists else None


class HubCookieService(CookieService):
    """Collects cookies for the response; set with SameSite=None; Secure; Partitioned
    where the browser can take them (https or loopback), so they survive in iframes."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.to_set: dict[str, tuple[str, int | None]] = {}

    def _key(self, name: str) -> str:
        return STATE_COOKIE_PREFIX + name

    def get_cookie(self, name: str) -> str | None:
        return self.request.COOKIES.get(self._key(name))

    def set_cookie(self, name: str, value: str | int, exp: int | None = 3600) -> None:
        self.to_set[self._key(name)] = (str(value), exp)

    def apply(self, response: Any) -> None:
        from lti_tool.middleware import frame_cookies_possible, mark_partitioned

        # The launch POST is a cross-site request from the platform, so the state
        # cookie must be SameSite=None (hence Secure) even outside an iframe.
        secure = frame_cookies_possible(self.request)
        for key, (value, exp) in self.to_set.items():
            response.set_cookie(
                key,
                value,
                max_age=exp,
                path="/",
                httponly=True,
                secure=secure,
                samesite="None" if secure else "Lax",
            )
            if secure and settings.LTI_PARTITIONED_COOKIES:
                mark_partitioned(response, key)


class CapturingSessionService(SessionService):
    """pylti1p3 hands us the nonce here; we keep it with the state in the cache."""

    def __init__(self, request: DjangoRequest) -> None:
        self.nonce: str | None = None

    def save_nonce(self, nonce: str) -> None:
        self.nonce = nonce

    def save_state_params(self, state: str, params: dict[str, object]) -> None:
        pass


class _NoRedirect(Redirect[str]):
    def __init__(self, location: str) -> None:
        self.location = location

    def do_redirect(self) -> str:
        return self.location

    def do_js_redirect(self) -> str:
        return self.location

    def set_redirect_url(self, location: str) -> None:
        self.location = location

    def get_redirect_url(self) -> str:
        return self.location


class HubOIDCLogin(OIDCLogin[DjangoRequest, HubToolConf, CapturingSessionService, HubCookieService, str]):
    def get_redirect(self, url: str) -> Redirect[str]:
        return _NoRedirect(url)

    def _generate_nonce(self) -> str:
        return secrets.token_urlsafe(32)

    def _get_uuid(self) -> str:
        return secrets.token_urlsafe(24)


# --- Login ------------------------------------------------------------------------


LOGIN_PARAMS = ("iss", "login_hint", "target_link_uri", "lti_message_hint", "lti_deployment_id", "client_id")


@dataclass(frozen=True)
class LoginResult:
    auth_url: str
    state: str
    nonce: str
    registration: PlatformRegistration
    cookies: HubCookieService
    storage_target: str
    platform_origin: str


def _state_key(state: str) -> str:
    return "lti:state:" + hashlib.sha256(state.encode()).hexdigest()


def login_start(request: HttpRequest) -> LoginResult:
    """Validate a third-party-initiated login and build the platform auth redirect."""
    params = request.GET if request.method == "GET" else request.POST
    for required in ("iss", "login_hint", "target_link_uri"):
        if not params.get(required):
            raise LaunchRejected(
                f"login_{required}_missing",
                f"The LMS started the login without {required}; check the tool's registration in the LMS.",
            )
    target = urlsplit(params["target_link_uri"])
    ours = urlsplit(settings.PUBLIC_BASE_URL)
    if (target.scheme, target.netloc) != (ours.scheme, ours.netloc):
        raise LaunchRejected(
            "login_target_foreign",
            "The launch points at another site (target_link_uri); the LMS registration must use this tool's URLs.",
        )
    django_request = DjangoRequest(request)
    cookies = HubCookieService(request)
    session = CapturingSessionService(django_request)
    login = HubOIDCLogin(django_request, HubToolConf(), session_service=session, cookie_service=cookies)
    try:
        auth_url = login.get_redirect_object(launch_url()).get_redirect_url()
    except OIDCException:
        raise LaunchRejected(
            "registration_unknown",
            f"No active registration for the platform {params.get('iss')!r}"
            + (f" with client_id {params.get('client_id')!r}" if params.get("client_id") else "")
            + ". An administrator can add it under LTI platform registrations.",
        ) from None
    registration: PlatformRegistration = login._registration.model  # type: ignore[attr-defined]
    state = next(iter(cookies.to_set)).removeprefix(STATE_COOKIE_PREFIX)
    assert session.nonce is not None
    record = {
        "nonce": session.nonce,
        "registration": str(registration.pk),
        "login": {name: params.get(name, "") for name in LOGIN_PARAMS},
        "created": time.time(),
    }
    cache.set(_state_key(state), record, settings.LTI_STATE_TTL_SECONDS)
    auth = urlsplit(registration.auth_login_url)
    return LoginResult(
        auth_url=auth_url,
        state=state,
        nonce=session.nonce,
        registration=registration,
        cookies=cookies,
        storage_target=params.get("lti_storage_target", ""),
        platform_origin=f"{auth.scheme}://{auth.netloc}",
    )


def _state_used_key(state: str) -> str:
    return "lti:state-used:" + hashlib.sha256(state.encode()).hexdigest()


def state_record(state: str) -> dict[str, Any] | None:
    return cache.get(_state_key(state)) if state else None


def state_lookup(state: str) -> tuple[dict[str, Any] | None, bool]:
    """The login's record for this state and whether a launch already used it, in
    one cache round trip (get_many: one SELECT on the database cache, MGET on Redis)."""
    found = cache.get_many([_state_key(state), _state_used_key(state)])
    return found.get(_state_key(state)), _state_used_key(state) in found


# --- Platform keys ----------------------------------------------------------------


def _jwks_key(registration: PlatformRegistration) -> str:
    return "lti:jwks:" + hashlib.sha256(registration.key_set_url.encode()).hexdigest()


def _jwks_fetch(registration: PlatformRegistration) -> dict[str, Any]:
    try:
        response = http_get(registration.key_set_url, headers={"Accept": "application/json"})
        data = response.json()
    except OutboundHTTPError as exc:
        logger.warning("JWKS fetch failed for %s: %s", registration.key_set_url, exc)
        raise LaunchRejected(
            "jwks_unreachable",
            "The platform's public keys could not be fetched; try again in a minute.",
            status=502,
        ) from None
    except ValueError:
        raise LaunchRejected(
            "jwks_malformed", "The platform's JWKS URL did not answer with JSON.", status=502
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise LaunchRejected("jwks_malformed", "The platform's JWKS has no keys list.", status=502)
    # Kept twice the TTL: past the TTL one process refreshes while the others go on
    # with the stale copy, so a busy minute never sends a burst of fetches.
    fetched = time.time()
    cache.set(
        _jwks_key(registration), {"jwks": data, "fetched": fetched}, 2 * settings.LTI_JWKS_CACHE_SECONDS
    )
    _local_keys[registration.key_set_url] = (fetched, data, {})
    return data


def _jwks_cached(registration: PlatformRegistration) -> dict[str, Any]:
    key = _jwks_key(registration)
    entry = cache.get(key)
    if entry is None:
        return _jwks_fetch(registration)
    if time.time() - entry["fetched"] >= settings.LTI_JWKS_CACHE_SECONDS and cache.add(
        key + ":refresh", 1, settings.LTI_JWKS_REFETCH_SECONDS or 1
    ):
        try:
            return _jwks_fetch(registration)
        except LaunchRejected:
            logger.warning(
                "JWKS refresh failed; using the copy from %.0fs ago", time.time() - entry["fetched"]
            )
    _local_keys[registration.key_set_url] = (entry["fetched"], entry["jwks"], {})
    return dict(entry["jwks"])


# Per process: the JWKS copy last read from the shared cache, with the key objects
# built from it, by JWKS URL: (fetched at, jwks, {kid: key}). Only ever a copy of
# what the shared cache holds, trusted until that copy's TTL runs out, so it never
# adds a fetch; it saves a cache round trip and a JWK parse on every launch.
_local_keys: dict[str, tuple[float, dict[str, Any], dict[str, Any]]] = {}


def platform_public_key(registration: PlatformRegistration, kid: str) -> Any:
    """The platform's key with this kid, from the cached JWKS (fetched once per TTL,
    by one process); an unknown kid (the platform rotated) refetches, at most once
    per LTI_JWKS_REFETCH_SECONDS."""
    local = _local_keys.get(registration.key_set_url)
    if local is not None and time.time() - local[0] < settings.LTI_JWKS_CACHE_SECONDS:
        key = local[2].get(kid)
        if key is None:
            key = _find_kid(local[1], kid)
            if key is not None:
                local[2][kid] = key
        if key is not None:
            return key
    jwks = _jwks_cached(registration)
    key = _find_kid(jwks, kid)
    if key is None:
        refetch_guard = _jwks_key(registration) + ":refetch"
        if cache.add(refetch_guard, 1, settings.LTI_JWKS_REFETCH_SECONDS or 1):
            jwks = _jwks_fetch(registration)
            key = _find_kid(jwks, kid)
    if key is None:
        raise LaunchRejected(
            "kid_unknown",
            "The launch was signed with a key the platform does not publish (unknown kid).",
        )
    return key


def _find_kid(jwks: dict[str, Any], kid: str) -> Any:
    for entry in jwks.get("keys", []):
        if isinstance(entry, dict) and entry.get("kid") == kid and entry.get("kty") == "RSA":
            try:
                return jwt.PyJWK(entry, algorithm="RS256").key
            except jwt.PyJWKError:
                return None
    return None


# --- Launch -------------------------------------------------------------------------


class HubMessageLaunch(MessageLaunch[DjangoRequest, HubToolConf, SessionService, HubCookieService]):
    """Validates one launch POST. Call ``validate_launch()``; read ``claims``."""

    def __init__(self, request: HttpRequest, *, storage_state: str | None = None) -> None:
        django_request = DjangoRequest(request, post_only=True)
        super().__init__(
            django_request,
            HubToolConf(),
            session_service=SessionService(django_request),
            cookie_service=HubCookieService(request),
        )
        self._storage_state = storage_state
        self.registration_model: PlatformRegistration | None = None
        self.deployment_model: Deployment | None = None
        self.link_model: ResourceLink | None = None
        # (deployment pk, resource_link_id) that link_model is the answer for.
        self.link_read_for: tuple[uuid.UUID, str] | None = None
        self.claims: C.LaunchClaims | None = None
        self.state_record: dict[str, Any] = {}

    def _get_request_param(self, key: str) -> str:
        return self._request.get_param(key)

    def validate_launch(self) -> C.LaunchClaims:
        # Order matters: nothing is consumed (nonce) before the signature holds.
        self._validated = True
        self.validate_state()
        self.validate_jwt_format()
        self.validate_registration_bound()
        self.validate_jwt_signature()
        self.claims = C.parse(self._jwt["body"], client_id=self.registration_model.client_id)  # type: ignore[arg-type,union-attr]
        self.claims = self._lti1p1_verified(self.claims)
        try:
            self.validate_message()
        except LtiException as exc:
            raise LaunchRejected("message_invalid", f"The launch message is incomplete: {exc}.") from None
        self.validate_nonce()
        return self.claims

    def _lti1p1_verified(self, claims: C.LaunchClaims) -> C.LaunchClaims:
        """The claims, without the LTI 1.1 migration claim unless it is proven.

        The lti1p1 claim links this person and context to the LTI 1.1 user_id and
        context_id of ``oauth_consumer_key``: taken on trust, any platform registered
        with the tenant could claim any 1.1 person's account. It is honoured only
        when the registration holds that consumer key and its LTI 1.1 shared secret,
        and the claim's ``oauth_consumer_key_sign`` (HMAC-SHA256 over
        ``oauth_consumer_key&deployment_id&iss&client_id&exp&nonce``, LTI 1.3
        migration guide) verifies with them. Otherwise the claim is dropped, not the
        launch: the person signs in under their LTI 1.3 identity, unlinked (an admin
        can merge), which is what a tool without the 1.1 secret can safely do.
        """
        if claims.lti1p1 is None:
            return claims
        registration = self.registration_model
        assert registration is not None
        if migration.consumer_key_sign_valid(
            claims.lti1p1,
            self._jwt["body"],
            client_id=registration.client_id,
            deployment_id=claims.deployment_id,
            consumer_key=registration.lti1p1_consumer_key,
            secret=registration.lti1p1_shared_secret,
        ):
            return claims
        logger.warning(
            "LTI 1.1 migration claim ignored for registration %s: %s",
            registration.pk,
            "no LTI 1.1 consumer key and secret configured"
            if not (registration.lti1p1_consumer_key and registration.lti1p1_shared_secret)
            else "oauth_consumer_key_sign does not verify (or names another consumer key)",
        )
        return dataclasses.replace(claims, lti1p1=None)

    def validate_state(self) -> HubMessageLaunch:
        state = self._get_request_param("state")
        if not state:
            raise LaunchRejected("state_missing", "The launch has no state; start it again from the LMS.")
        record, used = state_lookup(state)
        if used:
            # Checked before the cookie: without this, a used state whose cookie the
            # launch expired (or another browser) would get the new-window page.
            raise LaunchRejected("state_used", STATE_USED_MESSAGE)
        if record is None:
            raise LaunchRejected(
                "state_unknown",
                "This launch was not started here or has expired; start it again from the LMS.",
            )
        bound = self._cookie_service.get_cookie(state) == state or (
            self._storage_state is not None and secrets.compare_digest(self._storage_state, state)
        )
        if not bound:
            raise LaunchRejected(
                "state_unbound",
                "This browser did not start this launch (its cookie or platform storage is missing).",
                status=403,
            )
        self.state_record = record
        return self

    def validate_jwt_format(self) -> HubMessageLaunch:
        try:
            super().validate_jwt_format()
        except LtiException:
            raise LaunchRejected("not_a_jwt", "The id_token is not a JWT.") from None
        header = self._jwt.get("header")
        if not isinstance(header, dict) or not isinstance(self._jwt.get("body"), dict):
            raise LaunchRejected("not_a_jwt", "The id_token is not a JWT.")
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise LaunchRejected(
                "alg_refused", f"The id_token is signed with {header.get('alg')!r}; LTI 1.3 requires RS256."
            )
        if not header.get("kid"):
            raise LaunchRejected("kid_missing", "The id_token header has no kid.")
        return self

    def validate_registration_bound(self) -> None:
        # The (not yet verified) deployment_id is only a lookup key here: the row is
        # read with its registration in one query, and used after the signature
        # holds only if the verified claim names it (services.deployment_resolve).
        body = self._jwt["body"]
        deployment_id, link = body.get(C.DEPLOYMENT_ID), body.get(C.RESOURCE_LINK)
        link_id = str(link.get("id") or "") if isinstance(link, dict) else ""
        rows = launch_rows(
            registration_id=self.state_record["registration"],
            deployment_id=deployment_id.strip() if isinstance(deployment_id, str) else "",
            resource_link_id=link_id,
        )
        if rows.registration is None:
            raise LaunchRejected("registration_unknown", "The platform registration was removed or disabled.")
        self.deployment_model = rows.deployment
        self.link_model = rows.link
        self.link_read_for = (rows.deployment.pk, link_id) if rows.deployment is not None else None
        self.registration_model = rows.registration
        self._registration = HubRegistration(rows.registration)

    def validate_jwt_signature(self) -> HubMessageLaunch:
        registration = self.registration_model
        assert registration is not None
        key = platform_public_key(registration, self._jwt["header"]["kid"])
        try:
            body = jwt.decode(
                self._get_id_token(),
                key,
                algorithms=list(ALLOWED_ALGORITHMS),
                audience=registration.client_id,
                issuer=registration.issuer,
                leeway=settings.LTI_CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "nonce"]},
            )
        except jwt.ExpiredSignatureError:
            raise LaunchRejected(
                "token_expired", "The launch has expired (exp); start it again from the LMS."
            ) from None
        except jwt.ImmatureSignatureError:
            raise LaunchRejected(
                "token_iat_future", "The launch is dated in the future (iat); check the LMS clock."
            ) from None
        except jwt.InvalidAudienceError:
            raise LaunchRejected("aud_wrong", "The launch is addressed to another client_id (aud).") from None
        except jwt.InvalidIssuerError:
            raise LaunchRejected(
                "iss_wrong", "The launch comes from another issuer than the one that started it."
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise LaunchRejected(f"{exc.claim}_missing", f"The launch has no {exc.claim} claim.") from None
        except jwt.InvalidSignatureError:
            raise LaunchRejected("signature_invalid", "The launch signature does not verify.") from None
        except jwt.InvalidTokenError as exc:
            raise LaunchRejected("token_invalid", f"The launch token is invalid: {exc}.") from None
        aud = body["aud"]
        # LTI Security Framework 5.1.3 step 3: refuse a token that also names
        # "additional audiences not trusted by the Tool", azp or not.
        untrusted = sorted(
            str(extra)
            for extra in (aud if isinstance(aud, list) else [aud])
            if extra != registration.client_id and extra not in registration.trusted_audience_set
        )
        if untrusted:
            raise LaunchRejected(
                "aud_untrusted",
                f"The launch is also addressed to {', '.join(repr(a) for a in untrusted)}, an audience "
                "this tool does not trust. If the LMS adds it on purpose, list it under the "
                "registration's trusted audiences.",
            )
        if isinstance(aud, list) and len(aud) > 1 and body.get("azp") != registration.client_id:
            # OIDC Core 3.1.3.7: with several audiences, azp must name us.
            raise LaunchRejected("azp_wrong", "The launch has several audiences and azp is not this tool.")
        if "azp" in body and body["azp"] != registration.client_id:
            raise LaunchRejected("azp_wrong", "The launch's azp names another client.")
        if (
            not isinstance(body["iat"], int | float)
            or body["iat"] > time.time() + settings.LTI_CLOCK_SKEW_SECONDS
        ):
            raise LaunchRejected(
                "token_iat_future", "The launch is dated in the future (iat); check the LMS clock."
            )
        self._jwt["body"] = body  # type: ignore[typeddict-item]  # pylti1p3's TypedDict is narrower than a real token
        return self

    def validate_nonce(self) -> HubMessageLaunch:
        nonce = self._jwt["body"].get("nonce")
        if not nonce or not secrets.compare_digest(str(nonce), self.state_record["nonce"]):
            raise LaunchRejected("nonce_wrong", "The launch's nonce is not the one this login issued.")
        # The nonce is the state's own (its record holds it), so spending the state
        # spends the nonce. add() succeeds for exactly one caller across every
        # process sharing the cache: of two posts racing past validate_state, one
        # loses here. The marker outlives the state record, so a replay is named
        # as one (validate_state) rather than answered as unknown or cookieless.
        used_key = _state_used_key(self._get_request_param("state"))
        if not cache.add(used_key, 1, settings.LTI_STATE_TTL_SECONDS + settings.LTI_CLOCK_SKEW_SECONDS):
            raise LaunchRejected("nonce_replayed", STATE_USED_MESSAGE)
        return self
