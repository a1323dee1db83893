"""Sign-in pages beside SignInView: the lockout answer and the set-password page."""

from __future__ import annotations

import math
from typing import Any

from axes.helpers import get_client_username
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse, reverse_lazy
from django.utils import timezone

from tutoring_core.accounts.api import audit_record, client_ip
from tutoring_core.accounts.throttle import sign_in_retry_at


def locked_out(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """Axes' answer to a locked-out password sign-in (AXES_LOCKOUT_CALLABLE): 429 with
    a page that says why and when to try again, and the same in Retry-After."""
    retry_at = sign_in_retry_at(request, get_client_username(request, credentials))
    seconds = max(0, math.ceil((retry_at - timezone.now()).total_seconds())) if retry_at else 0
    response = render(
        request,
        "web/signin_locked.html",
        {
            "retry_at": retry_at,
            "minutes": max(1, math.ceil(seconds / 60)),
            "back_url": request.path,
        },
        status=429,
    )
    if seconds:
        response["Retry-After"] = str(seconds)
    return response


class SetPasswordView(auth_views.PasswordResetConfirmView):
    """The one-time page a new district admin sets a password on (the link from
    `manage.py tenant_create --admin-email`). Django's reset machinery: the token
    leaves the URL for the session at once, and stops working when a password is
    set or after PASSWORD_RESET_TIMEOUT. A dead link answers 410 with a page that
    says what to do."""

    template_name = "web/set_password.html"
    success_url = reverse_lazy("web:login")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        user = form.user
        audit_record(
            tenant=user.tenant,
            actor=user,
            action="auth.password_set",
            target=user,
            ip_address=client_ip(self.request),
            details={"method": "set_password_link"},
        )
        messages.success(self.request, f"Your password is set. Sign in as {user.get_username()}.")
        return response

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        if not context.get("validlink"):
            kwargs["status"] = 410
        context["signin_url"] = reverse("web:login")
        context["link_hours"] = settings.SET_PASSWORD_LINK_HOURS
        return super().render_to_response(context, **kwargs)
