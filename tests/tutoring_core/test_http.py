"""The one outbound client, against real HTTP servers on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tutoring_core import http


class Recorder:
    def __init__(self) -> None:
        self.hits: list[tuple[str, str, dict[str, str]]] = []
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.delay = 0.0


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            rec.hits.append((self.command, self.path, dict(self.headers)))
            if rec.delay:
                time.sleep(rec.delay)
            status, headers, body = rec.script.pop(0) if rec.script else (200, {}, b"ok")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", rec
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata service
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("224.0.0.1", False),
    ],
)
def test_address_classification(address: str, allowed: bool) -> None:
    assert http.address_allowed(address) is allowed


def test_get_sends_user_agent_and_returns_body(server: tuple[str, Recorder]) -> None:
    url, rec = server
    response = http.get(f"{url}/hello?x=1")
    assert response.status_code == 200
    assert response.text == "ok"
    assert rec.hits[0][1] == "/hello?x=1"
    assert rec.hits[0][2]["User-Agent"].startswith("TutoringHub/")


def test_loopback_refused_unless_allowed(server: tuple[str, Recorder], settings: Any) -> None:
    url, rec = server
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(http.OutboundHTTPError) as caught:
        http.get(url)
    assert caught.value.blocked is True
    assert caught.value.transient is False
    assert "non-public address (127.0.0.1)" in str(caught.value)
    assert rec.hits == []


def test_name_resolving_to_loopback_is_refused(server: tuple[str, Recorder], settings: Any) -> None:
    url, rec = server
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(http.OutboundHTTPError) as caught:
        http.get(url.replace("127.0.0.1", "localhost"))
    assert caught.value.blocked is True
    assert rec.hits == []


def test_redirect_to_private_address_is_refused(
    server: tuple[str, Recorder], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A public server (127.0.0.1 plays it here) redirecting to a private one
    (127.0.0.2) is refused at the second hop, before connecting."""
    url, rec = server
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = False
    monkeypatch.setattr(http, "address_allowed", lambda address: address == "127.0.0.1")
    port = url.rsplit(":", 1)[1]
    rec.script.append((302, {"Location": f"http://127.0.0.2:{port}/internal"}, b""))
    with pytest.raises(http.OutboundHTTPError) as caught:
        http.get(f"{url}/start")
    assert caught.value.blocked is True
    assert [hit[1] for hit in rec.hits] == ["/start"]


def test_non_http_scheme_refused() -> None:
    with pytest.raises(http.OutboundHTTPError) as caught:
        http.get("file:///etc/passwd")
    assert caught.value.blocked is True


def test_idempotent_get_retries_on_503(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.script += [(503, {}, b"busy"), (503, {}, b"busy")]
    response = http.get(url, retries=2)
    assert response.text == "ok"
    assert len(rec.hits) == 3


def test_post_is_not_retried(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.script.append((503, {"Retry-After": "7"}, b"busy"))
    with pytest.raises(http.OutboundHTTPError) as caught:
        http.post(url, json={"a": 1})
    assert caught.value.status == 503
    assert caught.value.transient is True
    assert caught.value.retry_after == 7.0
    assert len(rec.hits) == 1


def test_client_error_is_not_transient(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.script.append((404, {}, b"nope"))
    with pytest.raises(http.OutboundHTTPError) as caught:
        http.get(url, retries=0)
    assert caught.value.status == 404
    assert caught.value.transient is False


def test_raise_for_status_false_returns_response(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.script.append((429, {"Retry-After": "3"}, b"slow down"))
    response = http.get(url, retries=0, raise_for_status=False)
    assert response.status_code == 429


def test_read_timeout(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.delay = 1.0
    with pytest.raises(http.OutboundHTTPError) as caught:
        http.get(url, timeout=(1.0, 0.2), retries=0)
    assert caught.value.timeout is True
    assert caught.value.transient is True


def test_connection_refused_is_transient() -> None:
    with pytest.raises(http.OutboundHTTPError) as caught:
        http.get("http://127.0.0.1:9/", retries=0)
    assert caught.value.status is None
    assert caught.value.blocked is False
    assert caught.value.transient is True


@pytest.mark.parametrize(
    ("value", "expected"), [("120", 120.0), ("0", 0.0), ("soon", None), (None, None), ("", None)]
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert http.parse_retry_after(value) == expected
