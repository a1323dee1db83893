from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.peers.localstripe import LocalStripe

WEBHOOK_SECRET = "whsec_hub_test_secret"
API_KEY = "sk_test_hub"


@pytest.fixture(scope="session")
def localstripe_peer() -> Iterator[LocalStripe]:
    with LocalStripe() as peer:
        yield peer


@pytest.fixture
def stripe_peer(localstripe_peer: LocalStripe, settings: Any) -> LocalStripe:
    localstripe_peer.reset()
    settings.STRIPE_API_KEY = API_KEY
    settings.STRIPE_API_BASE = localstripe_peer.base_url
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    return localstripe_peer


class Sink:
    """Receives localstripe's signed webhook deliveries on loopback (raw body + header)."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.received.append((body, self.headers.get("Stripe-Signature", "")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(
        self, event_type: str, object_id: str, count: int = 1, timeout: float = 20
    ) -> list[tuple[bytes, str]]:
        """Deliveries of ``event_type`` about ``object_id`` (localstripe sends each event a second
        late, so an earlier test's event may still arrive here: it is left out)."""
        import json

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [
                item
                for item in self.received
                if json.loads(item[0])["type"] == event_type
                and json.loads(item[0])["data"]["object"]["id"] == object_id
            ]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {event_type} delivery within {timeout} s; got {len(self.received)}")


@pytest.fixture
def webhook_sink(stripe_peer: LocalStripe) -> Iterator[Sink]:
    sink = Sink()
    stripe_peer.webhook("hub", sink.url, WEBHOOK_SECRET)
    yield sink
    sink.server.shutdown()


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Celery tasks queued on commit run in the test (the worker's job in production)."""
    from config.celery import app as celery_app

    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = False
        celery_app.conf.task_eager_propagates = False
