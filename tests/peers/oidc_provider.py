"""OIDC peers on loopback for the tests.

- ``mock_provider``: oidc-provider-mock (a real authlib-based provider) in a thread.
- ``ForgeProvider``: a minimal provider whose token endpoint hands out ID tokens
  the test forged (wrong issuer, expired, alg none, ...). The relying party under
  test talks to it over real HTTP and verifies with its real code; only the
  token's content is hostile.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import werkzeug.serving
from joserfc.jwk import RSAKey
from werkzeug.wrappers import Request, Response


class ForgeProvider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "forge-1", "use": "sig"})
        self.server: werkzeug.serving.BaseWSGIServer | None = None
        self.next_token: Callable[[dict[str, str]], dict[str, Any]] | None = None
        self.token_requests: list[dict[str, str]] = []
        self.hits: dict[str, int] = {}
        self.key_set_override: dict[str, Any] | None = None

    @property
    def issuer(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    def rotate(self, kid: str) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        if request.path == "/.well-known/openid-configuration":
            body: Any = {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        elif request.path == "/jwks":
            body = self.key_set_override or {"keys": [self.key.as_dict(private=False)]}
        elif request.path == "/token" and request.method == "POST":
            form = dict(request.form)
            self.token_requests.append(form)
            assert self.next_token is not None, "test did not queue a token"
            body = self.next_token(form)
        else:
            return Response("not found", status=404)(environ, start_response)
        return Response(json.dumps(body), content_type="application/json")(environ, start_response)


@contextmanager
def forge_provider() -> Iterator[ForgeProvider]:
    forge = ForgeProvider()
    server = werkzeug.serving.make_server("127.0.0.1", 0, forge, threaded=True)
    forge.server = server
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield forge
    finally:
        server.shutdown()
        thread.join(2)
