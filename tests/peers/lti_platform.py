"""A loopback LTI 1.3 platform (an LMS) built on ``lti1p3platform`` 0.1.8.

The id_tokens, the deep-linking response validation and the client-credentials
token check are the library's; this module serves them over real HTTP on
127.0.0.1 (a free port) and adds what a real LMS also checks.

API
---
::

    platform = LtiPlatform(tool_launch_url=..., tool_login_url=...)
    platform.start()                   # or: with LtiPlatform(...) as platform:
    platform.issuer, platform.client_id, platform.deployment_id
    platform.auth_url, platform.token_url, platform.jwks_url, platform.deep_link_return_url
    platform.base_url                  # http://127.0.0.1:<port>
    platform.private_key_pem / .kid    # the current signing key
    platform.rotate_key()              # new signing key; the old one stays in the JWKS
    platform.drop_old_keys()           # JWKS publishes only the current key
    platform.jwks_requests             # how many times the JWKS was fetched
    platform.set_tool_jwks(jwks) / platform.tool_jwks_url = url   # the tool's public keys

    spec = platform.launch(sub="t1", roles=[...], context_id="c1", ...)   # a LaunchSpec
    params = platform.login_params(spec)     # what the LMS sends to the tool's login URL
    # the tool redirects the browser to platform.auth_url?...; GET it and the
    # platform answers with an auto-posting form carrying id_token and state:
    form = LtiPlatform.parse_form(html)      # -> (action, {field: value})

    platform.openid_configuration_url       # LTI Dynamic Registration: the platform side
    platform.registration_token / .registration_requests
    platform.deep_link_responses            # content_items lists the platform accepted
    platform.deep_link_errors               # why a deep-linking response was refused
    platform.add_route("POST", "/path", handler)  # handler(PlatformRequest) -> PlatformResponse
    LtiPlatform(..., port=N, spec_resolver=fn)  # fixed port; specs made on demand (load tests)
    platform.stop()

``LaunchSpec`` fields choose the claims (user, names, email, roles, context,
resource link, custom, lis, lti1p1, AGS, NRPS, deep linking, extra claims);
``mutate`` edits the signed payload and ``signing`` chooses how it is signed
(``platform``, ``no_kid``, ``unknown_kid``, ``none``, ``hs256_public``,
``foreign_key``), for the 1EdTech certification's bad payloads. ``header``
adds header fields.

``/course?launch=<hint>`` is an LMS course page that frames the tool's login
(for browser tests); with ``spec.storage`` it answers the 1EdTech postMessage
storage messages (``lti.put_data`` / ``lti.get_data``) as ``_parent``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
import typing as t
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lti1p3platform.exceptions import LtiException
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.registration import Registration

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
ROLE_INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
ROLE_LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
ROLE_TA = "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"
ROLE_MENTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor"
ROLE_INST_STUDENT = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student"
ROLE_INST_FACULTY = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Faculty"


def _pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class LaunchSpec:
    """One launch the platform will answer for (found by ``lti_message_hint``)."""

    sub: str | None = "user-1"
    roles: list[str] | None = field(default_factory=lambda: [ROLE_LEARNER])
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    context_id: str | None = "course-1"
    context_title: str | None = "Algebra I"
    context_label: str | None = "ALG1"
    resource_link_id: str | None = "link-1"
    resource_link_title: str | None = "Tutoring"
    custom: dict[str, t.Any] | None = None
    lis: dict[str, str] | None = None
    lti1p1: dict[str, str] | None = None
    # The LTI 1.1 shared secret: with it the platform adds oauth_consumer_key_sign to
    # the lti1p1 claim (HMAC-SHA256, LTI 1.3 migration guide), as a migrating LMS does.
    lti1p1_secret: str | None = None
    ags_lineitems: str | None = None
    ags_lineitem: str | None = None
    nrps_url: str | None = None
    deep_linking: bool = False
    accept_multiple: bool = True
    deployment_id: str | None = None
    extra_claims: dict[str, t.Any] = field(default_factory=dict)
    mutate: Callable[[dict[str, t.Any]], None] | None = None
    header: dict[str, t.Any] = field(default_factory=dict)
    signing: str = "platform"
    storage: bool = False
    hint: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    login_hint: str = field(default_factory=lambda: secrets.token_urlsafe(12))


@dataclass
class PlatformRequest:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class PlatformResponse:
    status: int = 200
    body: str | bytes = ""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class _FastRegistration(Registration):
    """lti1p3platform's Registration, signing with an already-loaded key: the library
    re-parses the PEM twice per id_token (~60 ms each, RSA key validation)."""

    def __init__(self, signing: tuple[t.Any, str]) -> None:
        self._key_obj, self._kid_value = signing

    def get_kid(self) -> str:
        return self._kid_value

    def platform_encode_and_sign(self, payload: dict[str, t.Any], expiration: int | None = None) -> str:
        if expiration:
            now = int(time.time())
            payload.update({"iat": now, "exp": now + expiration})
        return jwt.encode(payload, self._key_obj, algorithm="RS256", headers={"kid": self._kid_value})


class _PlatformConf(LTI1P3PlatformConfAbstract):
    def init_platform_config(self, **kwargs: t.Any) -> None:
        self._registration = kwargs["registration"]

    def get_registration_by_params(self, **kwargs: t.Any) -> Registration:
        return self._registration  # type: ignore[return-value]


class _Launch(LTIAdvantageMessageLaunchAbstract):
    """lti1p3platform's launch builder; the preflight is the tool's auth request."""

    def __init__(self, preflight: dict[str, str], conf: _PlatformConf) -> None:
        super().__init__(None, conf)  # type: ignore[arg-type]
        self._preflight = preflight

    def get_preflight_response(self) -> dict[str, t.Any]:
        return self._preflight

    def render_launch_form(self, launch_data: dict[str, t.Any], **kwargs: t.Any) -> dict[str, t.Any]:
        return launch_data


class LtiPlatform:
    def __init__(
        self,
        *,
        tool_launch_url: str,
        tool_login_url: str = "",
        client_id: str = "hub-tool-client",
        deployment_id: str = "deployment-1",
        issuer: str | None = None,
        port: int = 0,
        spec_resolver: Callable[[str, str], LaunchSpec | None] | None = None,
    ) -> None:
        self.port = port
        # For load tests in another process: build a spec from (lti_message_hint,
        # login_hint) when the hint was not registered with launch().
        self.spec_resolver = spec_resolver
        self.client_id = client_id
        self.deployment_id = deployment_id
        self.tool_launch_url = tool_launch_url
        self.tool_login_url = tool_login_url
        self._issuer = issuer
        self._keys: list[tuple[str, str]] = [_pem_pair()]
        self._loaded: dict[str, tuple[t.Any, str]] = {}
        self._specs: dict[str, LaunchSpec] = {}
        self._routes: dict[tuple[str, str], Callable[[PlatformRequest], PlatformResponse]] = {}
        self._tool_jwks: dict[str, t.Any] | None = None
        self.tool_jwks_url: str | None = None
        self.jwks_requests = 0
        self.auth_requests: list[dict[str, str]] = []
        self.deep_link_responses: list[list[dict[str, t.Any]]] = []
        self.deep_link_claims: list[dict[str, t.Any]] = []
        self.deep_link_errors: list[str] = []
        self.tokens_issued: list[dict[str, t.Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.add_route("GET", "/auth", self._auth)
        self.add_route("POST", "/auth", self._auth)
        self.add_route("GET", "/jwks", self._jwks)
        self.add_route("POST", "/token", self._token)
        self.add_route("POST", "/deep-link-return", self._deep_link_return)
        self.add_route("GET", "/course", self._course)
        self.add_route("GET", "/.well-known/openid-configuration", self._openid_configuration)
        self.add_route("POST", "/register", self._register)
        # LTI Dynamic Registration: the bearer token the platform expects, what it
        # received, and the deployment id it hands out.
        self.registration_token = secrets.token_urlsafe(16)
        self.registration_requests: list[dict[str, t.Any]] = []
        self.product_family_code = "loopback-lms"
        self.authorization_server: str | None = None

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> LtiPlatform:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: t.Any) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                form: dict[str, str] = {}
                if "application/x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
                    form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
                request = PlatformRequest(
                    method=self.command,
                    path=parts.path,
                    query={k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                    form=form,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                handler = platform._routes.get((self.command, parts.path))
                if handler is None:
                    response = PlatformResponse(404, "not found", "text/plain")
                else:
                    try:
                        response = handler(request)
                    except Exception as exc:  # the peer reports, the test decides
                        response = PlatformResponse(500, f"platform error: {exc!r}", "text/plain")
                payload = response.body.encode() if isinstance(response.body, str) else response.body
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _handle
            do_POST = _handle
            do_PUT = _handle
            do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LtiPlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_route(
        self, method: str, path: str, handler: Callable[[PlatformRequest], PlatformResponse]
    ) -> None:
        self._routes[(method.upper(), path)] = handler

    # --- addresses ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the platform first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def issuer(self) -> str:
        return self._issuer or self.base_url

    @property
    def auth_url(self) -> str:
        return self.base_url + "/auth"

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"

    @property
    def jwks_url(self) -> str:
        return self.base_url + "/jwks"

    @property
    def deep_link_return_url(self) -> str:
        return self.base_url + "/deep-link-return"

    # --- keys ---------------------------------------------------------------------------

    @property
    def private_key_pem(self) -> str:
        return self._keys[-1][0]

    @property
    def public_key_pem(self) -> str:
        return self._keys[-1][1]

    @property
    def kid(self) -> str:
        return str(Registration.get_jwk(self.public_key_pem)["kid"])

    def _signing_key(self) -> tuple[t.Any, str]:
        pem = self.private_key_pem
        cached = self._loaded.get(pem)
        if cached is None:
            cached = (serialization.load_pem_private_key(pem.encode(), None), self.kid)
            self._loaded[pem] = cached
        return cached

    def rotate_key(self) -> str:
        with self._lock:
            self._keys.append(_pem_pair())
        return self.kid

    def drop_old_keys(self) -> None:
        with self._lock:
            self._keys = self._keys[-1:]

    def jwks(self) -> dict[str, t.Any]:
        return {"keys": [Registration.get_jwk(public) for _private, public in self._keys]}

    def set_tool_jwks(self, jwks: dict[str, t.Any]) -> None:
        self._tool_jwks = jwks

    def _registration(self) -> Registration:
        registration = (
            _FastRegistration(self._signing_key())
            .set_iss(self.issuer)
            .set_client_id(self.client_id)
            .set_deployment_id(self.deployment_id)
            .set_launch_url(self.tool_launch_url)
            .set_deeplink_launch_url(self.tool_launch_url)
            .set_oidc_login_url(self.tool_login_url or self.tool_launch_url)
            .set_platform_private_key(self.private_key_pem)
            .set_platform_public_key(self.public_key_pem)
        )
        if self._tool_jwks is not None:
            registration.set_tool_key_set(self._tool_jwks)  # type: ignore[arg-type]
        elif self.tool_jwks_url:
            registration.set_tool_key_set_url(self.tool_jwks_url)
        return registration

    def _conf(self) -> _PlatformConf:
        conf = _PlatformConf(registration=self._registration())
        conf.get_registration()
        return conf

    # --- launches -----------------------------------------------------------------------

    def launch(self, **kwargs: t.Any) -> LaunchSpec:
        spec = LaunchSpec(**kwargs)
        with self._lock:
            self._specs[spec.hint] = spec
        return spec

    def login_params(self, spec: LaunchSpec, *, target_link_uri: str | None = None) -> dict[str, str]:
        params = {
            "iss": self.issuer,
            "login_hint": spec.login_hint,
            "target_link_uri": target_link_uri or self.tool_launch_url,
            "lti_message_hint": spec.hint,
            "client_id": self.client_id,
            "lti_deployment_id": spec.deployment_id or self.deployment_id,
        }
        if spec.storage:
            params["lti_storage_target"] = "_parent"
        return params

    def build_id_token(self, spec: LaunchSpec, *, nonce: str, state: str = "state") -> str:
        """Sign an id_token for ``spec`` as the auth endpoint would (tests that skip the
        HTTP round trip use this, e.g. with a nonce they took from a real login)."""
        conf = self._conf()
        launch = _Launch(
            {
                "nonce": nonce,
                "state": state,
                "redirect_uri": self.tool_launch_url,
                "client_id": self.client_id,
            },
            conf,
        )
        launch._registration = conf.get_registration()
        if spec.sub is not None or spec.roles is not None:
            launch.set_user_data(
                spec.sub or "", spec.roles or [], full_name=spec.name, email_address=spec.email
            )
        if spec.resource_link_id:
            launch.set_resource_link_claim(spec.resource_link_id, title=spec.resource_link_title)
        if spec.context_id:
            launch.set_launch_context_claim(
                spec.context_id,
                context_types=["http://purl.imsglobal.org/vocab/lis/v2/course#CourseSection"],
                context_title=spec.context_title,
                context_label=spec.context_label,
            )
        if spec.custom:
            launch.set_custom_parameters_claim(spec.custom)
        if spec.ags_lineitems:
            launch.set_ags(spec.ags_lineitems, spec.ags_lineitem)
        if spec.nrps_url:
            launch.set_nrps(spec.nrps_url)
        if spec.deep_linking:
            launch.set_dl(self.deep_link_return_url, title="Add tutoring", accept_types={"ltiResourceLink"})
            if not spec.accept_multiple:
                claim = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
                launch._deep_linking_launch_data[claim]["accept_multiple"] = False  # type: ignore[index]
        extra: dict[str, t.Any] = dict(spec.extra_claims)
        if spec.given_name:
            extra["given_name"] = spec.given_name
        if spec.family_name:
            extra["family_name"] = spec.family_name
        if spec.lis:
            extra[LTI + "lis"] = spec.lis
        if spec.lti1p1:
            extra[LTI + "lti1p1"] = spec.lti1p1
        extra[LTI + "tool_platform"] = {"guid": "loopback-platform", "name": "Loopback LMS"}
        launch.set_extra_claims(extra)
        token = launch.generate_launch_request()["id_token"]
        if spec.deployment_id:
            spec.extra_claims.setdefault(LTI + "deployment_id", spec.deployment_id)
        if (
            spec.sub is None
            or spec.roles is None
            or spec.mutate
            or spec.extra_claims
            or spec.signing != "platform"
            or spec.header
            or spec.lti1p1_secret
        ):
            payload = jwt.decode(token, options={"verify_signature": False})
            payload.update(spec.extra_claims)
            if spec.lti1p1 and spec.lti1p1_secret:
                base = "&".join(
                    str(part)
                    for part in (
                        spec.lti1p1["oauth_consumer_key"],
                        payload[LTI + "deployment_id"],
                        payload["iss"],
                        self.client_id,
                        payload["exp"],
                        payload["nonce"],
                    )
                )
                mac = hmac.new(spec.lti1p1_secret.encode(), base.encode(), hashlib.sha256).digest()
                payload[LTI + "lti1p1"] = {
                    **payload[LTI + "lti1p1"],
                    "oauth_consumer_key_sign": base64.b64encode(mac).decode(),
                }
            if spec.sub is None:
                payload.pop("sub", None)
            if spec.roles is None:
                payload.pop(LTI + "roles", None)
            if spec.mutate:
                spec.mutate(payload)
            token = self.sign(payload, signing=spec.signing, header=spec.header)
        return token

    def sign(
        self, payload: dict[str, t.Any], *, signing: str = "platform", header: dict[str, t.Any] | None = None
    ) -> str:
        extra = dict(header or {})
        if signing == "platform":
            return jwt.encode(
                payload, self.private_key_pem, algorithm="RS256", headers={"kid": self.kid, **extra}
            )
        if signing == "no_kid":
            return jwt.encode(payload, self.private_key_pem, algorithm="RS256", headers=extra or None)
        if signing == "unknown_kid":
            return jwt.encode(
                payload, self.private_key_pem, algorithm="RS256", headers={"kid": "no-such-kid", **extra}
            )
        if signing == "foreign_key":
            other, _public = _pem_pair()
            return jwt.encode(payload, other, algorithm="RS256", headers={"kid": self.kid, **extra})
        if signing == "none":
            head = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": self.kid, **extra}).encode())
            return f"{head}.{_b64(json.dumps(payload).encode())}."
        if signing == "hs256_public":
            # The classic key-confusion attack: HMAC keyed with the public key PEM.
            head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.kid, **extra}).encode())
            body = _b64(json.dumps(payload).encode())
            mac = hmac.new(self.public_key_pem.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
            return f"{head}.{body}.{_b64(mac)}"
        raise ValueError(f"unknown signing mode {signing!r}")

    @staticmethod
    def parse_form(page: str) -> tuple[str, dict[str, str]]:
        """(action, fields) of the first form in an auto-posting page."""
        action = re.search(r'<form[^>]*action="([^"]*)"', page)
        assert action, "no form in page"
        fields = {
            html.unescape(m.group(1)): html.unescape(m.group(2))
            for m in re.finditer(r'<input[^>]*name="([^"]*)"[^>]*value="([^"]*)"', page)
        }
        return html.unescape(action.group(1)), fields

    # --- endpoints ------------------------------------------------------------------------

    def _auth(self, request: PlatformRequest) -> PlatformResponse:
        params = {**request.query, **request.form}
        self.auth_requests.append(params)
        checks = {
            "scope": "openid",
            "response_type": "id_token",
            "response_mode": "form_post",
            "prompt": "none",
            "client_id": self.client_id,
            "redirect_uri": self.tool_launch_url,
        }
        for name, expected in checks.items():
            if params.get(name) != expected:
                return PlatformResponse(400, f"invalid_request: {name} must be {expected!r}", "text/plain")
        for name in ("state", "nonce", "login_hint", "lti_message_hint"):
            if not params.get(name):
                return PlatformResponse(400, f"invalid_request: {name} missing", "text/plain")
        spec = self._specs.get(params["lti_message_hint"])
        if spec is None and self.spec_resolver is not None:
            spec = self.spec_resolver(params["lti_message_hint"], params["login_hint"])
        if spec is None or spec.login_hint != params["login_hint"]:
            return PlatformResponse(400, "invalid_request: unknown lti_message_hint/login_hint", "text/plain")
        id_token = self.build_id_token(spec, nonce=params["nonce"], state=params["state"])
        fields = {"id_token": id_token, "state": params["state"]}
        if spec.storage:
            fields["lti_storage_target"] = "_parent"
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in fields.items()
        )
        page = (
            f'<!doctype html><html><body><form id="f" method="post" action="{html.escape(self.tool_launch_url)}">'
            f"{inputs}</form><script>document.getElementById('f').submit();</script></body></html>"
        )
        return PlatformResponse(200, page)

    def _jwks(self, request: PlatformRequest) -> PlatformResponse:
        with self._lock:
            self.jwks_requests += 1
        return PlatformResponse(200, json.dumps(self.jwks()), "application/json")

    def _token(self, request: PlatformRequest) -> PlatformResponse:
        """Client credentials with a signed JWT assertion (1EdTech Security Framework §4.1)."""
        conf = self._conf()
        try:
            token = conf.get_access_token(dict(request.form))
        except (LtiException, jwt.InvalidTokenError, AssertionError) as exc:
            return PlatformResponse(
                400, json.dumps({"error": "invalid_client", "detail": str(exc)}), "application/json"
            )
        claims = jwt.decode(request.form["client_assertion"], options={"verify_signature": False})
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        # The library leaves these to the platform; a real one checks them.
        if (
            self.token_url not in audiences
            or claims.get("iss") != self.client_id
            or claims.get("sub") != self.client_id
        ):
            return PlatformResponse(
                400, json.dumps({"error": "invalid_client", "detail": "aud/iss/sub"}), "application/json"
            )
        self.tokens_issued.append(dict(token))
        return PlatformResponse(200, json.dumps(token), "application/json")

    def _deep_link_return(self, request: PlatformRequest) -> PlatformResponse:
        conf = self._conf()
        try:
            items = conf.validate_deeplinking_resp({"JWT": request.form.get("JWT", "")})
            claims = jwt.decode(request.form["JWT"], options={"verify_signature": False})
            aud = claims.get("aud")
            audiences = aud if isinstance(aud, list) else [aud]
            if self.issuer not in audiences:
                raise LtiException("deep-linking response not addressed to this platform")
            if claims.get("iss") != self.client_id:
                raise LtiException("deep-linking response not from the registered client")
            if claims.get(LTI + "deployment_id") != self.deployment_id:
                raise LtiException("deep-linking response names another deployment")
        except (LtiException, jwt.InvalidTokenError, KeyError, AssertionError) as exc:
            self.deep_link_errors.append(str(exc) or type(exc).__name__)
            return PlatformResponse(400, f"deep linking response refused: {exc!r}", "text/plain")
        self.deep_link_responses.append(items)
        self.deep_link_claims.append(claims)
        return PlatformResponse(200, f"<p id='placed'>Placed {len(items)} item(s)</p>")

    @property
    def openid_configuration_url(self) -> str:
        return self.base_url + "/.well-known/openid-configuration"

    def _openid_configuration(self, request: PlatformRequest) -> PlatformResponse:
        config = {
            "issuer": self.issuer,
            "authorization_endpoint": self.auth_url,
            "token_endpoint": self.token_url,
            "jwks_uri": self.jwks_url,
            "registration_endpoint": self.base_url + "/register",
            "scopes_supported": ["openid", "https://purl.imsglobal.org/spec/lti-ags/scope/score"],
            "response_types_supported": ["id_token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "iss", "name", "given_name", "family_name", "email"],
            "https://purl.imsglobal.org/spec/lti-platform-configuration": {
                "product_family_code": self.product_family_code,
                "version": "1.0",
                "messages_supported": [{"type": "LtiResourceLinkRequest"}, {"type": "LtiDeepLinkingRequest"}],
            },
        }
        if self.authorization_server:
            config["authorization_server"] = self.authorization_server
        return PlatformResponse(200, json.dumps(config), "application/json")

    def _register(self, request: PlatformRequest) -> PlatformResponse:
        """LTI DR §3.5: the tool posts its configuration with the registration token."""
        if request.headers.get("authorization") != f"Bearer {self.registration_token}":
            return PlatformResponse(401, json.dumps({"error": "invalid_token"}), "application/json")
        body = json.loads(request.body or b"{}")
        tool = body.get("https://purl.imsglobal.org/spec/lti-tool-configuration")
        required = ("initiate_login_uri", "redirect_uris", "jwks_uri", "client_name")
        if not isinstance(tool, dict) or any(not body.get(name) for name in required):
            return PlatformResponse(400, json.dumps({"error": "invalid_client_metadata"}), "application/json")
        self.registration_requests.append(body)
        # The platform now knows the tool's login and launch URLs.
        self.tool_login_url = body["initiate_login_uri"]
        self.tool_launch_url = body["redirect_uris"][0]
        answer = {
            **body,
            "client_id": self.client_id,
            "https://purl.imsglobal.org/spec/lti-tool-configuration": {
                **tool,
                "deployment_id": self.deployment_id,
            },
        }
        return PlatformResponse(200, json.dumps(answer), "application/json")

    def _course(self, request: PlatformRequest) -> PlatformResponse:
        """An LMS course page framing the tool (login by form post into the iframe)."""
        spec = self._specs.get(request.query.get("launch", ""))
        if spec is None:
            return PlatformResponse(404, "no such launch", "text/plain")
        params = self.login_params(spec)
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
        )
        tool_origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.tool_launch_url))
        page = f"""<!doctype html><html><body><h1>Loopback LMS course</h1>
<form id="login" method="post" target="tool" action="{html.escape(self.tool_login_url)}">{inputs}</form>
<iframe name="tool" id="tool" style="width:900px;height:600px"></iframe>
<script>
const store = {{}};
window.addEventListener("message", function (event) {{
  if (event.origin !== {json.dumps(tool_origin)}) return;
  const m = event.data || {{}};
  if (m.subject === "lti.put_data") {{
    store[m.key] = m.value;
    event.source.postMessage({{subject: "lti.put_data.response", message_id: m.message_id, key: m.key, value: m.value}}, event.origin);
  }} else if (m.subject === "lti.get_data") {{
    event.source.postMessage({{subject: "lti.get_data.response", message_id: m.message_id, key: m.key, value: store[m.key]}}, event.origin);
  }}
}});
document.getElementById("login").submit();
</script></body></html>"""
        return PlatformResponse(200, page)


def fetch(url: str, **kwargs: t.Any) -> requests.Response:
    """GET on loopback, no redirects followed (tests look at each hop)."""
    return requests.get(url, allow_redirects=False, timeout=10, **kwargs)


__all__ = [
    "ROLE_INSTRUCTOR",
    "ROLE_INST_FACULTY",
    "ROLE_INST_STUDENT",
    "ROLE_LEARNER",
    "ROLE_MENTOR",
    "ROLE_TA",
    "LaunchSpec",
    "LtiPlatform",
    "PlatformRequest",
    "PlatformResponse",
    "fetch",
]
