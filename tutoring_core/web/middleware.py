from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# Pages that must never be framed: a framed sign-in or admin page is a
# clickjacking target. Everything else may be framed by the LMS origins the
# deployment allows, because teachers and students use the hub inside Canvas,
# Moodle, Schoology... iframes.
NEVER_FRAMED_PREFIXES = ("/admin/", "/signin/")


class FramePolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" in response or "X-Frame-Options" in response:
            return response  # the view chose its own policy
        if request.path.startswith(NEVER_FRAMED_PREFIXES):
            response["X-Frame-Options"] = "DENY"
            response["Content-Security-Policy"] = "frame-ancestors 'none'"
        else:
            ancestors = " ".join(["'self'", *settings.FRAME_ANCESTORS])
            response["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
        return response
