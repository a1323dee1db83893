"""Many booking attempts at once against a database of its own (PostgreSQL or an SQLite file).

Run as a separate process so the database is the one named, not the test run's:

    .venv/bin/python -m tests.scheduling.contention --database-url postgres://postgres@127.0.0.1:5432/x
    .venv/bin/python -m tests.scheduling.contention --database-url sqlite:////tmp/x/db.sqlite3

It creates the database (PostgreSQL: CREATE DATABASE; SQLite: the file), migrates it,
makes one tutor open all week and ``--attempts`` students, then starts one thread per
attempt behind a barrier. Each thread books through ``booking_create`` on its own
connection; a semaphore lets at most ``--connections`` of them hold a connection at a
time (the server allows 100 and other work shares it). ``--slots`` spreads the
attempts round-robin over that many consecutive hour slots of the same tutor.
``--mode insert`` is the baseline: the same threads insert a session row each for a
tutor of their own with the ORM (no checks, no contention). Prints one JSON line.
The database is dropped (or the file removed) at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]


def _pg_admin(url: str, sql: str) -> None:
    import psycopg

    parsed = urlparse(url)
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


def _setup_database(url: str) -> None:
    if url.startswith("postgres"):
        name = urlparse(url).path.lstrip("/")
        _pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _pg_admin(url, f'CREATE DATABASE "{name}"')
    else:
        path = Path(urlparse(url).path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _drop_database(url: str) -> None:
    from django.db import connections

    connections.close_all()
    if url.startswith("postgres"):
        name = urlparse(url).path.lstrip("/")
        _pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        path = Path(urlparse(url).path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _world(attempts: int, tutors: int) -> tuple[Any, list[Any], list[Any]]:
    from tutoring_core.accounts.models import Role, RoleAssignment, Tenant, User
    from tutoring_core.scheduling.models import AvailabilityRule, TutorProfile

    tenant = Tenant.objects.create(slug="contention", name="Contention District", time_zone="UTC")
    admin = User.objects.create(tenant=tenant, username="admin@contention", is_staff=True)
    RoleAssignment.objects.create(tenant=tenant, user=admin, role=Role.DISTRICT_ADMIN)
    students = User.objects.bulk_create(
        User(tenant=tenant, username=f"student{n}@contention", first_name="Student", last_name=str(n))
        for n in range(attempts)
    )
    RoleAssignment.objects.bulk_create(
        RoleAssignment(tenant=tenant, user=s, role=Role.STUDENT) for s in students
    )
    tutor_users = User.objects.bulk_create(
        User(tenant=tenant, username=f"tutor{n}@contention", first_name="Tutor", last_name=str(n))
        for n in range(tutors)
    )
    profiles = TutorProfile.objects.bulk_create(
        TutorProfile(tenant=tenant, user=user, time_zone="UTC", session_lengths=[60], window_days=30)
        for user in tutor_users
    )
    AvailabilityRule.objects.bulk_create(
        AvailabilityRule(tenant=tenant, tutor=profile, weekday=day, start_minute=0, end_minute=1440)
        for profile in profiles
        for day in range(7)
    )
    return admin, students, tutor_users


def run(
    *, database_url: str, attempts: int, connections: int, slots: int, mode: str, keep: bool = False
) -> dict[str, Any]:
    return run_modes(
        database_url=database_url,
        attempts=attempts,
        connections=connections,
        slots=slots,
        modes=[mode],
        keep=keep,
    )[0]


def _schema_from_models(url: str) -> None:
    """Tables straight from the models (as pytest-django's --nomigrations): seconds instead
    of replaying every migration. The models carry the exclusion constraint; its btree_gist
    extension (a migration operation) is made here. Left out: the audit log's append-only
    trigger and other RunPython/RunSQL steps, none of which a booking's INSERTs touch."""
    from django.conf import settings
    from django.core.management import call_command

    class NoMigrations:
        def __contains__(self, app: str) -> bool:
            return True

        def __getitem__(self, app: str) -> None:
            return None

    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    settings.MIGRATION_MODULES = NoMigrations()
    call_command("migrate", verbosity=0, interactive=False, run_syncdb=True)
    call_command("createcachetable", verbosity=0)


def run_modes(
    *,
    database_url: str,
    attempts: int,
    connections: int,
    slots: int,
    modes: list[str],
    keep: bool = False,
    schema: str = "migrations",
) -> list[dict[str, Any]]:
    """Each mode in turn against one database made (and migrated) once; the sessions of
    one mode are deleted before the next.

    - booking: one tutor, ``attempts`` students spread over ``slots`` hour slots.
    - insert: the baseline, a plain ORM insert per thread for a tutor of its own.
    - student: one student booked at the same hour with ``attempts`` different tutors
      (a student cannot be in two sessions at once: exactly one may win).
    """
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    sys.path.insert(0, str(ROOT))
    _setup_database(database_url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection as main_connection

    from tutoring_core.scheduling.models import Session

    try:
        if schema == "models":
            _schema_from_models(database_url)
        else:
            call_command("migrate", verbosity=0)
        many = any(mode in ("insert", "student") for mode in modes)
        world = _world(attempts, attempts if many else 1)
        day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(
            hour=6, minute=0, second=0, microsecond=0
        )
        results = []
        for mode in modes:
            Session.objects.all().delete()
            main_connection.close()
            results.append(
                _attempts_at_once(
                    world=world,
                    mode=mode,
                    attempts=attempts,
                    connections=connections,
                    starts=[day + dt.timedelta(hours=n) for n in range(1 if mode == "student" else slots)],
                )
            )
        return results
    finally:
        if not keep:
            _drop_database(database_url)


def _attempts_at_once(
    *, world: tuple[Any, list[Any], list[Any]], mode: str, attempts: int, connections: int, starts: list[Any]
) -> dict[str, Any]:
    from django.db import connection as main_connection
    from django.db import connections as all_connections

    from tutoring_core.scheduling import services
    from tutoring_core.scheduling.errors import SchedulingError, SlotTaken, StudentBusy
    from tutoring_core.scheduling.models import Session

    admin, students, tutors = world
    slots = len(starts)
    barrier = threading.Barrier(attempts)
    gate = threading.Semaphore(connections)
    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def attempt(index: int) -> None:
        start = starts[index % slots]
        barrier.wait()
        with gate:
            try:
                if mode == "insert":
                    Session.objects.create(
                        tenant_id=admin.tenant_id,
                        tutor=tutors[index],
                        start=start,
                        end=start + dt.timedelta(hours=1),
                        block_start=start,
                        block_end=start + dt.timedelta(hours=1),
                        created_by=admin,
                    )
                else:
                    services.booking_create(
                        actor=admin,
                        tutor=tutors[index] if mode == "student" else tutors[0],
                        student=students[0] if mode == "student" else students[index],
                        start=start,
                        duration_min=60,
                    )
                outcome = "booked"
            except StudentBusy:
                outcome = "student_busy"
            except SlotTaken as exc:
                outcome = "taken_by_constraint" if exc.decided_by == "constraint" else "taken"
            except SchedulingError as exc:
                outcome = "refused"
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc.reason}")
            except Exception as exc:
                outcome = "error"
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                all_connections.close_all()
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(attempts)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began

    active = Session.objects.filter(status__in=("held", "booked"))
    per_slot = Counter(active.values_list("start", flat=True))
    overlapping = 0
    if mode == "booking":
        blocks = sorted(active.values_list("tutor_id", "block_start", "block_end"))
        overlapping = sum(1 for a, b in itertools.pairwise(blocks) if a[0] == b[0] and b[1] < a[2])
    elif mode == "student":
        spans = sorted(active.filter(participants__student=students[0]).values_list("start", "end"))
        overlapping = sum(1 for a, b in itertools.pairwise(spans) if b[0] < a[1])
    result = {
        "vendor": main_connection.vendor,
        "mode": mode,
        "attempts": attempts,
        "connections": connections,
        "slots": slots,
        "booked": outcomes["booked"],
        "taken": outcomes["taken"] + outcomes["taken_by_constraint"],
        "taken_by_constraint": outcomes["taken_by_constraint"],
        "student_busy": outcomes["student_busy"],
        "refused": outcomes["refused"],
        "errors": outcomes["error"],
        "error_samples": sorted(set(errors))[:5],
        "sessions": active.count(),
        "max_per_slot": max(per_slot.values(), default=0),
        "overlapping_pairs": overlapping,
        "seconds": round(seconds, 3),
        "attempts_per_second": round(attempts / seconds, 1) if seconds else None,
    }
    main_connection.close()
    return result


def race(*, database_url: str) -> dict[str, Any]:
    """The write race made certain (PostgreSQL): the check passes, then the constraint refuses.

    Connection A inserts an overlapping session and keeps its transaction open; a thread
    books the same time inside an outer transaction of its own. Its check cannot see A's
    row, so its INSERT waits on the exclusion constraint; A commits (once the database
    shows the thread waiting on a lock) and the thread's INSERT fails. The booking must
    answer SlotTaken (decided by the constraint) and leave the outer transaction usable.
    """
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    sys.path.insert(0, str(ROOT))
    _setup_database(database_url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections, transaction

    from tutoring_core.scheduling import services
    from tutoring_core.scheduling.errors import SlotTaken
    from tutoring_core.scheduling.models import Session

    try:
        call_command("migrate", verbosity=0)
        admin, students, tutors = _world(2, 1)
        start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(
            hour=6, minute=0, second=0, microsecond=0
        )
        result: dict[str, Any] = {"vendor": connection.vendor}
        pid: list[int] = []

        def book() -> None:
            try:
                with transaction.atomic():
                    pid.append(connection.connection.info.backend_pid)  # type: ignore[union-attr]
                    try:
                        services.booking_create(
                            actor=admin, tutor=tutors[0], student=students[1], start=start, duration_min=60
                        )
                        result["outcome"] = "booked"
                    except SlotTaken as exc:
                        result["outcome"] = f"taken_by_{exc.decided_by}"
                        result["alternatives"] = len(exc.alternatives)
                    # The outer transaction lives on after the refused savepoint.
                    result["after"] = Session.objects.count()
            except Exception as exc:  # reported, never hidden
                result["outcome"] = f"{type(exc).__name__}: {exc}"
            finally:
                connections.close_all()

        connection.ensure_connection()
        with transaction.atomic():
            Session.objects.create(
                tenant_id=admin.tenant_id,
                tutor=tutors[0],
                start=start + dt.timedelta(minutes=30),
                end=start + dt.timedelta(minutes=90),
                block_start=start + dt.timedelta(minutes=30),
                block_end=start + dt.timedelta(minutes=90),
                created_by=admin,
            )
            thread = threading.Thread(target=book)
            thread.start()
            deadline = time.monotonic() + 60
            waiting = False
            with connections["default"].cursor() as cursor:
                while time.monotonic() < deadline and not waiting:
                    time.sleep(0.05)
                    if pid:
                        cursor.execute(
                            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", [pid[0]]
                        )
                        row = cursor.fetchone()
                        waiting = bool(row and row[0])
            result["waited_on_lock"] = waiting
        thread.join()
        result["sessions"] = Session.objects.count()
        return result
    finally:
        connections.close_all()
        _drop_database(database_url)


def student_lock(*, database_url: str) -> dict[str, Any]:
    """What the booking's lock on a student's row lets others do (PostgreSQL).

    Inside a booking transaction that holds the student's row (``_lock_students``), a
    second connection asks, without waiting (NOWAIT), for the two locks others take:
    FOR KEY SHARE, which PostgreSQL's foreign-key check takes when any row naming the
    student is written (an audit row, a notice, a session they created), must be granted;
    FOR NO KEY UPDATE, which a second booking of the same student takes, must be refused
    until the first commits.
    """
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    sys.path.insert(0, str(ROOT))
    _setup_database(database_url)
    import django

    django.setup()
    import psycopg
    from django.db import connection, connections, transaction

    from tutoring_core.accounts.models import User
    from tutoring_core.scheduling import services

    try:
        _schema_from_models(database_url)
        _admin, students, _tutors = _world(1, 1)
        table = User._meta.db_table
        result: dict[str, Any] = {"vendor": connection.vendor}
        other_url = database_url.replace("postgres://", "postgresql://", 1)

        def ask(lock: str) -> str:
            with psycopg.connect(other_url) as other:
                try:
                    other.execute(
                        f'SELECT id FROM "{table}" WHERE id = %s FOR {lock} NOWAIT',  # noqa: S608 - our table name
                        [students[0].pk],
                    ).fetchall()
                except psycopg.errors.LockNotAvailable:
                    return "refused"
                return "granted"

        with transaction.atomic():
            services._lock_students([students[0].pk])
            result["key_share"] = ask("KEY SHARE")
            result["no_key_update"] = ask("NO KEY UPDATE")
        result["after_commit"] = ask("NO KEY UPDATE")
        return result
    finally:
        connections.close_all()
        _drop_database(database_url)


def default_url(vendor: str, name: str) -> tuple[str, str | None]:
    """A database URL of the vendor for a run named ``name`` (and a folder to remove, for SQLite)."""
    if vendor == "postgresql":
        return f"postgres://postgres@127.0.0.1:5432/{name}_{uuid.uuid4().hex[:8]}", None
    folder = tempfile.mkdtemp(prefix=f"{name}-")
    return f"sqlite:///{folder}/db.sqlite3", folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--attempts", type=int, default=200)
    parser.add_argument("--connections", type=int, default=40)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument(
        "--mode",
        default="booking",
        help=(
            "booking, insert, student, race or student-lock; several (not race, student-lock) "
            "comma-separated share one database"
        ),
    )
    parser.add_argument("--remove-folder", default="")
    parser.add_argument(
        "--schema",
        choices=("migrations", "models"),
        default="migrations",
        help="models: tables straight from the models, much faster to make (benchmarks)",
    )
    args = parser.parse_args()
    if args.mode == "race":
        print(json.dumps(race(database_url=args.database_url)))
        return
    if args.mode == "student-lock":
        print(json.dumps(student_lock(database_url=args.database_url)))
        return
    modes = args.mode.split(",")
    unknown = set(modes) - {"booking", "insert", "student"}
    if unknown:
        parser.error(f"unknown mode {sorted(unknown)[0]!r}")
    try:
        results = run_modes(
            database_url=args.database_url,
            attempts=args.attempts,
            connections=args.connections,
            slots=args.slots,
            modes=modes,
            schema=args.schema,
        )
    finally:
        if args.remove_folder:
            shutil.rmtree(args.remove_folder, ignore_errors=True)
    # One mode: its result; several: one line with each under its name.
    print(json.dumps(results[0] if len(results) == 1 else {r["mode"]: r for r in results}))


if __name__ == "__main__":
    main()
