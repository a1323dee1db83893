from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest

SIGN_IN_FAILED = "auth.sign_in_failed"


def sign_in_failed_audit(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """Every failed password sign-in, in the audit log: who was tried (the username
    as typed; Django has already masked the password), from where, and whether axes
    refused it unchecked because of a lockout. Connected to ``user_login_failed``."""
    from tutoring_core.accounts.api import client_ip
    from tutoring_core.accounts.models import User
    from tutoring_core.accounts.services import audit_record

    username = str(credentials.get(User.USERNAME_FIELD) or "")[:150]
    # Axes' backend marks a request it refused unchecked (locked out) before the
    # signal; its handler sets the failure count only when it counted the attempt.
    # Both orders of the signal's receivers read the same.
    locked_out = bool(getattr(request, "axes_locked_out", False)) and (
        getattr(request, "axes_failures_since_start", None) is None
    )
    user = User.objects.select_related("tenant").filter(username=username).first() if username else None
    audit_record(
        tenant=user.tenant if user is not None else None,
        actor=None,
        action=SIGN_IN_FAILED,
        target=user,
        ip_address=client_ip(request) if request is not None else None,
        details={
            "username": username,
            "path": request.path if request is not None else "",
            "refused": "locked_out" if locked_out else "bad_credentials",
        },
    )


class AccountsConfig(AppConfig):
    name = "tutoring_core.accounts"
    label = "accounts"
    verbose_name = "Tenants, people and access"

    def ready(self) -> None:
        # last_login is Django's own receiver (one UPDATE per sign-in): a receiver that
        # skipped it within 5 minutes made no difference bench/lti_launch.py could
        # measure (issue 13), so it went.
        user_login_failed.connect(sign_in_failed_audit, dispatch_uid="accounts.sign_in_failed_audit")
