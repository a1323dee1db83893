"""The deployment carries the SCORM content origin: Compose passes it to the app,
nginx serves its host from the same app without cookies either way, and the image
vendors the pinned scorm-again before collectstatic."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_passes_the_content_origin_and_keeps_package_files() -> None:
    env = {
        "PATH": os.environ["PATH"],
        "SECRET_KEY": "k",
        "FIELD_ENCRYPTION_KEYS": "f",
        "POSTGRES_PASSWORD": "p",
        "SCORM_CONTENT_ORIGIN": "https://hub-content.example.net",
    }
    result = subprocess.run(
        ["docker-compose", "-f", "deploy/docker-compose.yml", "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("migrate", "web", "worker", "beat"):
        assert services[name]["environment"]["SCORM_CONTENT_ORIGIN"] == "https://hub-content.example.net"
    assert services["web"]["environment"]["SCORM_MAX_PACKAGE_MB"] == "500"
    assert services["web"]["volumes"] == ["media:/var/lib/hub/media:rw"]


def _server_blocks(text: str) -> dict[str, str]:
    blocks = {}
    for match in re.finditer(r"^server \{\n(.*?)^\}", text, re.S | re.M):
        body = match.group(1)
        name = re.search(r"server_name ([^;]+);", body)
        assert name is not None
        blocks[name.group(1) + (" (443)" if "listen 443" in body else " (80)")] = body
    return blocks


def test_nginx_serves_the_content_host_from_the_app_without_cookies() -> None:
    blocks = _server_blocks((ROOT / "deploy" / "nginx.conf").read_text())
    content = blocks["hub-content.example.net (443)"]
    assert "proxy_pass http://hub_web;" in content
    assert "proxy_set_header Host $host;" in content
    assert 'proxy_set_header Cookie "";' in content
    assert "proxy_hide_header Set-Cookie;" in content
    assert "limit_except GET HEAD { deny all; }" in content
    assert "hub-content.example.net" in blocks["hub.example.org hub-content.example.net (80)"]


def test_the_image_vendors_scorm_again_before_collectstatic() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "FROM node:20-bookworm-slim AS static" in text
    assert "COPY package.json package-lock.json ./" in text
    assert "RUN bash scripts/vendor-static.sh" in text
    vendored = text.index("COPY --from=static --chown=hub:hub /src/scorm/static/scorm/scorm-again.min.js")
    assert vendored < text.index("collectstatic")
    ignored = (ROOT / ".dockerignore").read_text().split()
    for name in (".git", ".venv", "node_modules", ".env", "var", "scorm/static/scorm/scorm-again.min.js"):
        assert name in ignored
