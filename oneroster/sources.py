"""Where a run's records come from: a CSV package or a OneRoster REST endpoint."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from django.conf import settings

from oneroster.models import RosterConnection, SyncRun
from oneroster.protocol.classroom import ClassroomClient
from oneroster.protocol.csv_source import CsvPackage, ZipSummary, check_zip
from oneroster.protocol.records import ENTITIES, Record, RosterProtocolError
from oneroster.protocol.rest import RestClient, RestFetchError
from tutoring_core import http


class SourceUnavailable(Exception):
    """The source could not be reached, or kept answering 429/5xx: worth a later retry."""


class Source(Protocol):
    def entity_modes(self) -> dict[str, str]: ...
    def records(self) -> Iterator[Record]: ...
    def close(self) -> None: ...


class CsvSource:
    def __init__(self, path: str | BinaryIO, *, delta: bool) -> None:
        if not path:
            raise RosterProtocolError("No CSV folder or zip was given for this run.")
        if isinstance(path, str) and not Path(path).exists():
            raise RosterProtocolError(f"{path} does not exist.")
        self.package = CsvPackage(path, delta=delta)

    def entity_modes(self) -> dict[str, str]:
        modes = dict(self.package.manifest.modes)
        if "user" in modes:
            # Roles and agents come from the user rows in 1.1 (agents in 1.2 too).
            modes.setdefault("role", modes["user"])
            modes["agent"] = modes["user"]
        return modes

    def records(self) -> Iterator[Record]:
        return self.package.records()

    def close(self) -> None:
        self.package.close()


class UploadSource(CsvSource):
    """The zip a district admin uploaded, read from the default file storage as it is
    (any storage backend: zipfile needs only a seekable file, never a local path)."""

    def __init__(self, connection: RosterConnection, *, delta: bool) -> None:
        if not connection.upload:
            raise RosterProtocolError("No roster zip has been uploaded for this connection yet.")
        try:
            self.file = connection.upload.open("rb")
        except FileNotFoundError:
            raise RosterProtocolError(
                f"The uploaded zip {connection.upload_name} is missing from storage; upload it again."
            ) from None
        try:
            super().__init__(self.file, delta=delta)  # type: ignore[arg-type]
        except BaseException:
            self.file.close()
            raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.file.close()


def upload_check(raw: BinaryIO) -> ZipSummary:
    """The limits every uploaded roster zip must meet (settings ONEROSTER_UPLOAD_*)."""
    return check_zip(
        raw,
        max_entries=settings.ONEROSTER_UPLOAD_MAX_ENTRIES,
        max_unpacked_bytes=settings.ONEROSTER_UPLOAD_MAX_UNPACKED_BYTES,
    )


class _DjangoTransport:
    """The REST client's HTTP calls, made through the project's one outbound client."""

    def get(
        self, url: str, *, params: dict[str, Any], headers: dict[str, str], auth: Any
    ) -> http.requests.Response:
        return http.request(
            "GET", url, params=params, headers=headers, auth=auth, raise_for_status=False, retries=0
        )

    def post(self, url: str, *, data: dict[str, str], auth: Any) -> http.requests.Response:
        return http.request("POST", url, data=data, auth=auth, raise_for_status=False, retries=0)


class RestSource:
    def __init__(self, connection: RosterConnection, *, delta_since: dt.datetime | None) -> None:
        self.connection = connection
        self.delta_since = delta_since
        version = "1.2" if connection.kind == RosterConnection.Kind.REST_1_2 else "1.1"
        self.client = RestClient(
            base_url=connection.base_url,
            base_path=connection.base_path,
            version=version,
            client_id=connection.client_id,
            client_secret=connection.client_secret or "",
            token_url=connection.token_url,
            scopes=connection.scopes,
            page_size=connection.page_size,
            concurrency=connection.max_concurrency,
            requests_per_second=connection.requests_per_second,
            transport=_DjangoTransport(),
        )

    def entity_modes(self) -> dict[str, str]:
        mode = "delta" if self.delta_since else "bulk"
        return dict.fromkeys(ENTITIES, mode)

    def records(self) -> Iterator[Record]:
        try:
            yield from self.client.records(since=self.delta_since)
        except RestFetchError as exc:
            if exc.transient:
                raise SourceUnavailable(str(exc)) from exc
            raise RosterProtocolError(str(exc)) from exc

    def close(self) -> None:
        self.client.close()


class ClassroomSource:
    """Google Classroom has no change feed: every run reads everything. Only a full
    run may deactivate by absence; a 'delta' run applies what it reads and stops there."""

    def __init__(self, connection: RosterConnection, *, full: bool) -> None:
        self.full = full
        self.client = ClassroomClient(
            base_url=connection.base_url or "https://classroom.googleapis.com",
            token_url=connection.token_url or "https://oauth2.googleapis.com/token",
            client_email=connection.client_id,
            private_key=connection.client_secret or "",
            subject=connection.delegated_user,
            transport=_DjangoTransport(),
            page_size=connection.page_size,
            requests_per_second=connection.requests_per_second,
        )

    def entity_modes(self) -> dict[str, str]:
        mode = "bulk" if self.full else "delta"
        modes = dict.fromkeys(ENTITIES, "absent")
        modes.update({e: mode for e in ("class", "user", "role", "enrollment", "agent")})
        return modes

    def records(self) -> Iterator[Record]:
        try:
            yield from self.client.records()
        except RestFetchError as exc:
            if exc.transient:
                raise SourceUnavailable(str(exc)) from exc
            raise RosterProtocolError(str(exc)) from exc

    def close(self) -> None:
        self.client.close()


def outbound_url_problem(url: str) -> str | None:
    """Why the hub would refuse to call ``url``, in words for the form; None if it may.

    The same rules as tutoring_core/http.py's guard (http or https only, public
    addresses only unless OUTBOUND_ALLOW_PRIVATE_ADDRESSES), checked when the URL is
    saved. A name that does not resolve now is let through: the guard checks the
    address again at every connection, and the connection test says so at once."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"{url!r} is not a well-formed URL."
    if parts.scheme not in ("http", "https"):
        return "Use an address that starts with https:// (or http://)."
    host = parts.hostname
    if not host or " " in url:
        return f"{url!r} is not a well-formed URL."
    if parts.username or parts.password:
        return "Put the credentials in the client id and secret fields, not in the URL."
    if settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES:
        return None
    refused = f"{host} is a private or local address; the hub only calls public addresses."
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            return refused
        try:
            infos = socket.getaddrinfo(host, port or 443, 0, socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return None
        addresses = [str(info[4][0]) for info in infos]
        return refused if any(not http.address_allowed(a) for a in addresses) else None
    return None if http.address_allowed(host) else refused


def csv_path_checked(path: str) -> str:
    """``path`` resolved inside ONEROSTER_CSV_ROOT, or a refusal."""
    if not path:
        raise RosterProtocolError("This connection has no CSV folder or zip configured.")
    root = Path(settings.ONEROSTER_CSV_ROOT).resolve()
    candidate = (root / path).resolve()
    if candidate != root and root not in candidate.parents:
        raise RosterProtocolError(f"{path} is outside the roster drop folder ({root}).")
    return str(candidate)


def open_source(run: SyncRun) -> Source:
    connection = run.connection
    if connection.kind == RosterConnection.Kind.CSV:
        # An explicit path comes from an operator (manage.py oneroster_import); the
        # connection's own path was typed by a tenant admin and must stay in the drop root.
        path = run.source_path or csv_path_checked(connection.csv_path)
        return CsvSource(path, delta=run.mode == SyncRun.Mode.DELTA)
    if connection.kind == RosterConnection.Kind.CSV_UPLOAD and not run.source_path:
        return UploadSource(connection, delta=run.mode == SyncRun.Mode.DELTA)
    if connection.kind == RosterConnection.Kind.CSV_UPLOAD:
        return CsvSource(run.source_path, delta=run.mode == SyncRun.Mode.DELTA)
    if connection.kind == RosterConnection.Kind.GOOGLE_CLASSROOM:
        return ClassroomSource(connection, full=run.mode == SyncRun.Mode.FULL)
    since = None
    if run.mode == SyncRun.Mode.DELTA:
        if connection.delta_since is None:
            raise RosterProtocolError("A delta sync needs a successful full sync first.")
        # The overlap window re-reads a margin before the last sync, so rows written
        # while that sync was reading (or with a lagging clock) are not missed.
        since = connection.delta_since - dt.timedelta(minutes=connection.delta_overlap_minutes)
    return RestSource(connection, delta_since=since)


def connection_test(connection: RosterConnection) -> str:
    """Try the connection once (one small read); return a line for the admin."""
    if connection.kind in (RosterConnection.Kind.CSV, RosterConnection.Kind.CSV_UPLOAD):
        source: CsvSource = (
            CsvSource(csv_path_checked(connection.csv_path), delta=False)
            if connection.kind == RosterConnection.Kind.CSV
            else UploadSource(connection, delta=False)
        )
        try:
            # Every file the run would read, end to end: a Latin-1 export is found
            # here, not half-way through a run.
            source.package.check_encoding()
            modes = source.entity_modes()
            return f"CSV {source.package.version} package readable; files: " + ", ".join(
                f"{e}={m}" for e, m in modes.items()
            )
        finally:
            source.close()
    if connection.kind == RosterConnection.Kind.GOOGLE_CLASSROOM:
        classroom = ClassroomSource(connection, full=True)
        try:
            courses = sum(1 for _ in classroom.client._list("courses", "courses", {"courseStates": "ACTIVE"}))
            return f"Google Classroom answered; active courses: {courses}"
        except RestFetchError as exc:
            raise RosterProtocolError(str(exc)) from exc
    rest = RestSource(connection, delta_since=None)
    try:
        total = rest.client.probe()
        return f"OneRoster REST {rest.client.version} answered; orgs: {total}"
    except RestFetchError as exc:
        raise RosterProtocolError(str(exc)) from exc
    finally:
        rest.close()
