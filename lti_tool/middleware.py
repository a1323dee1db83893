"""Cookies that survive inside an LMS iframe.

A tool page framed by Canvas/Moodle is a third-party context: browsers drop
SameSite=Lax cookies there, and with third-party cookies blocked they keep only
partitioned ones (CHIPS). For LTI paths and for sessions started by a launch, we
rewrite the session and CSRF cookies to ``SameSite=None; Secure; Partitioned``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

LTI_SESSION_FLAG = "lti_framed"
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


def frame_cookies_possible(request: HttpRequest) -> bool:
    """Secure cookies need https, except on loopback, which browsers treat as a
    secure context (dev server and tests)."""
    host = request.get_host().rsplit(":", 1)[0] if request.get_host() else ""
    return request.is_secure() or host in _LOOPBACK_HOSTS or host.endswith(".localhost")


def mark_partitioned(response: HttpResponse, name: str) -> None:
    morsel = response.cookies.get(name)
    if morsel is None:
        return
    morsel["secure"] = True
    # Python 3.11's Morsel knows no "Partitioned" attribute; the SameSite value is
    # written verbatim, so this yields "SameSite=None; Partitioned".
    morsel["samesite"] = "None; Partitioned"


class FramedCookieMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.lti_prefix = "/lti/"

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        # Only look into a session the request already loaded: loading it here would
        # add a query to every page, and an unloaded session sets no cookie anyway.
        framed = request.path.startswith(self.lti_prefix) or bool(
            session is not None and session.accessed and session.get(LTI_SESSION_FLAG)
        )
        if framed and settings.LTI_PARTITIONED_COOKIES and frame_cookies_possible(request):
            for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
                if name in response.cookies:
                    mark_partitioned(response, name)
        return response
