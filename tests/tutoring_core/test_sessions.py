"""Sessions live in Django's cache session engine (Redis in production, the database
cache in development and tests), and last_login is Django's own.

Requests go through Django's real SessionMiddleware and login()/logout(). A sign-in
writes no session row to the database: the session is one cache entry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.sessions.backends.cache import SessionStore
from django.contrib.sessions.middleware import SessionMiddleware
from django.contrib.sessions.models import Session
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import TenantFactory, UserFactory
from tutoring_core.accounts.models import AuditLog, User

pytestmark = pytest.mark.django_db

BACKEND = "tutoring_core.accounts.backends.TenantAwareModelBackend"
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@dataclass
class Statements:
    sql: list[str]

    def on(self, table: str) -> list[str]:
        """The verbs of the statements on ``table``, in order."""
        return [q.split(" ", 1)[0] for q in self.sql if f'"{table}"' in q]


@contextmanager
def statements() -> Iterator[Statements]:
    found = Statements(sql=[])
    with CaptureQueriesContext(connection) as captured:
        yield found
    found.sql = [
        q["sql"]
        for q in captured.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"))
    ]


@dataclass
class Visit:
    response: HttpResponse
    key_in_view: str | None  # request.session.session_key as the view saw it, after its work

    @property
    def cookie(self) -> str:
        return self.response.cookies[settings.SESSION_COOKIE_NAME].value


def visit(view: Callable[[HttpRequest], None], cookie: str | None = None) -> Visit:
    """One request through SessionMiddleware, with the session cookie ``cookie``."""
    request = RequestFactory().get("/")
    if cookie is not None:
        request.COOKIES[settings.SESSION_COOKIE_NAME] = cookie
    seen: list[str | None] = []

    def get_response(req: HttpRequest) -> HttpResponse:
        view(req)
        seen.append(req.session.session_key)
        return HttpResponse("ok")

    response = SessionMiddleware(get_response)(request)
    return Visit(response=response, key_in_view=seen[0])


def sign_in(user: User, cookie: str | None = None) -> Visit:
    return visit(lambda request: login(request, user, backend=BACKEND), cookie)


def stored(key: str) -> dict[str, Any] | None:
    """What the session engine holds under ``key``; None when nothing."""
    store = SessionStore(key)
    return dict(store.load()) if store.exists(key) else None


@pytest.fixture
def people() -> tuple[User, User]:
    tenant = TenantFactory(slug="north")
    return UserFactory(tenant=tenant, username="ann"), UserFactory(tenant=tenant, username="bob")


def test_settings_select_djangos_cache_engine() -> None:
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.cache"
    assert import_module(settings.SESSION_ENGINE).SessionStore is SessionStore


def test_sign_in_writes_no_session_row(people: tuple[User, User]) -> None:
    ann, _bob = people
    with statements() as sql:
        key = sign_in(ann).cookie
    assert sql.on("django_session") == []
    assert Session.objects.count() == 0
    assert stored(key) == {
        "_auth_user_id": str(ann.pk),
        "_auth_user_backend": BACKEND,
        "_auth_user_hash": ann.get_session_auth_hash(),
    }


def test_sign_in_over_another_persons_session_gets_a_new_key(people: tuple[User, User]) -> None:
    ann, bob = people
    ann_key = sign_in(ann).cookie
    bob_key = sign_in(bob, ann_key).cookie
    assert bob_key != ann_key
    assert stored(ann_key) is None
    assert stored(bob_key)["_auth_user_id"] == str(bob.pk)  # type: ignore[index]


def test_sign_out_deletes_the_session_and_the_cookie(people: tuple[User, User]) -> None:
    ann, _bob = people
    key = sign_in(ann).cookie
    with statements() as sql:
        out = visit(logout, key)
    assert sql.on("django_session") == []
    assert stored(key) is None
    assert out.response.cookies[settings.SESSION_COOKIE_NAME].value == ""


def test_unknown_cookie_key_is_never_adopted(people: tuple[User, User]) -> None:
    ann, _bob = people
    planted = "a" * 32
    key = sign_in(ann, planted).cookie
    assert key != planted
    assert stored(planted) is None


def test_last_login_is_djangos_written_at_every_sign_in(people: tuple[User, User]) -> None:
    ann, _bob = people
    for moment in (START, START + dt.timedelta(minutes=1)):
        with time_machine.travel(moment, tick=False):
            fresh = User.objects.get(pk=ann.pk)
            with statements() as sql:
                sign_in(fresh)
            assert sql.on("accounts_user") == ["UPDATE"]
            assert fresh.last_login == moment
            assert User.objects.get(pk=ann.pk).last_login == moment
    assert timezone.is_aware(User.objects.get(pk=ann.pk).last_login)


def test_fresh_session_login_replaces_the_old_session(people: tuple[User, User]) -> None:
    """session_login(fresh=True), as an LTI launch signs in: the old session is
    dropped whoever it belonged to; what it held is gone; no session row is written."""
    from tutoring_core.accounts.api import session_login

    ann, bob = people

    def ann_signs_in(request: HttpRequest) -> None:
        login(request, ann, backend=BACKEND)
        request.session["note"] = "x"

    def bob_launches(request: HttpRequest) -> None:
        session_login(request, bob, method="lti", fresh=True)

    old_key = visit(ann_signs_in).cookie
    for _ in ("ann's session", "bob's own session"):
        with statements() as sql:
            new_key = visit(bob_launches, old_key).cookie
        assert sql.on("django_session") == []
        assert new_key != old_key
        assert stored(old_key) is None
        data = stored(new_key)
        assert data is not None
        assert (data["_auth_user_id"], "note" in data) == (str(bob.pk), False)
        old_key = new_key
    assert Session.objects.count() == 0
    assert AuditLog.objects.filter(action="auth.sign_in", actor=bob).count() == 2
