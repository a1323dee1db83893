from __future__ import annotations

import datetime as dt
from typing import Any

from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.http import HttpRequest
from django.utils import timezone

# Django writes last_login at every sign-in. A repeat LTI launch signs the person
# in again each time they open the tool from the LMS, so that UPDATE sits on the
# hot path; admin pages show last_login to the minute and nothing in the hub
# decides anything finer from it, so a value this fresh is left as it is.
# (Django's password-reset tokens also hash last_login: the set-password link of
# `tenant_create --admin-email` stops working at the first sign-in, as it should.)
LAST_LOGIN_REFRESH = dt.timedelta(minutes=5)

# django.contrib.auth connects update_last_login under this uid; ours takes the
# same uid, so whichever app's ready() runs second, only one of them stays.
_LAST_LOGIN_UID = "update_last_login"


def update_last_login(sender: type[Any], request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    from tutoring_core.accounts.models import User

    now = timezone.now()
    last = user.last_login
    # A last_login ahead of the clock (the clock stepped back) is rewritten, not trusted.
    if last is not None and dt.timedelta(0) <= now - last <= LAST_LOGIN_REFRESH:
        return
    User.objects.filter(pk=user.pk).update(last_login=now)
    user.last_login = now


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
        user_logged_in.disconnect(dispatch_uid=_LAST_LOGIN_UID)
        user_logged_in.connect(update_last_login, dispatch_uid=_LAST_LOGIN_UID)
        user_login_failed.connect(sign_in_failed_audit, dispatch_uid="accounts.sign_in_failed_audit")
