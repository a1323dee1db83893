"""A fake OneRoster REST provider on loopback, serving a generated district.

It is a real HTTP peer for the tests and the benchmark: it checks OAuth 1.0a
HMAC-SHA256 signatures (1.1) with oauthlib, issues and checks OAuth 2.0 client
credentials tokens with scopes (1.2), pages with limit/offset, X-Total-Count and
Link, filters on dateLastModified, and injects faults on request: 429 with
Retry-After, 500, short pages, an answer without its data envelope.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs, urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import signature as oauth_signature

from oneroster.protocol.generator import BASE_TIME, ENTITY_ENDPOINTS, District
from oneroster.protocol.rest import DEFAULT_BASE_PATHS

ROSTER_SCOPE = "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly"
_FILTER = re.compile(r"^dateLastModified>'([^']+)'$")


@dataclass
class Faults:
    """Each fault fires ``times`` times on the endpoint it names (then stops)."""

    too_many: dict[str, int] = field(default_factory=dict)  # endpoint -> count of 429s
    retry_after: str = "1"
    server_error: dict[str, int] = field(default_factory=dict)  # endpoint -> count of 500s
    no_envelope: set[str] = field(default_factory=set)  # endpoints answering without the envelope
    short_pages: bool = False  # every page holds fewer items than asked for (a capped limit)
    max_limit: int | None = None


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class FakeOneRosterProvider:
    def __init__(
        self,
        district: District,
        *,
        version: str = "1.1",
        client_id: str = "hub-client",
        client_secret: str = "s3cret-for-tests",  # noqa: S107 - a test peer's own secret
        faults: Faults | None = None,
        link_headers: bool = False,
        total_header: bool = True,
    ) -> None:
        self.district = district
        self.version = version
        self.client_id = client_id
        self.client_secret = client_secret
        self.faults = faults or Faults()
        self.link_headers = link_headers
        self.total_header = total_header
        self.base_path = DEFAULT_BASE_PATHS[version]
        self.tokens: dict[str, tuple[float, str]] = {}
        self.log: list[tuple[str, str, int]] = []  # (path, query, status)
        self._cache: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeOneRosterProvider:
        self._server = make_server(
            "127.0.0.1", 0, self.app, server_class=_ThreadingServer, handler_class=_Quiet
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOneRosterProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    def set_district(self, district: District) -> None:
        with self._lock:
            self.district = district
            self._cache.clear()

    # --- WSGI -----------------------------------------------------------------------------
    def app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        status, headers, body = self._handle(environ, path, query)
        with self._lock:
            self.log.append((path, query, status))
        start_response(
            f"{status} {'OK' if status < 400 else 'Error'}", [("Content-Type", "application/json"), *headers]
        )
        return [json.dumps(body).encode()]

    def _handle(
        self, environ: dict[str, Any], path: str, query: str
    ) -> tuple[int, list[tuple[str, str]], Any]:
        if path == "/oauth/token" and environ["REQUEST_METHOD"] == "POST":
            return self._token(environ)
        if not path.startswith(self.base_path + "/"):
            return 404, [], {"imsx_codeMajor": "failure", "imsx_description": "not found"}
        endpoint = path[len(self.base_path) + 1 :]
        if endpoint not in ENTITY_ENDPOINTS.values():
            return (
                404,
                [],
                {"imsx_codeMajor": "failure", "imsx_description": f"unknown collection {endpoint}"},
            )
        if not self._authorised(environ, path, query):
            return 401, [], {"imsx_codeMajor": "failure", "imsx_description": "unauthorised"}
        with self._lock:
            if self.faults.too_many.get(endpoint, 0) > 0:
                self.faults.too_many[endpoint] -= 1
                return 429, [("Retry-After", self.faults.retry_after)], {"imsx_description": "slow down"}
            if self.faults.server_error.get(endpoint, 0) > 0:
                self.faults.server_error[endpoint] -= 1
                return 500, [], {"imsx_description": "boom"}
        params = {k: v[0] for k, v in parse_qs(query).items()}
        try:
            limit = int(params.get("limit", "100"))
            offset = int(params.get("offset", "0"))
        except ValueError:
            return 400, [], {"imsx_description": "limit and offset must be numbers"}
        if self.faults.max_limit:
            limit = min(limit, self.faults.max_limit)
        since_epoch = None
        if "filter" in params:
            match = _FILTER.match(params["filter"])
            if not match:
                return 400, [], {"imsx_description": f"unsupported filter {params['filter']!r}"}
            since_epoch = self._epoch_of(match.group(1))
        items = self._items(endpoint, since_epoch)
        page = items[offset : offset + limit]
        if self.faults.short_pages and len(page) > 1:
            page = page[: max(1, len(page) // 2)]
        headers: list[tuple[str, str]] = []
        if self.total_header:
            headers.append(("X-Total-Count", str(len(items))))
        if self.link_headers and offset + len(page) < len(items):
            nxt = {**params, "offset": str(offset + len(page)), "limit": str(limit)}
            headers.append(("Link", f'<{self.base_url}{path}?{urlencode(nxt)}>; rel="next"'))
        if endpoint in self.faults.no_envelope:
            return 200, headers, page
        return 200, headers, {endpoint: page}

    def _epoch_of(self, stamp: str) -> int:
        import datetime as dt

        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        # Rows of epoch k carry BASE_TIME + k days; '>' when means epochs after it.
        days = (when - BASE_TIME).total_seconds() / 86400
        return max(-1, int(days // 1)) if days >= 0 else -1

    def _items(self, endpoint: str, since_epoch: int | None) -> list[dict[str, Any]]:
        entity = next(e for e, name in ENTITY_ENDPOINTS.items() if name == endpoint)
        key = (endpoint, since_epoch)
        with self._lock:
            if key not in self._cache:
                if since_epoch is None or since_epoch < 0:
                    self._cache[key] = list(self.district.rest_objects(entity, self.version))
                else:
                    self._cache[key] = list(
                        self.district.rest_objects(entity, self.version, since_epoch=since_epoch)
                    )
            return self._cache[key]

    # --- auth -----------------------------------------------------------------------------
    def _token(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Any]:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        try:
            scheme, value = auth.split(" ", 1)
            client_id, secret = base64.b64decode(value).decode().split(":", 1)
        except ValueError:
            return 401, [], {"error": "invalid_client"}
        if scheme.lower() != "basic" or (client_id, secret) != (self.client_id, self.client_secret):
            return 401, [], {"error": "invalid_client"}
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(length).decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return 400, [], {"error": "unsupported_grant_type"}
        scopes = set(form.get("scope", "").split())
        if ROSTER_SCOPE not in scopes:
            return 400, [], {"error": "invalid_scope"}
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.tokens[token] = (time.time() + 3600, " ".join(sorted(scopes)))
        return (
            200,
            [("Cache-Control", "no-store")],
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": 3600,
                "scope": " ".join(sorted(scopes)),
            },
        )

    def _authorised(self, environ: dict[str, Any], path: str, query: str) -> bool:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if self.version == "1.2":
            if not auth.lower().startswith("bearer "):
                return False
            found = self.tokens.get(auth[7:].strip())
            return bool(found and found[0] > time.time() and ROSTER_SCOPE in found[1].split())
        if not auth.startswith("OAuth "):
            return False
        uri = f"http://{environ['HTTP_HOST']}{path}" + (f"?{query}" if query else "")
        request = OAuthRequest(
            uri, http_method=environ["REQUEST_METHOD"], body="", headers={"Authorization": auth}
        )
        params = oauth_signature.collect_parameters(
            uri_query=query, headers={"Authorization": auth}, exclude_oauth_signature=False
        )
        values = dict(params)
        if (
            values.get("oauth_consumer_key") != self.client_id
            or values.get("oauth_signature_method") != "HMAC-SHA256"
        ):
            return False
        request.params = [(k, v) for k, v in params if k != "oauth_signature"]
        request.signature = values.get("oauth_signature", "")
        return bool(oauth_signature.verify_hmac_sha256(request, self.client_secret))
