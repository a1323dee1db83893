"""Password sign-in resists guessing (issue 11, point 4): django-axes throttles
/signin/ and /admin/login/ per account and per address, the lockout is a 429 page
that says when to retry, every failure is in the audit log, and external sign-ins
(LTI, SSO: accounts.api.session_login) are neither counted nor refused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from axes.models import AccessAttempt, AccessLog
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.conftest import Personas
from tests.factories import PASSWORD, UserFactory
from tutoring_core.accounts.api import session_login
from tutoring_core.accounts.models import AuditLog, User

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
SIGNIN = "/signin/"
ADMIN_LOGIN = "/admin/login/"


@pytest.fixture
def limits(settings: Any) -> None:
    settings.SIGNIN_FAILURES_PER_ACCOUNT = 3
    settings.AXES_FAILURE_LIMIT = 3
    settings.SIGNIN_FAILURES_PER_ADDRESS = 5
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=10)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def sign_in(client: Any, username: str, password: str, ip: str, path: str = SIGNIN) -> Any:
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


def failures() -> list[tuple[str, str | None, str, str]]:
    return [
        (entry.details["username"], entry.ip_address, entry.details["refused"], entry.details["path"])
        for entry in AuditLog.objects.filter(action="auth.sign_in_failed").order_by("id")
    ]


def test_settings_default_to_five_per_account_thirty_per_address_fifteen_minutes() -> None:
    from django.conf import settings

    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert "tutoring_core.accounts.backends.TenantAwareModelBackend" in settings.AUTHENTICATION_BACKENDS
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert (settings.SIGNIN_FAILURES_PER_ACCOUNT, settings.SIGNIN_FAILURES_PER_ADDRESS) == (5, 30)
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == dt.timedelta(minutes=15)
    assert settings.AXES_LOCKOUT_PARAMETERS == ["username", "ip_address"]


def test_account_locked_after_n_failures_from_any_address_then_recovers(
    client: Any, personas: Personas, limits: None, clock: time_machine.Traveller
) -> None:
    # Three addresses: the per-account count follows the username, not the address.
    for attempt, ip in enumerate(["10.0.0.1", "10.0.0.2"], start=1):
        response = sign_in(client, "owner", f"guess-{attempt}", ip)
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    locked = sign_in(client, "owner", "guess-3", "10.0.0.3")
    assert locked.status_code == 429
    assert locked["Retry-After"] == "600"
    page = locked.content.decode()
    assert "Too many failed sign-ins" in page
    assert "Try again in about 10 minutes, after" in page
    assert '<time datetime="2026-03-02T14:10:00+00:00">14:10 UTC</time>' in page

    # Five minutes on, even the right password is refused unchecked, from anywhere,
    # and the refusal does not push the end of the lockout back.
    clock.shift(dt.timedelta(minutes=5))
    refused = sign_in(client, "owner", PASSWORD, "10.0.0.9")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "300"
    assert "_auth_user_id" not in client.session
    # Another account from the same addresses is untouched.
    assert sign_in(client, "bystander", PASSWORD, "10.0.0.1").status_code == 302
    client.logout()

    clock.shift(dt.timedelta(minutes=5, seconds=1))
    recovered = sign_in(client, "owner", PASSWORD, "10.0.0.9")
    assert recovered.status_code == 302
    assert recovered["Location"] == reverse("web:home")
    assert client.session["_auth_user_id"] == str(personas.owner.pk)

    assert failures() == [
        ("owner", "10.0.0.1", "bad_credentials", SIGNIN),
        ("owner", "10.0.0.2", "bad_credentials", SIGNIN),
        ("owner", "10.0.0.3", "bad_credentials", SIGNIN),
        ("owner", "10.0.0.9", "locked_out", SIGNIN),
    ]
    first = AuditLog.objects.filter(action="auth.sign_in_failed").order_by("id").first()
    assert first is not None
    assert (first.tenant_id, first.target_type, first.target_id, first.actor_id, first.actor_label) == (
        personas.tenant.pk,
        "accounts.user",
        str(personas.owner.pk),
        None,
        "system",
    )
    assert list(
        AuditLog.objects.filter(action="auth.sign_in").order_by("id").values_list("actor_id", flat=True)
    ) == [
        personas.same_tenant_other.pk,
        personas.owner.pk,
    ]


def test_address_locked_after_n_failures_for_any_usernames_then_recovers(
    client: Any, personas: Personas, limits: None, clock: time_machine.Traveller
) -> None:
    ip = "192.0.2.7"
    for n in range(1, 5):
        assert sign_in(client, f"nobody-{n}", "guess", ip).status_code == 200
    assert sign_in(client, "nobody-5", "guess", ip).status_code == 429
    # The address is closed for every account, even with the right password...
    assert sign_in(client, "owner", PASSWORD, ip).status_code == 429
    assert "_auth_user_id" not in client.session
    # ...while the same account from another address signs in.
    assert sign_in(client, "owner", PASSWORD, "192.0.2.8").status_code == 302
    client.logout()

    clock.shift(dt.timedelta(minutes=10, seconds=1))
    assert sign_in(client, "owner", PASSWORD, ip).status_code == 302

    assert failures() == [
        *[(f"nobody-{n}", ip, "bad_credentials", SIGNIN) for n in range(1, 6)],
        ("owner", ip, "locked_out", SIGNIN),
    ]
    unknown = AuditLog.objects.filter(action="auth.sign_in_failed").order_by("id").first()
    assert unknown is not None
    assert (unknown.tenant_id, unknown.target_type, unknown.target_id) == (None, "", "")


def test_admin_login_is_throttled_and_audited(
    client: Any, personas: Personas, limits: None, clock: time_machine.Traveller
) -> None:
    admin = personas.other_tenant  # a district admin (staff) of South
    for _ in range(2):
        response = sign_in(client, admin.username, "guess", "10.1.1.1", ADMIN_LOGIN)
        assert response.status_code == 200
        assert "Please enter the correct username and password" in response.content.decode()
    locked = sign_in(client, admin.username, "guess", "10.1.1.1", ADMIN_LOGIN)
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert f'<a href="{ADMIN_LOGIN}">Back to sign in</a>' in locked.content.decode()
    assert sign_in(client, admin.username, PASSWORD, "10.1.1.2", ADMIN_LOGIN).status_code == 429
    assert failures() == [
        ("south-admin", "10.1.1.1", "bad_credentials", ADMIN_LOGIN),
        ("south-admin", "10.1.1.1", "bad_credentials", ADMIN_LOGIN),
        ("south-admin", "10.1.1.1", "bad_credentials", ADMIN_LOGIN),
        ("south-admin", "10.1.1.2", "locked_out", ADMIN_LOGIN),
    ]
    assert {e.tenant_id for e in AuditLog.objects.filter(action="auth.sign_in_failed")} == {
        personas.other_tenant_obj.pk
    }
    clock.shift(dt.timedelta(minutes=10, seconds=1))
    assert sign_in(client, admin.username, PASSWORD, "10.1.1.2", ADMIN_LOGIN).status_code == 302


def test_no_password_is_kept_anywhere(client: Any, personas: Personas, limits: None) -> None:
    sign_in(client, "owner", "hunter2-secret", "10.2.2.2")
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address, attempt.failures_since_start) == ("owner", "10.2.2.2", 1)
    assert "hunter2-secret" not in attempt.post_data
    entry = AuditLog.objects.get(action="auth.sign_in_failed")
    assert "hunter2-secret" not in str(entry.details)
    assert entry.details == {"username": "owner", "path": SIGNIN, "refused": "bad_credentials"}


def test_lockout_answers_4xx_for_odd_requests_too(client: Any, personas: Personas, limits: None) -> None:
    for _ in range(3):
        sign_in(client, "owner", "guess", "10.3.3.3")
    # No username field at all, an AJAX caller, a huge username: still the 429 page.
    assert client.post(SIGNIN, {"password": "x"}, REMOTE_ADDR="10.3.3.3").status_code == 200
    ajax = client.post(
        SIGNIN,
        {"username": "owner", "password": "x"},
        REMOTE_ADDR="10.3.3.4",
        HTTP_X_REQUESTED_WITH="XMLHttpRequest",
    )
    assert ajax.status_code == 429
    assert sign_in(client, "o" * 5000, "x", "10.3.3.5").status_code == 200
    assert AccessAttempt.objects.filter(username="o" * 255).count() == 1
    # An address the server could not read is counted and audited as no address.
    assert sign_in(client, "owner", "x", "not-an-address").status_code == 429
    assert AuditLog.objects.filter(action="auth.sign_in_failed").order_by("id").last().ip_address is None  # type: ignore[union-attr]


def test_external_sign_ins_are_neither_counted_nor_refused(
    personas: Personas, client: Any, limits: None, clock: time_machine.Traveller
) -> None:
    for _ in range(3):
        sign_in(client, "owner", "guess", "10.4.4.4")
    assert sign_in(client, "owner", PASSWORD, "10.4.4.5").status_code == 429
    attempts_before = list(
        AccessAttempt.objects.values_list("username", "ip_address", "failures_since_start")
    )

    # An LTI launch or an SSO sign-in: accounts.api.session_login, from the locked address.
    request = RequestFactory().post("/lti/launch/", REMOTE_ADDR="10.4.4.4")
    SessionMiddleware(lambda r: None).process_request(request)  # type: ignore[arg-type]
    with CaptureQueriesContext(connection) as queries:
        session_login(request, User.objects.select_related("tenant").get(pk=personas.owner.pk), method="lti")
    assert request.session["_auth_user_id"] == str(personas.owner.pk)
    assert not [q["sql"] for q in queries.captured_queries if "axes_" in q["sql"]]
    assert list(AccessAttempt.objects.values_list("username", "ip_address", "failures_since_start")) == (
        attempts_before
    )
    assert AccessLog.objects.count() == 0
    # ...and it does not lift the password lockout either.
    assert sign_in(client, "owner", PASSWORD, "10.4.4.6").status_code == 429


def test_a_new_person_signs_in_with_the_default_limits(client: Any, db: Any) -> None:
    user = UserFactory(username="fresh")
    for _ in range(4):
        assert sign_in(client, "fresh", "guess", "10.5.5.5").status_code == 200
    assert sign_in(client, "fresh", PASSWORD, "10.5.5.5").status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
