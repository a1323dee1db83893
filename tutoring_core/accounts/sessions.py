"""Database sessions that cost one write per sign-in.

Django's database store spends round trips on every sign-in that carry no
information: ``create()`` runs ``SELECT 1`` per candidate key and then an
``INSERT`` straight away, so the response's ``save()`` follows with an
``UPDATE`` of the row just written; and ``delete()`` reads the row before
deleting it. Here a new key is only chosen in memory and written once, when the
response saves the session; the primary key is the collision check.

A sign-in that replaces another person's session was (django_session only)
SELECT (load), SELECT + DELETE (flush), SELECT 1 + INSERT (save); it is now
SELECT (load), DELETE, INSERT. A first sign-in was SELECT 1, INSERT, UPDATE;
it is now one INSERT.

The INSERT meets a taken key with ON CONFLICT DO NOTHING, not an error, so it
needs no savepoint inside a caller's transaction; and a session saved early (the
LTI launch saves it in the transaction that provisions and audits the sign-in,
one commit for all of it) is not written again by SessionMiddleware unless it
changed since.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import router
from django.utils.crypto import get_random_string

from tutoring_core import rawsql

# Keys are 32 characters from a 36-letter alphabet (about 165 bits), so two
# sessions meet on a key only if the random source is broken; a few attempts are
# there for correctness, and giving up beats looping against a broken generator.
INSERT_ATTEMPTS = 3


class SessionStore(DatabaseSessionStore):
    """Django's database store, written once per new key.

    Unlike Django's, ``create()`` writes nothing: it picks the key and leaves the
    INSERT to ``save()`` (SessionMiddleware calls it for modified sessions). Code
    outside a request that builds a store must call ``save()``, not ``create()``,
    to get a row; until then the key may still change if the INSERT meets a
    taken one.
    """

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        # True while the key was chosen here and no row holds it yet: the next
        # save() must INSERT, and there is nothing to load or delete.
        self._pending_insert = False
        # True for the key flush() hands out: like Django's key-less store after
        # flush(), it counts as empty until something is stored in it, so a
        # sign-out still deletes the cookie and writes no row.
        self._empty_until_written = False

    # Django marks a session to be saved with ``modified = True`` (its own setters,
    # and callers after changing a value in place). ``_unsaved`` follows that and is
    # cleared by a write, so a session saved early (inside the caller's transaction,
    # as the LTI launch does) is not written again by SessionMiddleware unless it
    # changed since.
    @property
    def modified(self) -> bool:
        return self._modified

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = value
        if value:
            self._unsaved = True

    def _written_unchanged(self, must_create: bool) -> bool:
        return not must_create and not self._pending_insert and not getattr(self, "_unsaved", True)

    def _get_new_session_key(self) -> str:
        # No exists() round trip: the INSERT's primary key rejects a taken key.
        return get_random_string(32, VALID_KEY_CHARS)

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()

    def _new_pending_key(self) -> None:
        self._session_key = self._get_new_session_key()
        self._pending_insert = True
        self._empty_until_written = False

    def create(self) -> None:
        self._new_pending_key()
        # SessionMiddleware saves only modified sessions; the row is written then.
        self.modified = True

    async def acreate(self) -> None:
        self.create()

    def load(self) -> dict[str, Any]:
        if self._pending_insert:
            return {}
        return super().load()

    async def aload(self) -> dict[str, Any]:
        if self._pending_insert:
            return {}
        return await super().aload()

    def is_empty(self) -> bool:
        if self._empty_until_written:
            return not getattr(self, "_session_cache", None)
        return super().is_empty()

    def save(self, must_create: bool = False) -> None:
        # Django's save() returns after create() when there is no key; here
        # create() only chooses one, and the INSERT below writes the row.
        if self.session_key is None:
            self.create()
        if self._written_unchanged(must_create):
            return
        if not self._pending_insert:
            super().save(must_create=must_create)
            self._unsaved = False
            return
        for attempt in range(INSERT_ATTEMPTS):
            if self._insert():
                self._pending_insert = False
                self._empty_until_written = False
                self._unsaved = False
                return
            if attempt == INSERT_ATTEMPTS - 1:
                raise CreateError
            self._session_key = self._get_new_session_key()

    def _insert(self) -> bool:
        """INSERT the row; False if its key is taken (ON CONFLICT DO NOTHING rather than
        an IntegrityError, so no savepoint inside the caller's transaction)."""
        row = self.create_model_instance(self._get_session(no_load=True))  # type: ignore[attr-defined]
        return rawsql.insert(row, skip_taken_key=True, using=router.db_for_write(self.model, instance=row))

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            await self.acreate()
        if self._written_unchanged(must_create):
            return
        if not self._pending_insert:
            await super().asave(must_create=must_create)
            self._unsaved = False
            return
        for attempt in range(INSERT_ATTEMPTS):
            try:
                await super().asave(must_create=True)
            except CreateError:
                if attempt == INSERT_ATTEMPTS - 1:
                    raise
                self._session_key = self._get_new_session_key()
                continue
            self._pending_insert = False
            self._empty_until_written = False
            self._unsaved = False
            return

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None or self._pending_insert:
                return
            session_key = self.session_key
        # One DELETE; Django's get() first only told it whether there was a row. Not the
        # ORM's delete(): its collector, for a table nothing points to, cost more CPU
        # than the statement, on every sign-in that replaces a session.
        rawsql.delete(self.model, "session_key", session_key, using=router.db_for_write(self.model))

    async def adelete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None or self._pending_insert:
                return
            session_key = self.session_key
        await self.model.objects.filter(session_key=session_key).adelete()

    def flush(self) -> None:
        # Django's flush(): empty the data, delete the row, never reuse the key.
        self.clear()
        self.delete()
        # The replacement key is chosen now, not at save(), so code that runs
        # after login() can read request.session.session_key. It is fresh
        # (never the old key) and costs nothing until the response saves it.
        self._new_pending_key()
        self._empty_until_written = True

    async def aflush(self) -> None:
        self.clear()
        await self.adelete()
        self._new_pending_key()
        self._empty_until_written = True

    def cycle_key(self) -> None:
        # A key that was never written has no row to delete (cycled twice in one
        # request, or right after flush()): choosing another is the whole job.
        if self._pending_insert:
            self.create()
            return
        # Django's: the same data under a new key (create() above), old row deleted.
        super().cycle_key()

    async def acycle_key(self) -> None:
        if self._pending_insert:
            await self.acreate()
            return
        await super().acycle_key()
