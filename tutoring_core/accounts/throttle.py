"""Password sign-in throttling (django-axes) and the audit of failed sign-ins.

Axes sits first in AUTHENTICATION_BACKENDS and counts failures of Django's
``authenticate()``: the hub's sign-in page and the admin's. LTI launches, SSO and
other external sign-ins go through ``accounts.api.session_login`` (``login()``
without ``authenticate()``), so axes never sees them and never refuses them.

Two limits over one cool-off (settings, "[accounts: sign-in]"):
``SIGNIN_FAILURES_PER_ACCOUNT`` failures for one username from anywhere, and
``SIGNIN_FAILURES_PER_ADDRESS`` failures from one address for any usernames (higher:
a school's whole network can share one address).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off
from django.conf import settings
from django.db.models import Max, Sum
from django.http import HttpRequest


class SignInThrottleHandler(AxesDatabaseHandler):
    """Axes' database handler with a limit per account and another per address.

    Axes compares one number with one limit (AXES_FAILURE_LIMIT, the per-account
    one); ``get_failures`` reports the address's failures shifted by the difference
    of the two limits, so each lockout starts exactly at its own limit."""

    def get_failures(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
        per_account, per_address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        shift = settings.SIGNIN_FAILURES_PER_ADDRESS - settings.SIGNIN_FAILURES_PER_ACCOUNT
        return max(per_account, per_address - shift)

    # Successful sign-ins are in the hub's audit log (auth.sign_in); axes keeps only
    # failures. Doing nothing here also keeps axes off every LTI launch's and SSO
    # sign-in's queries. Failures are not reset by a success: someone who knows one
    # password could otherwise reset an address's count between guesses at others.
    def user_logged_in(self, sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
        return None

    def user_logged_out(self, sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
        return None


def sign_in_retry_at(request: HttpRequest, username: str | None) -> dt.datetime | None:
    """When the failures that locked this request's account or address run out: the
    latest counted failure of either, plus the cool-off. None when nothing is counted."""
    from axes.models import AccessAttempt

    cool_off = get_cool_off(request)
    if cool_off is None:
        return None
    address = getattr(request, "axes_ip_address", None)
    latest = None
    for attempts in (
        AccessAttempt.objects.filter(username=username),
        AccessAttempt.objects.filter(ip_address=address),
    ):
        found = attempts.aggregate(latest=Max("attempt_time"))["latest"]
        if found is not None and (latest is None or found > latest):
            latest = found
    return None if latest is None else latest + cool_off


def attempted_username(request: HttpRequest, credentials: dict[str, Any] | None = None) -> str | None:
    """The username axes counts a failure against (AXES_USERNAME_CALLABLE): as typed,
    cut to its column's 255 characters. Django's sign-in forms do not enforce the
    username's max_length before authenticating, and a longer value made PostgreSQL
    refuse axes' row (a 500)."""
    field = str(settings.AXES_USERNAME_FORM_FIELD)  # type: ignore[misc]  # set by axes.conf
    value = credentials.get(field) if credentials else request.POST.get(field)
    return None if value is None else str(value)[:255]
