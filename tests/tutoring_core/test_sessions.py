"""The session store (tutoring_core.accounts.sessions) and the throttled last_login.

Requests go through Django's real SessionMiddleware and login()/logout(); the
counts are of SQL statements, savepoints left out (the store's INSERT runs in
transaction.atomic, which adds them inside the test's transaction only).
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
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.sessions.backends.base import CreateError
from django.contrib.sessions.backends.db import SessionStore as DjangoDatabaseStore
from django.contrib.sessions.middleware import SessionMiddleware
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.factories import PASSWORD, TenantFactory, UserFactory
from tutoring_core.accounts import sessions
from tutoring_core.accounts.apps import LAST_LOGIN_REFRESH
from tutoring_core.accounts.models import User
from tutoring_core.accounts.sessions import SessionStore

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


def row_data(key: str) -> dict[str, Any]:
    return SessionStore().decode(Session.objects.get(pk=key).session_data)


@pytest.fixture
def people() -> tuple[User, User]:
    tenant = TenantFactory(slug="north")
    return UserFactory(tenant=tenant, username="ann"), UserFactory(tenant=tenant, username="bob")


def test_settings_select_this_store() -> None:
    assert settings.SESSION_ENGINE == "tutoring_core.accounts.sessions"
    assert import_module(settings.SESSION_ENGINE).SessionStore is SessionStore
    assert issubclass(SessionStore, DjangoDatabaseStore)


def test_sign_in_replacing_another_persons_session_is_one_delete_and_one_insert(
    people: tuple[User, User],
) -> None:
    """Django's store: SELECT (load), SELECT + DELETE, SELECT 1 + INSERT on
    django_session. Here the load, then one DELETE and one INSERT."""
    ann, bob = people
    ann_key = sign_in(ann).cookie
    with statements() as sql:
        visit_ = sign_in(bob, ann_key)
    new_key = visit_.cookie
    assert sql.on("django_session") == ["SELECT", "DELETE", "INSERT"]
    assert ann_key in sql.sql[1] and new_key in sql.sql[-1]
    # bob's first sign-in writes his last_login; nothing else is written.
    assert sql.on("accounts_user") == ["UPDATE"]
    assert len(sql.sql) == 4
    assert new_key != ann_key
    assert visit_.key_in_view == new_key  # readable right after login(), before the save
    assert list(Session.objects.values_list("pk", flat=True)) == [new_key]
    assert row_data(new_key)["_auth_user_id"] == str(bob.pk)


def test_first_sign_in_is_one_insert(people: tuple[User, User]) -> None:
    """Django's store: SELECT 1, INSERT, then the response's UPDATE."""
    ann, _bob = people
    with statements() as sql:
        visit_ = sign_in(ann)
    assert sql.on("django_session") == ["INSERT"]
    assert visit_.key_in_view == visit_.cookie
    assert row_data(visit_.cookie)["_auth_user_id"] == str(ann.pk)


def test_password_sign_in_writes_the_session_once(client: Any, people: tuple[User, User]) -> None:
    with statements() as sql:
        response = client.post(reverse("web:login"), {"username": "ann", "password": PASSWORD})
    assert response.status_code == 302
    assert sql.on("django_session") == ["INSERT"]
    assert client.session["_auth_user_id"] == str(people[0].pk)


def test_fresh_session_save_is_one_insert_and_no_select() -> None:
    store = SessionStore()
    store["step"] = 1
    with statements() as sql:
        store.save()
    assert [q.split(" ", 1)[0] for q in sql.sql] == ["INSERT"]
    assert store.session_key is not None
    assert row_data(store.session_key) == {"step": 1}


def test_later_request_changing_the_session_updates_it_as_django_does(people: tuple[User, User]) -> None:
    ann, _bob = people
    key = sign_in(ann).cookie

    def view(request: HttpRequest) -> None:
        request.session["step"] = 2

    with statements() as sql:
        visit_ = visit(view, key)
    assert sql.on("django_session") == ["SELECT", "UPDATE"]
    assert len(sql.sql) == 2
    assert visit_.cookie == key
    assert row_data(key)["step"] == 2
    assert row_data(key)["_auth_user_id"] == str(ann.pk)


def test_repeat_sign_in_on_ones_own_session_keeps_the_key(people: tuple[User, User]) -> None:
    ann, _bob = people
    key = sign_in(ann).cookie
    with statements() as sql:
        visit_ = sign_in(ann, key)
    # Same person, same session: no flush, no new key, and last_login is fresh.
    assert sql.on("django_session") == ["SELECT", "UPDATE"]
    assert sql.on("accounts_user") == []
    assert visit_.cookie == key


def test_a_taken_key_is_retried_with_a_new_one(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = SessionStore()
    taken["owner"] = "someone else"
    taken.save()
    assert taken.session_key is not None
    keys = iter([taken.session_key])
    real = SessionStore._get_new_session_key

    def once_taken(self: SessionStore) -> str:
        return next(keys, None) or real(self)

    monkeypatch.setattr(SessionStore, "_get_new_session_key", once_taken)
    store = SessionStore()
    store["owner"] = "me"
    with statements() as sql:
        store.save()
    assert [q.split(" ", 1)[0] for q in sql.sql] == ["INSERT", "INSERT"]
    assert store.session_key not in (None, taken.session_key)
    assert row_data(store.session_key) == {"owner": "me"}
    assert row_data(taken.session_key) == {"owner": "someone else"}
    assert Session.objects.count() == 2


def test_a_key_taken_every_time_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = SessionStore()
    taken["owner"] = "someone else"
    taken.save()
    taken_key = taken.session_key
    assert taken_key is not None
    monkeypatch.setattr(SessionStore, "_get_new_session_key", lambda self: taken_key)
    store = SessionStore()
    store["owner"] = "me"
    with statements() as sql, pytest.raises(CreateError):
        store.save()
    assert [q.split(" ", 1)[0] for q in sql.sql] == ["INSERT"] * sessions.INSERT_ATTEMPTS
    assert list(Session.objects.values_list("pk", flat=True)) == [taken_key]
    assert row_data(taken_key) == {"owner": "someone else"}


def test_flush_deletes_the_row_and_never_reuses_the_key() -> None:
    store = SessionStore()
    store["step"] = 1
    store.save()
    old_key = store.session_key
    with statements() as sql:
        store.flush()
    assert [q.split(" ", 1)[0] for q in sql.sql] == ["DELETE"]
    assert Session.objects.count() == 0
    assert store.session_key not in (None, old_key)
    assert dict(store.items()) == {}
    # Nothing under the new key until something is stored and saved.
    assert store.is_empty() is True
    store["step"] = 2
    assert store.is_empty() is False
    store.save()
    assert list(Session.objects.values_list("pk", flat=True)) == [store.session_key]
    assert row_data(store.session_key) == {"step": 2}


def test_sign_out_deletes_the_row_and_the_cookie_and_writes_nothing(people: tuple[User, User]) -> None:
    ann, _bob = people
    key = sign_in(ann).cookie
    with statements() as sql:
        visit_ = visit(logout, key)
    # logout() empties the session without reading it; Django's delete() read the row first.
    assert sql.on("django_session") == ["DELETE"]
    assert len(sql.sql) == 1
    cookie = visit_.response.cookies[settings.SESSION_COOKIE_NAME]
    assert (cookie.value, cookie["max-age"]) == ("", 0)
    assert Session.objects.count() == 0


def test_cycle_key_moves_the_data_and_deletes_the_old_row() -> None:
    store = SessionStore()
    store["cart"] = ["algebra"]
    store.save()
    old_key = store.session_key
    with statements() as sql:
        store.cycle_key()
    assert [q.split(" ", 1)[0] for q in sql.sql] == ["DELETE"]
    assert Session.objects.count() == 0
    new_key = store.session_key
    assert new_key not in (None, old_key)
    with statements() as sql:
        store.save()
    assert [q.split(" ", 1)[0] for q in sql.sql] == ["INSERT"]
    assert list(Session.objects.values_list("pk", flat=True)) == [new_key]
    assert row_data(new_key) == {"cart": ["algebra"]}


def test_cycle_key_of_a_key_never_written_deletes_nothing() -> None:
    store = SessionStore()
    store.create()
    first = store.session_key
    store["step"] = 1
    with statements() as sql:
        store.cycle_key()
    assert sql.sql == []
    assert store.session_key not in (None, first)
    store.save()
    assert list(Session.objects.values_list("pk", flat=True)) == [store.session_key]
    assert row_data(store.session_key) == {"step": 1}


def test_a_store_created_but_never_saved_leaves_nothing() -> None:
    store = SessionStore()
    with statements() as sql:
        store.create()
        key = store.session_key
        store["seen"] = True
    assert sql.sql == []
    assert key is not None and len(key) == 32
    assert store.modified is True
    assert store.exists(key) is False
    assert Session.objects.count() == 0


def test_load_exists_expiry_and_clearsessions() -> None:
    with time_machine.travel(START, tick=False):
        short = SessionStore()
        short["who"] = "short"
        short.set_expiry(60)
        short.save()
        long = SessionStore()
        long["who"] = "long"
        long.save()
        assert short.session_key is not None and long.session_key is not None
        again = SessionStore(short.session_key)
        assert again.load() == {"who": "short", "_session_expiry": 60}
        assert again.exists(short.session_key) is True
        assert Session.objects.get(pk=short.session_key).expire_date == START + dt.timedelta(seconds=60)
    with time_machine.travel(START + dt.timedelta(seconds=61), tick=False):
        expired = SessionStore(short.session_key)
        assert expired.load() == {}
        assert expired.session_key is None  # an expired key is dropped, never adopted
        call_command("clearsessions")
        assert list(Session.objects.values_list("pk", flat=True)) == [long.session_key]
        assert SessionStore(long.session_key).load() == {"who": "long"}


def test_unknown_cookie_key_is_never_adopted(people: tuple[User, User]) -> None:
    ann, _bob = people
    forged = "a" * 32
    visit_ = sign_in(ann, forged)
    assert visit_.cookie != forged
    assert list(Session.objects.values_list("pk", flat=True)) == [visit_.cookie]


def test_async_methods_follow_the_same_rules() -> None:
    async def scenario() -> list[str | None]:
        store = SessionStore()
        await store.aset("step", 1)
        await store.asave()
        keys = [store.session_key]
        await store.acycle_key()
        await store.asave()
        keys.append(store.session_key)
        await store.aflush()
        keys.append(store.session_key)  # chosen by aflush(), readable before the save
        await store.aset("step", 3)
        await store.asave()
        keys.append(store.session_key)
        return keys

    with statements() as sql:
        first, cycled, flushed, saved = async_to_sync(scenario)()
    assert [q.split(" ", 1)[0] for q in sql.sql] == ["INSERT", "DELETE", "INSERT", "DELETE", "INSERT"]
    assert flushed == saved
    assert None not in (first, cycled, saved) and len({first, cycled, saved}) == 3
    assert list(Session.objects.values_list("pk", flat=True)) == [saved]
    assert row_data(str(saved)) == {"step": 3}


def test_last_login_is_written_at_most_every_five_minutes(people: tuple[User, User]) -> None:
    ann, _bob = people
    assert LAST_LOGIN_REFRESH == dt.timedelta(minutes=5)
    with time_machine.travel(START, tick=False):
        with statements() as sql:
            sign_in(ann)
        assert sql.on("accounts_user") == ["UPDATE"]
        assert ann.last_login == START
        assert User.objects.get(pk=ann.pk).last_login == START

    with time_machine.travel(START + dt.timedelta(minutes=4, seconds=59), tick=False):
        fresh = User.objects.get(pk=ann.pk)
        with statements() as sql:
            sign_in(fresh)
        assert sql.on("accounts_user") == []
        assert fresh.last_login == START
        assert User.objects.get(pk=ann.pk).last_login == START

    later = START + dt.timedelta(minutes=5, seconds=1)
    with time_machine.travel(later, tick=False):
        fresh = User.objects.get(pk=ann.pk)
        with statements() as sql:
            sign_in(fresh)
        assert sql.on("accounts_user") == ["UPDATE"]
        assert fresh.last_login == later
        assert User.objects.get(pk=ann.pk).last_login == later


def test_last_login_ahead_of_the_clock_is_rewritten(people: tuple[User, User]) -> None:
    ann, _bob = people
    User.objects.filter(pk=ann.pk).update(last_login=START + dt.timedelta(hours=1))
    ann.refresh_from_db()
    with time_machine.travel(START, tick=False):
        sign_in(ann)
    assert User.objects.get(pk=ann.pk).last_login == START
    assert timezone.is_aware(ann.last_login)


def test_fresh_session_login_replaces_the_old_session_without_reading_it(people: tuple[User, User]) -> None:
    """session_login(fresh=True), as an LTI launch signs in: the old row is deleted
    by its key, never read, whoever it belonged to; what it held is gone."""
    from tutoring_core.accounts.api import session_login
    from tutoring_core.accounts.models import AuditLog

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
        assert sql.on("django_session") == ["DELETE", "INSERT"]
        assert old_key in sql.sql[0] and new_key in sql.sql[-1]
        assert new_key != old_key
        assert list(Session.objects.values_list("pk", flat=True)) == [new_key]
        data = row_data(new_key)
        assert (data["_auth_user_id"], "note" in data) == (str(bob.pk), False)
        old_key = new_key
    assert AuditLog.objects.filter(action="auth.sign_in", actor=bob).count() == 2


def test_a_session_saved_early_is_not_written_again_unless_it_changed(people: tuple[User, User]) -> None:
    """The LTI launch saves the session inside its own transaction; SessionMiddleware
    then sets the cookie without a second write, unless something changed since."""
    ann, _bob = people

    def early(request: HttpRequest) -> None:
        login(request, ann, backend=BACKEND)
        request.session.save()

    with statements() as sql:
        key = visit(early).cookie
    assert sql.on("django_session") == ["INSERT"]
    assert row_data(key)["_auth_user_id"] == str(ann.pk)

    def early_then_changed(request: HttpRequest) -> None:
        request.session["step"] = 1
        request.session.save()
        request.session["step"] = 2

    with statements() as sql:
        assert visit(early_then_changed, key).cookie == key
    assert sql.on("django_session") == ["SELECT", "UPDATE", "UPDATE"]
    assert row_data(key)["step"] == 2

    def changed_in_place(request: HttpRequest) -> None:
        request.session["items"] = []
        request.session.save()
        request.session["items"].append("x")
        request.session.modified = True  # Django's rule for values changed in place

    visit(changed_in_place, key)
    assert row_data(key)["items"] == ["x"]


def test_a_taken_key_inside_a_transaction_leaves_it_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The INSERT meets a taken key without an error (ON CONFLICT DO NOTHING), so the
    caller's transaction goes on; no savepoint is needed around it."""
    from django.db import transaction

    taken = SessionStore()
    taken["owner"] = "someone"
    taken.save()
    keys = iter([taken.session_key, "k" * 32])
    store = SessionStore()
    monkeypatch.setattr(store, "_get_new_session_key", lambda: next(keys))
    with transaction.atomic(), statements() as sql:
        store["owner"] = "me"
        store.save()
        assert User.objects.count() == 0  # the transaction still answers
    assert [q.split(" ", 1)[0] for q in sql.sql] == ["INSERT", "INSERT", "SELECT"]
    assert store.session_key == "k" * 32
    assert row_data(taken.session_key)["owner"] == "someone"
    assert row_data("k" * 32)["owner"] == "me"
