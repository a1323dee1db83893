"""localstripe 1.15 (a stateful Stripe API) on loopback, started as a subprocess.

Its own command line binds every interface (``::``) and reloads /tmp/localstripe.pickle
at start; this wrapper runs its aiohttp app bound to 127.0.0.1 on a free port, starts
from scratch and never writes the pickle (several test processes may run at once).

API
---
::

    with LocalStripe() as peer:
        peer.base_url                # http://127.0.0.1:<port>: settings.STRIPE_API_BASE
        peer.reset()                 # DELETE /_config/data, between tests
        peer.webhook("hub", url, secret)   # signed deliveries of every event to url
        peer.authenticate(intent_id, client_secret, success=True)   # the 3-D Secure step

The test talks to localstripe's /_config and /_authenticate endpoints with ``requests``
(the peer's own controls, which a browser would drive); the product reaches it only
through tutoring_core/http.py.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.peers.radicale import free_port

_RUN = """
import sys
from aiohttp import web
from localstripe import server
from localstripe.resources import store
store.dump_to_disk = lambda: None   # no shared /tmp pickle
# localstripe 1.15 answers 400 to Stripe's ``created`` list filter on PaymentIntents and
# refunds; here it accepts and ignores it (the reconciliation filters what comes back too),
# so the hub may send the filter real Stripe honours.
from localstripe import resources
def _ignoring_created(cls):
    original = cls._api_list_all.__func__
    def list_all(klass, url, created=None, **kwargs):
        return original(klass, url, **kwargs)
    cls._api_list_all = classmethod(list_all)
for _cls in (resources.PaymentIntent, resources.Refund):
    _ignoring_created(_cls)
web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


class LocalStripe:
    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="localstripe-"))
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalStripe:
        self._log = open(self._dir / "localstripe.log", "wb")
        self._process = subprocess.Popen(
            [sys.executable, "-c", _RUN, str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self._dir,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("localstripe exited: " + (self._dir / "localstripe.log").read_text())
            try:
                requests.get(self.base_url + "/v1/customers", auth=("sk_test_hub", ""), timeout=2)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("localstripe did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
        self._log.close()

    def __enter__(self) -> LocalStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        requests.delete(self.base_url + "/_config/data", timeout=10).raise_for_status()

    def webhook(self, name: str, url: str, secret: str) -> None:
        requests.post(
            f"{self.base_url}/_config/webhooks/{name}", data={"url": url, "secret": secret}, timeout=10
        ).raise_for_status()

    def authenticate(self, intent_id: str, client_secret: str, *, success: bool = True) -> None:
        requests.post(
            f"{self.base_url}/v1/payment_intents/{intent_id}/_authenticate",
            data={
                "client_secret": client_secret,
                "success": "true" if success else "false",
                "key": "pk_test_hub",
            },
            timeout=10,
        ).raise_for_status()
