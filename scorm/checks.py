"""System checks (Django's checks framework) for the SCORM content origin.

Outside DEBUG an empty SCORM_CONTENT_ORIGIN switches playback off (the player page
answers 503), which is easy to miss until a student opens a course; these say so
when `manage.py check` or `migrate` runs (the deploy's migrate job). The settings
module already refuses a content origin on the app's own host; the checks repeat
it in case settings were changed after start-up, and add what the settings cannot
know: package code served over http beside an https app (the browser blocks the
frame), a content host that shares a parent domain with the app (package code could
then set cookies for that domain, which the app would receive), and the scorm-again
runtime missing from the static files (the image's build step vendors it).
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.checks import Error, Tags, Warning, register

RUNTIME = "scorm/scorm-again.min.js"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _shared_parent(app_host: str, content_host: str) -> str:
    """The parent domain both hosts sit under ("" when none): the last two labels
    they have in common, or one host itself when the other is under it. A heuristic
    without the public suffix list, so the warning names the domain to judge."""
    if _is_ip(app_host) or _is_ip(content_host) or app_host == content_host:
        return ""
    if content_host.endswith("." + app_host):
        return app_host
    if app_host.endswith("." + content_host):
        return content_host
    app_labels, content_labels = app_host.split("."), content_host.split(".")
    if len(app_labels) < 2 or len(content_labels) < 2:
        return ""
    parent = ".".join(app_labels[-2:])
    return parent if parent == ".".join(content_labels[-2:]) else ""


@register(Tags.security)
def check_content_origin(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    if settings.DEBUG:
        return []  # the embedded default (127.0.0.2:8001) is for development
    origin = settings.SCORM_CONTENT_ORIGIN
    app = urlsplit(settings.PUBLIC_BASE_URL)
    if not origin:
        return [
            Warning(
                "SCORM playback is off: SCORM_CONTENT_ORIGIN is not set, so the player page answers 503.",
                hint="Give package files a host name of their own (e.g. https://hub-content.example.net), "
                "point it at this same app (deploy/nginx.conf, 'content origin') and set "
                "SCORM_CONTENT_ORIGIN to it.",
                id="scorm.W001",
            )
        ]
    content = urlsplit(origin)
    app_host, content_host = (app.hostname or "").lower(), (content.hostname or "").lower()
    if content_host == app_host:
        return [
            Error(
                f"SCORM_CONTENT_ORIGIN ({origin}) is on the app's own host ({app_host}): package code "
                "would run with the app's cookies and could read its pages.",
                hint="Use a separate host name for package files (cookies are per host, not per port).",
                id="scorm.E001",
            )
        ]
    found: list[Any] = []
    if app.scheme == "https" and content.scheme != "https":
        found.append(
            Warning(
                f"SCORM_CONTENT_ORIGIN ({origin}) is plain http while the app is https: browsers block "
                "the course frame as mixed content.",
                hint="Serve the content host over https (deploy/nginx.conf has its server block).",
                id="scorm.W002",
            )
        )
    parent = _shared_parent(app_host, content_host)
    if parent:
        found.append(
            Warning(
                f"SCORM_CONTENT_ORIGIN's host ({content_host}) and the app's ({app_host}) share the "
                f"domain {parent}: unless {parent} is a public suffix, package code can set cookies "
                "for it that the app then receives (cookie tossing).",
                hint="Give the content origin a registrable domain of its own (e.g. hub-content.example.net "
                "beside hub.example.org).",
                id="scorm.W003",
            )
        )
    if not finders.find(RUNTIME):
        found.append(
            Warning(
                f"The SCORM runtime ({RUNTIME}) is not in the static files: the player cannot start.",
                hint="Run scripts/vendor-static.sh (npm ci, pinned in package-lock.json); the image "
                "build does this in its 'static' stage.",
                id="scorm.W004",
            )
        )
    return found
