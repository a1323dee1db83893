"""A Radicale 3.9 CalDAV server on loopback, started as a subprocess for a test.

Plain-text htpasswd (Radicale supports ``plain`` without extra packages; bcrypt
would need the bcrypt module), a temporary storage folder, rights ``owner_only``
(each user sees only /<user>/...).

API
---
::

    with RadicaleServer(users={"tutor": "s3cret"}) as server:
        server.base_url                              # http://127.0.0.1:<port>
        url = server.make_calendar("tutor", "s3cret", "sessions")   # MKCALENDAR; the collection URL
        server.get(url + "x.ics", "tutor", "s3cret")  # requests.Response
        server.objects(url, "tutor", "s3cret")        # {href: ics text} of the collection (PROPFIND + GET)

The test itself talks to Radicale with ``requests`` (a test peer's client, not the
product's outbound client); the product reaches it through tutoring_core/http.py.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

import requests

MKCALENDAR_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop>
    <D:displayname>Tutoring</D:displayname>
    <C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RadicaleServer:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="radicale-"))
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RadicaleServer:
        htpasswd = self._dir / "users"
        htpasswd.write_text("".join(f"{user}:{password}\n" for user, password in self.users.items()))
        (self._dir / "storage").mkdir()
        self._log = open(self._dir / "radicale.log", "wb")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "radicale",
                "--config",
                "",
                "--server-hosts",
                f"127.0.0.1:{self.port}",
                "--auth-type",
                "htpasswd",
                "--auth-htpasswd-filename",
                str(htpasswd),
                "--auth-htpasswd-encryption",
                "plain",
                "--auth-delay",
                "0",
                "--rights-type",
                "owner_only",
                "--storage-filesystem-folder",
                str(self._dir / "storage"),
                "--logging-level",
                "warning",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Radicale exited: {(self._dir / 'radicale.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Radicale did not start within 30 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RadicaleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def make_calendar(self, user: str, password: str, name: str) -> str:
        url = f"{self.base_url}/{user}/{name}/"
        response = requests.request(
            "MKCALENDAR",
            url,
            data=MKCALENDAR_BODY,
            auth=(user, password),
            headers={"Content-Type": "application/xml; charset=utf-8"},
            timeout=10,
        )
        assert response.status_code == 201, (response.status_code, response.text)
        return url

    def get(self, url: str, user: str, password: str) -> requests.Response:
        return requests.get(url, auth=(user, password), timeout=10)

    def objects(self, collection_url: str, user: str, password: str) -> dict[str, str]:
        """Every calendar object in the collection, by href."""
        response = requests.request(
            "PROPFIND",
            collection_url,
            auth=(user, password),
            headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
            data=b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>',
            timeout=10,
        )
        assert response.status_code == 207, (response.status_code, response.text)
        hrefs = [
            el.text or ""
            for el in ElementTree.fromstring(response.content).iter("{DAV:}href")
            if (el.text or "").endswith(".ics")
        ]
        return {href: self.get(self.base_url + href, user, password).text for href in hrefs}
