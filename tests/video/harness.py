"""A live ASGI server (uvicorn in a thread, the project's asgi application) and a coturn
started for one test, both on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def asgi_server() -> Iterator[str]:
    """The hub's ASGI application (HTTP pages + Channels websockets) on a free port."""
    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator
    from django.core.asgi import get_asgi_application

    from tutoring_core.video.routing import websocket_urlpatterns

    # Built here, after the test's settings (static files from the finders, TURN), since
    # Django loads its middleware when the handler is made.
    application = ProtocolTypeRouter(
        {
            "http": get_asgi_application(),
            "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
    # A channel layer made by an earlier server's event loop (channels caches one per
    # alias) cannot receive on this server's loop: the Redis layer refuses two loops.
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host="127.0.0.1",
            port=port,
            ws="websockets-sansio",
            lifespan="off",
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        channel_layers.backends.clear()


@dataclass(frozen=True)
class Turn:
    port: int
    secret: str


@contextmanager
def coturn(secret: str = "turn-test-secret-0123456789") -> Iterator[Turn]:  # noqa: S107 (a test server's)
    """Debian's coturn with the REST-API shared secret, listening on 127.0.0.1 (UDP and TCP)."""
    binary = shutil.which("turnserver")
    assert binary, "coturn is missing: run `make install-system-test-deps`"
    port = free_port()
    relay_low = free_port(socket.SOCK_DGRAM)
    with tempfile.TemporaryDirectory() as folder:
        conf = Path(folder) / "turnserver.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listening-port={port}",
                    "listening-ip=127.0.0.1",
                    "relay-ip=127.0.0.1",
                    f"min-port={max(relay_low - 50, 20000) if relay_low > 20100 else 40000}",
                    f"max-port={max(relay_low - 50, 20000) + 400 if relay_low > 20100 else 40400}",
                    "use-auth-secret",
                    f"static-auth-secret={secret}",
                    "realm=hub.test",
                    "allow-loopback-peers",  # else 403 Forbidden IP on loopback
                    "no-tls",
                    "no-dtls",
                    "no-cli",
                    "fingerprint",
                    f"pidfile={folder}/turn.pid",
                    f"log-file={folder}/turn.log",
                    "simple-log",
                ]
            )
            + "\n"
        )
        process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            for _ in range(100):
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            else:
                raise AssertionError("coturn did not start")
            yield Turn(port=port, secret=secret)
        finally:
            process.terminate()
            process.wait(10)
