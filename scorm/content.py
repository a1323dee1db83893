"""The content origin: package files and the player page, on their own host.

One codebase serves both hosts. A request whose Host is ``SCORM_CONTENT_ORIGIN``'s is
answered here, before sessions, authentication or CSRF run (the content host has
none of them): its Cookie header is dropped unread, it resolves only against
``scorm.content_urls``, and every response goes out with ``nosniff``, no cookies,
no referrer, and ``frame-ancestors`` limited to the app (and the LMS origins that
may frame the app: CSP checks every ancestor of a nested frame) and the content
origin itself (the SCO's frame nests in the player page).

Access is by signed, short-lived tokens in the path (django.core.signing): the
player page's names an attempt; the files' names the package's storage folder,
so every relative URL inside a package carries it along.
"""

from __future__ import annotations

import mimetypes
import posixpath
import uuid
from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core import signing
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotFound
from django.http.response import HttpResponseBase
from django.urls import Resolver404, resolve

CONTENT_URLCONF = "scorm.content_urls"
_FILES_SALT = "scorm.content.files"
_PLAYER_SALT = "scorm.content.player"
_COMMIT_SALT = "scorm.commit"

# What browsers must be told a file is (nosniff makes the type binding): the
# platform's mimetypes table varies by machine, so the types packages use are fixed here.
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".xhtml": "application/xhtml+xml",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/xml",
    ".xsd": "application/xml",
    ".dtd": "application/xml-dtd",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".ogg": "audio/ogg",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".vtt": "text/vtt",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".pdf": "application/pdf",
    ".swf": "application/x-shockwave-flash",
    ".wasm": "application/wasm",
}


def content_type_for(name: str) -> str:
    extension = posixpath.splitext(name)[1].lower()
    if extension in _TYPES:
        return _TYPES[extension]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


@cache
def _netloc(origin: str) -> str:
    return urlsplit(origin).netloc.lower()


def content_enabled() -> bool:
    return bool(settings.SCORM_CONTENT_ORIGIN)


def is_content_request(request: HttpRequest) -> bool:
    origin = settings.SCORM_CONTENT_ORIGIN
    return bool(origin) and request.META.get("HTTP_HOST", "").lower() == _netloc(origin)


def app_origin() -> str:
    parts = urlsplit(settings.PUBLIC_BASE_URL)
    return f"{parts.scheme}://{parts.netloc}"


def frame_ancestors() -> str:
    return " ".join(["'self'", app_origin(), *settings.FRAME_ANCESTORS])


# --- tokens ----------------------------------------------------------------------------


def files_token(*, storage_root: str, attempt_id: uuid.UUID) -> str:
    return signing.dumps({"r": storage_root, "a": str(attempt_id)}, salt=_FILES_SALT, compress=True)


def files_token_root(token: str) -> str | None:
    try:
        value = signing.loads(token, salt=_FILES_SALT, max_age=settings.SCORM_CONTENT_URL_TTL)
    except signing.BadSignature:  # SignatureExpired included
        return None
    root = value.get("r") if isinstance(value, dict) else None
    return root if isinstance(root, str) and root.startswith("scorm/") else None


def player_token(*, attempt_id: uuid.UUID) -> str:
    return signing.dumps({"a": str(attempt_id)}, salt=_PLAYER_SALT)


def player_token_attempt(token: str) -> uuid.UUID | None:
    return _attempt_of(token, _PLAYER_SALT, settings.SCORM_CONTENT_URL_TTL)


def commit_token(*, attempt_id: uuid.UUID) -> str:
    return signing.dumps({"a": str(attempt_id)}, salt=_COMMIT_SALT)


def commit_token_attempt(token: str) -> uuid.UUID | None:
    return _attempt_of(token, _COMMIT_SALT, settings.SCORM_COMMIT_TOKEN_TTL)


def _attempt_of(token: str, salt: str, max_age: int) -> uuid.UUID | None:
    try:
        value = signing.loads(token, salt=salt, max_age=max_age)
        return uuid.UUID(value["a"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


def player_url(*, attempt_id: uuid.UUID) -> str:
    return f"{settings.SCORM_CONTENT_ORIGIN}/p/{player_token(attempt_id=attempt_id)}/"


def files_url(*, storage_root: str, attempt_id: uuid.UUID, path: str) -> str:
    token = files_token(storage_root=storage_root, attempt_id=attempt_id)
    return f"/c/{token}/{path}"


# --- serving ---------------------------------------------------------------------------


def safe_member_path(path: str) -> str | None:
    """A package-relative path, normalised; None for anything that could leave the folder."""
    if not path or "\\" in path or "\x00" in path or path.startswith("/") or path.endswith("/"):
        return None
    normal = posixpath.normpath(path)
    if normal.startswith("../") or normal == ".." or normal.startswith("/") or ":" in normal.split("/")[0]:
        return None
    return normal


def package_file(request: HttpRequest, token: str, path: str) -> HttpResponseBase:
    from scorm.storage import package_storage

    root = files_token_root(token)
    if root is None:
        return HttpResponse(
            "This link to the course has expired or is not valid; open the activity again.",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    member = safe_member_path(path)
    if member is None:
        raise Http404("No such file in this package.")
    storage = package_storage()
    name = root + member
    if not storage.exists(name):
        raise Http404("No such file in this package.")
    response = FileResponse(storage.open(name, "rb"), content_type=content_type_for(member))
    response["Cache-Control"] = "private, max-age=3600"
    return response


@cache
def _runtime_file(name: str) -> bytes | None:
    found = finders.find(f"scorm/{name}")
    if not found:
        return None
    with open(found if isinstance(found, str) else found[0], "rb") as handle:
        return handle.read()


RUNTIME_FILES = {"scorm-again.min.js", "player.js"}


def runtime_file(request: HttpRequest, name: str) -> HttpResponse:
    body = _runtime_file(name) if name in RUNTIME_FILES else None
    if body is None:
        raise Http404("No such runtime file (run `make install` to vendor scorm-again).")
    response = HttpResponse(body, content_type=content_type_for(name))
    response["Cache-Control"] = "public, max-age=3600"
    return response


def _harden(response: HttpResponseBase) -> HttpResponseBase:
    response.cookies.clear()
    if "Set-Cookie" in response:
        del response["Set-Cookie"]
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    response["Cross-Origin-Resource-Policy"] = "same-site"
    if "Content-Security-Policy" not in response:
        response["Content-Security-Policy"] = f"frame-ancestors {frame_ancestors()}"
    return response


class ContentOriginMiddleware:
    """Answers the content host's requests (see the module docstring); passes every
    other request on untouched."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not is_content_request(request):
            return self.get_response(request)
        # Whatever a browser or a proxy sends, the content host reads no cookie.
        request.META.pop("HTTP_COOKIE", None)
        request.urlconf = CONTENT_URLCONF
        try:
            match = resolve(request.path_info, urlconf=CONTENT_URLCONF)
        except Resolver404:
            return _harden(HttpResponseNotFound("Not found.", content_type="text/plain; charset=utf-8"))
        if request.method not in ("GET", "HEAD"):
            return _harden(
                HttpResponse("Only GET here.", status=405, content_type="text/plain; charset=utf-8")
            )
        try:
            response: Any = match.func(request, *match.args, **match.kwargs)
        except Http404 as exc:
            response = HttpResponseNotFound(str(exc), content_type="text/plain; charset=utf-8")
        return _harden(response)
