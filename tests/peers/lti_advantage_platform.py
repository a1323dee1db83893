"""A loopback LMS speaking LTI Advantage services (AGS 2.0 and NRPS 2.0), with
fault injection, for tests and bench/ags.py.

Token checks are lti1p3platform's (0.1.8): it validates the tool's signed client
assertion against the tool's JWKS, issues signed access tokens, and verifies
them on every service call. On top of it this peer adds what a real platform
also checks and the library leaves out (the assertion's audience, iss == sub ==
client_id, jti replay) and a configurable token lifetime.

The REST endpoints follow the specs: line item containers with filters, line
items, scores (timestamp ordering: an older or equal timestamp is not applied and
answers 409), results, and membership containers, all paged with Link headers
whose URLs are deliberately mixed-case. Faults: a share of 500 / 429 / timeouts,
an outage window, a per-second rate limit (429 with Retry-After, or Canvas's 403
"Rate Limit Exceeded"), and a hold that parks score posts until released.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
import typing as t
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lti1p3platform.exceptions import LtiException, MissingRequiredClaim, UnsupportedGrantType
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.registration import Registration

LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEM_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE = "application/vnd.ims.lis.v1.score+json"
RESULT_CONTAINER = "application/vnd.ims.lis.v2.resultcontainer+json"
MEMBERSHIP_CONTAINER = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_RO = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_RESULT = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
ACTIVITY_PROGRESS = {"Initialized", "Started", "InProgress", "Submitted", "Completed"}
GRADING_PROGRESS = {"FullyGraded", "Pending", "PendingManual", "Failed", "NotReady"}
CANVAS_SUBMISSION = "https://canvas.instructure.com/lti/submission"
_VALUE_FIELDS = ("scoreGiven", "scoreMaximum", "comment", "activityProgress", "gradingProgress")


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


class _PlatformConf(LTI1P3PlatformConfAbstract):
    """lti1p3platform's platform, holding one registration (our tool)."""

    def init_platform_config(self, **kwargs: t.Any) -> None:
        self._registration_obj: Registration = kwargs["registration"]

    def get_registration_by_params(self, **kwargs: t.Any) -> Registration:
        return self._registration_obj


@dataclass
class Faults:
    """What goes wrong, and how often. Shares are of score posts (and, with
    ``all_services``, of every service call). Times are ``time.time()`` values."""

    share_500: float = 0.0
    share_429: float = 0.0
    share_timeout: float = 0.0
    timeout_seconds: float = 3.0
    outage: tuple[float, float] | None = None
    # An outage counted in service calls instead of seconds: calls number ``first``
    # up to (not including) ``last`` are refused, whatever the machine's speed.
    outage_calls: tuple[int, int] | None = None
    rate_limit_per_second: int | None = None
    canvas_rate_limit: bool = False  # answer the rate limit with Canvas's 403
    retry_after: int = 1
    all_services: bool = False
    seed: int = 1234


@dataclass
class Stats:
    token_requests: int = 0
    token_refusals: int = 0
    score_posts: int = 0
    scores_applied: int = 0
    scores_stale: int = 0
    injected_500: int = 0
    injected_429: int = 0
    injected_timeouts: int = 0
    outage_refusals: int = 0
    rate_limited: int = 0
    unauthorized: int = 0
    bad_requests: int = 0
    # The same score applied twice in a row to one student's column: what a teacher
    # would see as a duplicate in the gradebook history.
    duplicates: int = 0
    # Posts of a score (line item, user, timestamp) the platform had already applied:
    # a tool resending after a lost answer. Harmless (answered 409, not applied).
    resent_after_accept: int = 0
    admitted_per_second: Counter[int] = field(default_factory=Counter)


class AdvantagePlatform:
    """Start with ``with AdvantagePlatform() as lms:``; ``lms.base_url`` is its root."""

    def __init__(
        self,
        *,
        issuer: str = "https://lms.example.test",
        client_id: str = "hub-client",
        token_ttl: int = 3600,
        page_size: int = 50,
        faults: Faults | None = None,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.token_ttl = token_ttl
        self.page_size = page_size
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)
        self._calls = 0
        self._lock = threading.RLock()
        self.private_pem, self.public_pem = _pem_pair()
        self.stats = Stats()
        self._token_issued: dict[str, float] = {}
        self._seen_jti: set[str] = set()
        self.lineitems: dict[str, dict[str, dict[str, t.Any]]] = defaultdict(dict)  # context -> id -> item
        self.members: dict[str, list[dict[str, t.Any]]] = defaultdict(list)
        self.scores: dict[tuple[str, str], dict[str, t.Any]] = {}  # (lineitem id, userId) -> latest
        self.score_log: list[dict[str, t.Any]] = []
        self._accepted: set[tuple[str, str, str]] = set()
        self._window: tuple[int, int] = (0, 0)
        # Score posts wait here while ``hold`` is set; ``held`` fires when one arrives.
        self.hold = threading.Event()
        self.held = threading.Event()
        self._release = threading.Event()
        self.registration = (
            Registration()
            .set_iss(issuer)
            .set_client_id(client_id)
            .set_platform_private_key(self.private_pem)
            .set_platform_public_key(self.public_pem)
        )
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> AdvantagePlatform:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        platform = self

        class Handler(_Handler):
            lms = platform

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/Login/OAuth2/Token"

    def context_url(self, context: str) -> str:
        # Mixed case on purpose: paths are case-sensitive and a client that
        # lowercases a URL it was given gets 404 here.
        return f"{self.base_url}/Api/LTI/Courses/{context}"

    def lineitems_url(self, context: str) -> str:
        return f"{self.context_url(context)}/LineItems"

    def memberships_url(self, context: str) -> str:
        return f"{self.context_url(context)}/Names_And_Roles"

    # --- set-up -----------------------------------------------------------------------

    def set_tool_jwks(self, jwks: dict[str, t.Any]) -> None:
        self.registration.set_tool_key_set(t.cast(t.Any, jwks))

    def add_member(self, context: str, user_id: str, roles: list[str], **profile: t.Any) -> None:
        with self._lock:
            self.members[context] = [m for m in self.members[context] if m["user_id"] != user_id]
            self.members[context].append({"user_id": user_id, "roles": roles, "status": "Active", **profile})

    def remove_member(self, context: str, user_id: str) -> None:
        with self._lock:
            self.members[context] = [m for m in self.members[context] if m["user_id"] != user_id]

    def add_lineitem(self, context: str, **fields: t.Any) -> dict[str, t.Any]:
        with self._lock:
            item_id = f"{self.lineitems_url(context)}/{uuid.uuid4().hex[:8].upper()}Li"
            item = {"id": item_id, **fields}
            self.lineitems[context][item_id] = item
            return dict(item)

    def release_held(self) -> None:
        self.hold.clear()
        self._release.set()

    # --- figures --------------------------------------------------------------------

    def latest_score(self, lineitem_id: str, user_id: str) -> dict[str, t.Any] | None:
        with self._lock:
            found = self.scores.get((lineitem_id, user_id))
            return dict(found) if found else None

    # --- token endpoint ---------------------------------------------------------------

    def issue_token(self, form: dict[str, str]) -> tuple[int, dict[str, t.Any]]:
        with self._lock:
            self.stats.token_requests += 1
        conf = _PlatformConf(registration=self.registration)
        conf.get_registration()
        try:
            answer = conf.get_access_token(form)
        except (MissingRequiredClaim, UnsupportedGrantType, LtiException, jwt.PyJWTError, KeyError) as exc:
            return self._refuse_token(f"{type(exc).__name__}: {exc}")
        claims = jwt.decode(form["client_assertion"], options={"verify_signature": False})
        if claims.get("aud") not in (self.token_url, [self.token_url]):
            return self._refuse_token("assertion audience is not this token endpoint")
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            return self._refuse_token("assertion iss/sub is not the client id")
        with self._lock:
            jti = str(claims.get("jti") or "")
            if not jti or jti in self._seen_jti:
                return self._refuse_token("assertion jti missing or replayed")
            self._seen_jti.add(jti)
            self._token_issued[answer["access_token"]] = time.time()
        return 200, {**answer, "expires_in": self.token_ttl}

    def _refuse_token(self, reason: str) -> tuple[int, dict[str, t.Any]]:
        with self._lock:
            self.stats.token_refusals += 1
        return 400, {"error": "invalid_client", "error_description": reason}

    def check_token(self, header: str, scopes: list[str]) -> str | None:
        """None if the bearer token is good for one of ``scopes``, else the reason."""
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return "missing bearer token"
        conf = _PlatformConf(registration=self.registration)
        conf.get_registration()
        try:
            if not conf.validate_token(parts[1], allowed_scopes=scopes):
                return "token lacks the scope"
        except (LtiException, jwt.PyJWTError) as exc:
            return f"invalid token: {exc}"
        issued = self._token_issued.get(parts[1])
        if issued is None or time.time() > issued + self.token_ttl:
            return "token expired"
        return None

    # --- faults -----------------------------------------------------------------------

    def admit(self) -> tuple[int, dict[str, str], str] | float | None:
        """Decide a service call's fate: None (serve it), a float (hang that long,
        then 504), or (status, headers, body) to answer at once."""
        now = time.time()
        f = self.faults
        with self._lock:
            self._calls += 1
            in_counted_outage = (
                f.outage_calls is not None and f.outage_calls[0] <= self._calls < f.outage_calls[1]
            )
            if in_counted_outage or (f.outage and f.outage[0] <= now < f.outage[1]):
                self.stats.outage_refusals += 1
                return 503, {}, "platform down for maintenance"
            if f.rate_limit_per_second is not None:
                second = int(now)
                window, used = self._window
                if window != second:
                    window, used = second, 0
                used += 1
                self._window = (window, used)
                if used > f.rate_limit_per_second:
                    self.stats.rate_limited += 1
                    if f.canvas_rate_limit:
                        return 403, {}, "403 Forbidden (Rate Limit Exceeded)"
                    return 429, {"Retry-After": str(f.retry_after)}, "rate limit exceeded"
                self.stats.admitted_per_second[second] += 1
            draw = self._rng.random()
        if draw < f.share_500:
            with self._lock:
                self.stats.injected_500 += 1
            return 500, {}, "internal error (injected)"
        if draw < f.share_500 + f.share_429:
            with self._lock:
                self.stats.injected_429 += 1
            return 429, {"Retry-After": "1"}, "slow down (injected)"
        if draw < f.share_500 + f.share_429 + f.share_timeout:
            with self._lock:
                self.stats.injected_timeouts += 1
            return f.timeout_seconds
        return None

    # --- scores -------------------------------------------------------------------------

    def post_score(self, lineitem_id: str, context: str, body: t.Any) -> tuple[int, t.Any]:
        if not isinstance(body, dict):
            return 400, {"error": "score must be a JSON object"}
        user_id = body.get("userId")
        problems = []
        if not isinstance(user_id, str) or not user_id:
            problems.append("userId")
        if body.get("activityProgress") not in ACTIVITY_PROGRESS:
            problems.append("activityProgress")
        if body.get("gradingProgress") not in GRADING_PROGRESS:
            problems.append("gradingProgress")
        try:
            stamp = dt.datetime.fromisoformat(str(body.get("timestamp")))
            if stamp.tzinfo is None:
                problems.append("timestamp (no offset)")
        except ValueError:
            problems.append("timestamp")
            stamp = None
        if "scoreGiven" in body and not isinstance(body.get("scoreMaximum"), int | float):
            problems.append("scoreMaximum (required with scoreGiven)")
        if problems:
            with self._lock:
                self.stats.bad_requests += 1
            return 400, {"error": "invalid score: " + ", ".join(problems)}
        assert stamp is not None and isinstance(user_id, str)
        with self._lock:
            if not any(m["user_id"] == user_id for m in self.members[context]):
                self.stats.bad_requests += 1
                return 422, {"error": f"user {user_id} is not a member of this course"}
            self.stats.score_posts += 1
            identity = (lineitem_id, user_id, stamp.isoformat())
            if identity in self._accepted:
                self.stats.resent_after_accept += 1
            current = self.scores.get((lineitem_id, user_id))
            if current is not None and current["_stamp"] >= stamp:
                # AGS 2.0 §3.4: never let an older score replace a newer one.
                if identity not in self._accepted:
                    self.stats.scores_stale += 1
                return 409, {"error": "score timestamp is not later than the one on record"}
            if current is not None and all(current.get(k) == body.get(k) for k in _VALUE_FIELDS):
                self.stats.duplicates += 1
            self.scores[(lineitem_id, user_id)] = {**body, "_stamp": stamp}
            self.score_log.append({"lineitem": lineitem_id, **body})
            self._accepted.add(identity)
            self.stats.scores_applied += 1
        return 200, None

    def wait_if_held(self) -> None:
        if self.hold.is_set():
            self.held.set()
            self._release.wait(timeout=120)


def _page(
    items: list[t.Any], query: dict[str, str], default_size: int
) -> tuple[list[t.Any], dict[str, str] | None]:
    size = int(query.get("limit") or query.get("Limit") or default_size)
    page = int(query.get("Page") or 1)
    chunk = items[(page - 1) * size : page * size]
    if page * size < len(items):
        nxt = dict(query)
        nxt["Page"] = str(page + 1)
        nxt["Limit"] = str(size)
        nxt.pop("limit", None)
        # A token in mixed case that must come back unchanged.
        nxt["Cursor"] = f"AbC{page + 1}xYz"
        return chunk, nxt
    return chunk, None


class _Handler(BaseHTTPRequestHandler):
    lms: AdvantagePlatform
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: t.Any) -> None:  # quiet
        return

    # --- plumbing ---------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: t.Any = None,
        *,
        media: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        if raw:
            self.send_header("Content-Type", media)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if raw:
            self.wfile.write(raw)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}

    def _route(self) -> tuple[str, list[str]]:
        path = urlsplit(self.path).path
        return path, [p for p in path.split("/") if p]

    def _guard(self, scopes: list[str], *, scores: bool) -> bool:
        """Auth and faults; True if the request may be served."""
        reason = self.lms.check_token(self.headers.get("Authorization", ""), scopes)
        if reason:
            with self.lms._lock:
                self.lms.stats.unauthorized += 1
            self._send(401, {"error": reason})
            return False
        if scores or self.lms.faults.all_services:
            fate = self.lms.admit()
            if isinstance(fate, float):
                time.sleep(fate)
                try:
                    self._send(504, {"error": "gateway timeout (injected)"})
                except OSError:
                    pass
                return False
            if fate is not None:
                status, headers, text = fate
                self._send(status, text.encode(), media="text/plain", headers=headers)
                return False
        return True

    def _link(self, path: str, query: dict[str, str] | None) -> dict[str, str]:
        if query is None:
            return {}
        return {"Link": f'<{self.lms.base_url}{path}?{urlencode(query)}>; rel="next"'}

    # --- verbs ------------------------------------------------------------------------

    def do_POST(self) -> None:
        path, parts = self._route()
        raw = self._body()
        if path == "/Login/OAuth2/Token":
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            status, answer = self.lms.issue_token(form)
            self._send(status, answer)
            return
        # /Api/LTI/Courses/<ctx>/LineItems[/<id>/scores]
        if (
            len(parts) == 7
            and parts[:3] == ["Api", "LTI", "Courses"]
            and parts[4] == "LineItems"
            and parts[6] == "scores"
        ):
            self._score(parts, raw)
            return
        if len(parts) == 5 and parts[:3] == ["Api", "LTI", "Courses"] and parts[4] == "LineItems":
            if not self._guard([SCOPE_LINEITEM], scores=False):
                return
            if self.headers.get("Content-Type", "").split(";")[0] != LINEITEM:
                self._send(415, {"error": f"Content-Type must be {LINEITEM}"})
                return
            data = json.loads(raw or b"null")
            if (
                not isinstance(data, dict)
                or not data.get("label")
                or not isinstance(data.get("scoreMaximum"), int | float)
            ):
                self._send(400, {"error": "a line item needs label and scoreMaximum"})
                return
            item = self.lms.add_lineitem(parts[3], **{k: v for k, v in data.items() if k != "id"})
            self._send(201, item, media=LINEITEM)
            return
        self._send(404, {"error": f"no such endpoint {path}"})

    def _score(self, parts: list[str], raw: bytes) -> None:
        context = parts[3]
        item_id = f"{self.lms.lineitems_url(context)}/{parts[5]}"
        if not self._guard([SCOPE_SCORE], scores=True):
            return
        if self.headers.get("Content-Type", "").split(";")[0] != SCORE:
            self._send(415, {"error": f"Content-Type must be {SCORE}"})
            return
        if item_id not in self.lms.lineitems[context]:
            self._send(404, {"error": "no such line item"})
            return
        self.lms.wait_if_held()
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(400, {"error": "body is not JSON"})
            return
        status, answer = self.lms.post_score(item_id, context, body)
        self._send(status, answer)

    def do_GET(self) -> None:
        path, parts = self._route()
        query = self._query()
        if len(parts) >= 5 and parts[:3] == ["Api", "LTI", "Courses"]:
            context = parts[3]
            if "Page" in query and query.get("Cursor") != f"AbC{query['Page']}xYz":
                self._send(400, {"error": "paging cursor does not match (was the URL changed?)"})
                return
            if len(parts) == 5 and parts[4] == "Names_And_Roles":
                if not self._guard([SCOPE_NRPS], scores=False):
                    return
                with self.lms._lock:
                    members = list(self.lms.members[context])
                chunk, nxt = _page(members, query, self.lms.page_size)
                body = {"id": self.lms.memberships_url(context), "context": {"id": context}, "members": chunk}
                self._send(200, body, media=MEMBERSHIP_CONTAINER, headers=self._link(path, nxt))
                return
            if len(parts) == 5 and parts[4] == "LineItems":
                if not self._guard([SCOPE_LINEITEM, SCOPE_LINEITEM_RO], scores=False):
                    return
                with self.lms._lock:
                    items = list(self.lms.lineitems[context].values())
                for name, field_name in (
                    ("resource_link_id", "resourceLinkId"),
                    ("resource_id", "resourceId"),
                    ("tag", "tag"),
                ):
                    if name in query:
                        items = [i for i in items if i.get(field_name) == query[name]]
                chunk, nxt = _page(items, query, self.lms.page_size)
                self._send(200, chunk, media=LINEITEM_CONTAINER, headers=self._link(path, nxt))
                return
            item_id = f"{self.lms.lineitems_url(context)}/{parts[5]}" if len(parts) >= 6 else ""
            if len(parts) == 6 and parts[4] == "LineItems":
                if not self._guard([SCOPE_LINEITEM, SCOPE_LINEITEM_RO], scores=False):
                    return
                item = self.lms.lineitems[context].get(item_id)
                self._send(200 if item else 404, item or {"error": "no such line item"}, media=LINEITEM)
                return
            if len(parts) == 7 and parts[4] == "LineItems" and parts[6] == "results":
                if not self._guard([SCOPE_RESULT], scores=False):
                    return
                if item_id not in self.lms.lineitems[context]:
                    self._send(404, {"error": "no such line item"})
                    return
                with self.lms._lock:
                    results = [
                        {
                            "id": f"{item_id}/results/{user}",
                            "scoreOf": item_id,
                            "userId": user,
                            "resultScore": s.get("scoreGiven"),
                            "resultMaximum": s.get("scoreMaximum"),
                            **({"comment": s["comment"]} if s.get("comment") else {}),
                        }
                        for (li, user), s in sorted(self.lms.scores.items())
                        if li == item_id and ("user_id" not in query or user == query["user_id"])
                    ]
                chunk, nxt = _page(results, query, self.lms.page_size)
                self._send(200, chunk, media=RESULT_CONTAINER, headers=self._link(path, nxt))
                return
        self._send(404, {"error": f"no such endpoint {path}"})

    def do_PUT(self) -> None:
        path, parts = self._route()
        raw = self._body()
        if len(parts) == 6 and parts[:3] == ["Api", "LTI", "Courses"] and parts[4] == "LineItems":
            if not self._guard([SCOPE_LINEITEM], scores=False):
                return
            context = parts[3]
            item_id = f"{self.lms.lineitems_url(context)}/{parts[5]}"
            data = json.loads(raw or b"null")
            with self.lms._lock:
                item = self.lms.lineitems[context].get(item_id)
                if item is None:
                    self._send(404, {"error": "no such line item"})
                    return
                if (
                    not isinstance(data, dict)
                    or not data.get("label")
                    or not isinstance(data.get("scoreMaximum"), int | float)
                ):
                    self._send(400, {"error": "a line item needs label and scoreMaximum"})
                    return
                item.update({k: v for k, v in data.items() if k != "id"})
                self._send(200, item, media=LINEITEM)
            return
        self._send(404, {"error": f"no such endpoint {path}"})
