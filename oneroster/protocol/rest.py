"""A OneRoster REST consumer (1.1 with OAuth 1.0a HMAC-SHA256, 1.2 with OAuth 2.0
client credentials): paging, deltas, retries and rate limits. No Django here; the
HTTP calls go through an injected transport (the app passes tutoring_core.http).

Paging (OneRoster 1.1 REST binding, section 3.4): ``limit``/``offset``. We stop on
a short page unless the provider told us there is more: X-Total-Count beyond what
we have read, or a ``Link: <...>; rel="next"`` header. Providers cap ``limit``
silently, so a short page alone is not proof of the end when the total says otherwise.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from authlib.integrations.requests_client import OAuth2Auth
from authlib.oauth2.rfc6749 import OAuth2Token
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256
from requests_oauthlib import OAuth1

from oneroster.protocol.records import (
    Record,
    check_record,
    check_user_role,
    derived_user_records,
    normalise_status,
    parse_bool,
    parse_date,
)

DEFAULT_BASE_PATHS = {"1.1": "/ims/oneroster/v1p1", "1.2": "/ims/oneroster/rostering/v1p2"}
ENDPOINTS = (
    ("org", "orgs"),
    ("academicSession", "academicSessions"),
    ("course", "courses"),
    ("class", "classes"),
    ("user", "users"),
    ("enrollment", "enrollments"),
)
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class RestFetchError(Exception):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class Response(Protocol):
    status_code: int
    headers: Any
    text: str

    def json(self) -> Any: ...


class Transport(Protocol):
    # Returns a requests.Response (or anything with status_code, headers, text, json()).
    def get(self, url: str, *, params: dict[str, Any], headers: dict[str, str], auth: Any) -> Any: ...
    def post(self, url: str, *, data: dict[str, str], auth: Any) -> Any: ...


class RateLimiter:
    """At most ``rate`` requests a second across all of one connection's threads."""

    def __init__(self, rate: float, sleep: Callable[[float], None]) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self.sleep(start - now)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _next_link(header: str | None) -> str | None:
    for part in (header or "").split(","):
        if 'rel="next"' in part or "rel=next" in part:
            start, end = part.find("<"), part.find(">")
            if start != -1 and end > start:
                return part[start + 1 : end]
    return None


class RestClient:
    def __init__(
        self,
        *,
        base_url: str,
        version: str,
        client_id: str,
        client_secret: str,
        transport: Transport,
        base_path: str = "",
        token_url: str = "",
        scopes: str = "",
        page_size: int = 1000,
        concurrency: int = 2,
        requests_per_second: float = 10.0,
        max_retries: int = 4,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if version not in DEFAULT_BASE_PATHS:
            raise ValueError(f"OneRoster REST version {version!r} is not 1.1 or 1.2")
        self.version = version
        self.root = base_url.rstrip("/") + (base_path or DEFAULT_BASE_PATHS[version]).rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_url = token_url
        self.scopes = scopes
        self.transport = transport
        self.page_size = page_size
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.sleep = sleep
        self.limiter = RateLimiter(requests_per_second, sleep)
        self._token: OAuth2Token | None = None
        self._token_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # --- auth ---------------------------------------------------------------------
    def _auth(self) -> Any:
        if self.version == "1.1":
            # OneRoster 1.1 security: OAuth 1.0a request signing with HMAC-SHA256.
            return OAuth1(self.client_id, self.client_secret, signature_method=SIGNATURE_HMAC_SHA256)
        return OAuth2Auth(self._bearer())

    def _bearer(self) -> OAuth2Token:
        with self._token_lock:
            if self._token is None or self._token.is_expired(leeway=30):
                self._token = self._fetch_token()
            return self._token

    def _fetch_token(self) -> OAuth2Token:
        if not self.token_url:
            raise RestFetchError(
                "OneRoster 1.2 needs a token URL (OAuth 2.0 client credentials).", transient=False
            )
        data = {"grant_type": "client_credentials"}
        if self.scopes:
            data["scope"] = self.scopes
        # RFC 6749 section 2.3.1: client id and secret in HTTP Basic.
        response = self._send(
            lambda: self.transport.post(self.token_url, data=data, auth=(self.client_id, self.client_secret)),
            where=self.token_url,
        )
        try:
            body = response.json()
            token = OAuth2Token.from_dict(body)
            token["access_token"]
        except (ValueError, KeyError, TypeError):
            raise RestFetchError(
                f"{self.token_url}: the token endpoint did not return an access_token.", transient=False
            ) from None
        return token

    # --- HTTP with retries -----------------------------------------------------------
    def _send(self, call: Callable[[], Response], *, where: str) -> Response:
        attempt = 0
        while True:
            self.limiter.wait()
            try:
                response = call()
            except Exception as exc:  # the transport's network error (tutoring_core.http.OutboundHTTPError)
                if getattr(exc, "transient", True) is False:
                    raise RestFetchError(f"{where}: {exc}", transient=False) from exc
                status, wait, reason = None, None, str(exc)
            else:
                if response.status_code < 400:
                    return response
                status = response.status_code
                wait = _retry_after(response.headers.get("Retry-After"))
                reason = f"HTTP {status}: {response.text[:200]}"
                if status == 401 and self._token is not None:
                    self._token = None  # an expired or revoked token: fetch a new one once
                    if attempt == 0:
                        attempt += 1
                        continue
                if status not in TRANSIENT_STATUSES:
                    raise RestFetchError(f"{where}: {reason}", transient=False)
            attempt += 1
            if attempt > self.max_retries:
                raise RestFetchError(f"{where}: gave up after {attempt} attempts ({reason})", transient=True)
            if wait is None:
                wait = min(self.max_wait, 0.5 * 2 ** (attempt - 1))
            self.sleep(min(wait, self.max_wait))

    def _get_page(self, url: str, params: dict[str, Any], key: str) -> tuple[list[dict[str, Any]], Response]:
        where = f"{url}?offset={params.get('offset', '')}"
        response = self._send(
            lambda: self.transport.get(
                url, params=params, headers={"Accept": "application/json"}, auth=self._auth()
            ),
            where=where,
        )
        try:
            body = response.json()
        except ValueError:
            raise RestFetchError(f"{where}: the answer is not JSON.", transient=False) from None
        # Every OneRoster collection answer wraps its list in an envelope named after
        # the collection ({"users": [...]}). Without it we cannot tell an empty
        # district from a broken answer, so the sync stops (and deactivates no one).
        if not isinstance(body, dict) or not isinstance(body.get(key), list):
            raise RestFetchError(f"{where}: the answer has no {key!r} data envelope.", transient=False)
        return body[key], response

    def pages(self, endpoint: str, *, since: dt.datetime | None = None) -> Iterator[list[dict[str, Any]]]:
        url = f"{self.root}/{endpoint}"
        base: dict[str, Any] = {"limit": self.page_size}
        if since is not None:
            stamp = since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            base["filter"] = f"dateLastModified>'{stamp}'"
        items, response = self._get_page(url, {**base, "offset": 0}, endpoint)
        yield items
        read = len(items)
        total_header = response.headers.get("X-Total-Count")
        total = int(total_header) if total_header and total_header.strip().isdigit() else None
        next_url = _next_link(response.headers.get("Link"))
        if total is not None and self.concurrency > 1 and not next_url and len(items) == self.page_size:
            # The total is known: fetch the remaining pages in parallel, in order.
            offsets = list(range(read, total, self.page_size))
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="oneroster")
            pages = self._pool.map(lambda o: self._get_page(url, {**base, "offset": o}, endpoint), offsets)
            for items, _response in pages:
                yield items
                read += len(items)
            if read >= total:
                return
        while True:
            more = read < total if total is not None else len(items) >= self.page_size
            if not (more or next_url) or not items:
                return
            if next_url:
                parts = urlsplit(next_url)
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                page_url = f"{self.root}/{endpoint}" if not parts.netloc else next_url.split("?", 1)[0]
            else:
                page_url, params = url, {**base, "offset": str(read)}
            items, response = self._get_page(page_url, params, endpoint)
            yield items
            read += len(items)
            next_url = _next_link(response.headers.get("Link"))

    def records(self, *, since: dt.datetime | None = None) -> Iterator[Record]:
        for entity, endpoint in ENDPOINTS:
            location = f"{self.root}/{endpoint}"
            for page in self.pages(endpoint, since=since):
                for obj in page:
                    yield from rest_records(entity, obj, version=self.version, location=location)

    def probe(self) -> int:
        """One small read (the connection test): returns X-Total-Count or the page length."""
        items, response = self._get_page(f"{self.root}/orgs", {"limit": 1, "offset": 0}, "orgs")
        total = response.headers.get("X-Total-Count")
        return int(total) if total and total.isdigit() else len(items)


def _sid(ref: Any) -> str:
    if isinstance(ref, dict):
        return str(ref.get("sourcedId") or "")
    return ""


def rest_records(entity: str, obj: Any, *, version: str, location: str) -> list[Record]:
    """One REST object as records (a user also yields its role and agent records)."""
    if not isinstance(obj, dict):
        record = Record(entity=entity, sourced_id="", status="active", data={}, location=location)
        record.error("the item is not a JSON object")
        return [record]
    record = Record(
        entity=entity,
        sourced_id=str(obj.get("sourcedId") or ""),
        status="active",
        data={},
        location=location,
        date_last_modified=str(obj.get("dateLastModified") or ""),
    )
    # REST answers may list tobedeleted rows in any query (1.1 REST binding, 3.3).
    normalise_status(record, str(obj.get("status") or ""), delta=True)
    try:
        record.data = _rest_data(entity, obj, version)
    except ValueError as exc:
        record.error(str(exc))
        return [record]
    check_record(record, version=version)
    out = [record]
    if entity == "user":
        agents = [_sid(a) for a in obj.get("agents") or [] if _sid(a)]
        if version == "1.2":
            roles = obj.get("roles") or []
            derived = []
            for role in roles:
                if isinstance(role, dict):
                    derived += derived_user_records(
                        record,
                        role=str(role.get("role") or ""),
                        orgs=[_sid(role.get("org"))],
                        agents=[],
                        version=version,
                    )
            out += derived + derived_user_records(record, role="", orgs=[], agents=agents, version=version)
        else:
            check_user_role(record, str(obj.get("role") or ""), version=version)
            orgs = [_sid(o) for o in obj.get("orgs") or [] if _sid(o)]
            out += derived_user_records(
                record, role=str(obj.get("role") or ""), orgs=orgs, agents=agents, version=version
            )
    return out


def _rest_data(entity: str, o: dict[str, Any], version: str) -> dict[str, Any]:
    s = lambda name: str(o.get(name) or "")  # noqa: E731
    if entity == "org":
        return {
            "name": s("name"),
            "type": s("type"),
            "identifier": s("identifier"),
            "parent": _sid(o.get("parent")),
        }
    if entity == "academicSession":
        return {
            "title": s("title"),
            "type": s("type"),
            "startDate": parse_date(o.get("startDate")),
            "endDate": parse_date(o.get("endDate")),
            "parent": _sid(o.get("parent")),
            "schoolYear": s("schoolYear")
            if not isinstance(o.get("schoolYear"), dict)
            else _sid(o.get("schoolYear")),
        }
    if entity == "course":
        return {
            "title": s("title"),
            "courseCode": s("courseCode"),
            "org": _sid(o.get("org")),
            "schoolYear": _sid(o.get("schoolYear")),
        }
    if entity == "class":
        return {
            "title": s("title"),
            "classCode": s("classCode"),
            "classType": s("classType"),
            "course": _sid(o.get("course")),
            "school": _sid(o.get("school")),
            "terms": [_sid(t) for t in o.get("terms") or [] if _sid(t)],
        }
    if entity == "user":
        data: dict[str, Any] = {
            "givenName": s("givenName"),
            "familyName": s("familyName"),
            "middleName": s("middleName"),
            "email": s("email"),
            "username": s("username"),
            "identifier": s("identifier"),
            "enabledUser": parse_bool(o.get("enabledUser"), default=True),
        }
        if version == "1.2":
            data["primaryOrg"] = _sid(o.get("primaryOrg"))
        return data
    if entity == "enrollment":
        return {
            "class": _sid(o.get("class")),
            "user": _sid(o.get("user")),
            "school": _sid(o.get("school")),
            "role": s("role"),
            "primary": bool(parse_bool(o.get("primary"), default=False)),
            "beginDate": parse_date(o.get("beginDate")),
            "endDate": parse_date(o.get("endDate")),
        }
    raise ValueError(f"unknown entity {entity}")
