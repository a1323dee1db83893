from __future__ import annotations

import datetime as dt
from typing import Any

from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest
from django.utils import timezone

# Django writes last_login at every sign-in. A repeat LTI launch signs the person
# in again each time they open the tool from the LMS, so that UPDATE sits on the
# hot path; admin pages show last_login to the minute and nothing in the hub
# decides anything finer from it, so a value this fresh is left as it is.
# (Django's password-reset tokens also hash last_login; the hub has no reset flow.)
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


class AccountsConfig(AppConfig):
    name = "tutoring_core.accounts"
    label = "accounts"
    verbose_name = "Tenants, people and access"

    def ready(self) -> None:
        user_logged_in.disconnect(dispatch_uid=_LAST_LOGIN_UID)
        user_logged_in.connect(update_last_login, dispatch_uid=_LAST_LOGIN_UID)
