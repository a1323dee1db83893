"""The one outbound HTTP client. Every call to another system goes through here.

What it guarantees, whoever calls it:
- connect and read timeouts (settings.OUTBOUND_CONNECT_TIMEOUT / _READ_TIMEOUT);
- a User-Agent that names the product;
- retries with backoff for idempotent methods on connection errors and 502/503/504;
- no connection to a private, loopback, link-local or otherwise non-global address.
  The check runs at connect time on the address DNS actually returned, so it also
  covers every redirect hop and DNS rebinding. ``OUTBOUND_ALLOW_PRIVATE_ADDRESSES``
  (dev and tests only) turns it off;
- environment proxies are ignored (an admin-entered URL must not be steerable);
- one exception type, ``OutboundHTTPError``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils import timezone
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
MAX_REDIRECTS = 5


class OutboundHTTPError(Exception):
    """Any failure of an outbound call: refused address, network error, timeout, or
    an HTTP error status. ``status`` is None when no response arrived."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        response: requests.Response | None = None,
        retry_after: float | None = None,
        blocked: bool = False,
        timeout: bool = False,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.response = response
        self.retry_after = retry_after
        self.blocked = blocked
        self.timeout = timeout

    @property
    def transient(self) -> bool:
        """Worth retrying later: a network failure, a timeout, 429 or 5xx."""
        if self.blocked:
            return False
        return self.status is None or self.status == 429 or self.status >= 500


class _AddressRefused(OSError):
    pass


def address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _resolve_allowed(host: str, port: int) -> str:
    """Resolve ``host`` and return an address we may connect to, or refuse."""
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from None
    addresses = [info[4][0] for info in infos]
    if settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES:
        return str(addresses[0])
    refused = [a for a in addresses if not address_allowed(str(a))]
    if refused:
        # Refuse if any answer is private: a name that resolves both ways is an
        # attacker's rebinding setup, not a real service.
        raise _AddressRefused(f"{host} resolves to a non-public address ({refused[0]})")
    return str(addresses[0])


class _GuardMixin:
    _dns_host: str
    port: int

    def _new_conn(self) -> socket.socket:
        original = self._dns_host
        self._dns_host = _resolve_allowed(original, self.port)
        try:
            return super()._new_conn()  # type: ignore[misc, no-any-return]
        finally:
            self._dns_host = original


class _GuardedHTTPConnection(_GuardMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


def _retry_policy(retries: int) -> Retry:
    return Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=0.3,
        status_forcelist=(502, 503, 504),
        allowed_methods=IDEMPOTENT_METHODS,
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
        redirect=False,  # requests follows redirects itself, hop by hop
    )


def _session(retries: int) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.max_redirects = MAX_REDIRECTS
    adapter = _GuardedAdapter(max_retries=_retry_policy(retries), pool_connections=4, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = settings.OUTBOUND_USER_AGENT
    return session


_sessions: dict[int, requests.Session] = {}


def get_session(retries: int | None = None) -> requests.Session:
    """A pooled session (keep-alive) for callers that make many requests."""
    count = settings.OUTBOUND_RETRIES if retries is None else retries
    if count not in _sessions:
        _sessions[count] = _session(count)
    return _sessions[count]


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def request(
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    data: Any = None,
    json: Any = None,
    auth: Any = None,
    timeout: tuple[float, float] | None = None,
    retries: int | None = None,
    allow_redirects: bool = True,
    raise_for_status: bool = True,
) -> requests.Response:
    """Make one outbound call. Raises ``OutboundHTTPError`` on any failure, including
    (unless ``raise_for_status=False``) a 4xx/5xx answer."""
    method = method.upper()
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise OutboundHTTPError(
            f"Only http and https URLs are allowed, not {scheme!r}.", url=url, blocked=True
        )
    if retries is None:
        retries = settings.OUTBOUND_RETRIES if method in IDEMPOTENT_METHODS else 0
    session = get_session(retries)
    try:
        response = session.request(
            method,
            url,
            params=params,
            headers=dict(headers or {}),
            data=data,
            json=json,
            auth=auth,
            timeout=timeout or (settings.OUTBOUND_CONNECT_TIMEOUT, settings.OUTBOUND_READ_TIMEOUT),
            allow_redirects=allow_redirects,
        )
    except requests.Timeout as exc:
        raise OutboundHTTPError(f"Timed out calling {url}: {exc}", url=url, timeout=True) from exc
    except requests.TooManyRedirects as exc:
        raise OutboundHTTPError(f"Too many redirects from {url}.", url=url) from exc
    except requests.RequestException as exc:
        refused = _find_in_chain(exc, _AddressRefused)
        if refused is not None:
            raise OutboundHTTPError(f"Refused to connect: {refused}.", url=url, blocked=True) from exc
        # Retries exhausted on a read timeout surface as a ConnectionError.
        timed_out = _find_in_chain(exc, (Urllib3Timeout, TimeoutError)) is not None
        raise OutboundHTTPError(f"Could not reach {url}: {exc}", url=url, timeout=timed_out) from exc
    if raise_for_status and response.status_code >= 400:
        raise OutboundHTTPError(
            f"{method} {url} answered {response.status_code}: {response.text[:300]}",
            url=url,
            status=response.status_code,
            response=response,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    return response


def _find_in_chain(exc: BaseException, kind: Any) -> BaseException | None:
    """The first exception of ``kind`` among ``exc``'s causes, contexts and reasons."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        stack.extend(c for c in (current.__cause__, current.__context__) if c is not None)
        stack.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return None


def get(url: str, **kwargs: Any) -> requests.Response:
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> requests.Response:
    return request("POST", url, **kwargs)


def put(url: str, **kwargs: Any) -> requests.Response:
    return request("PUT", url, **kwargs)
