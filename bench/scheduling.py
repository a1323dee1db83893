"""Scheduling: free slots for one tutor over 90 days, and a slot search across 1,000 tutors
serving one class, each beside a plain baseline measured in the same run (issue 12).

    .venv/bin/python bench/scheduling.py            # full
    .venv/bin/python bench/scheduling.py --quick    # fewer repetitions and a smaller DB variant; < 1 minute
    .venv/bin/python bench/scheduling.py --no-booking   # without (c)

(a) One tutor in America/New_York (the 90 days include the March DST change), weekday and
    Saturday hours, an override or two, buffers, notice, a daily cap; busy lists of two sizes.
    The engine (tutoring_core/scheduling/protocol/slots.py: windows merged once, busy blocks
    sorted and bisected) against the baseline, a straightforward per-day loop written here:
    for each local date, for each rule, naive local-to-UTC conversion, step the slots, test
    every slot against every busy block (O(slots x busy)). Both lists are compared; the
    baseline's naive conversion happens to agree on these hours (no rule starts in a gap).
(b) 1,000 tutors (seeded: five zones, random weekly hours, buffers, notice, caps, about two
    sessions a day each) serving one class, all their free 60-minute slots over 7 days:
    in process, the engine against the same per-day loop; and DB-backed on SQLite (a fresh
    database in a temporary folder, in a child process): ``services.slots_for`` per tutor of
    ``selectors.tutor_profiles(class_id=...)`` (before) and ``services.class_slots`` (after:
    every serving tutor's profile, rules, overrides, busy blocks and per-day counts in a
    constant number of queries) against the per-tutor selector reads feeding the per-day
    loop, interleaved, twice each (medians). Per tutor, the queries (profile, rules,
    overrides, busy blocks, per-day counts) dominate: the engine's share is the in-process
    figure above.
(c) Bookings per second under contention on PostgreSQL, beside an unconstrained insert:
    bench/scheduling_booking.py (helper "booking"), run as a child when present; its table is
    shown and its JSON line nested under "booking".

Prints a table, then one JSON line, last. Time is wall time, the median of several repetitions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tutoring_core.scheduling.protocol.slots import (  # noqa: E402
    Availability,
    DateOverride,
    WeeklyRule,
    free_slots,
)

UTC = dt.UTC
MIN = dt.timedelta(minutes=1)
ZONES = ("America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata", "Australia/Lord_Howe")
Span = tuple[dt.datetime, dt.datetime]
T = TypeVar("T")


# --- the baseline: a straightforward per-day loop ---------------------------------------------------


def naive_free_slots(
    av: Availability,
    *,
    duration: dt.timedelta,
    now: dt.datetime,
    start: dt.datetime,
    end: dt.datetime,
    busy: Sequence[Span] = (),
    booked_per_day: Mapping[dt.date, int] | None = None,
) -> list[Span]:
    """What one writes first: each local day, each rule, each slot, each busy block."""
    booked_per_day = booked_per_day or {}
    zone = ZoneInfo(av.time_zone)
    day = start.astimezone(zone).date() - dt.timedelta(days=1)
    last = end.astimezone(zone).date()
    found: list[Span] = []
    while day <= last:
        overrides = [o for o in av.overrides if o.date == day]
        if overrides:
            hours = (
                []
                if any(o.unavailable for o in overrides)
                else [(o.start_minute, o.end_minute) for o in overrides]
            )
        else:
            hours = [(r.start_minute, r.end_minute) for r in av.weekly if r.weekday == day.weekday()]
        midnight = dt.datetime.combine(day, dt.time())
        for first, stop in hours:
            window_start = (midnight + first * MIN).replace(tzinfo=zone).astimezone(UTC)  # type: ignore[operator]
            window_end = (midnight + stop * MIN).replace(tzinfo=zone).astimezone(UTC)  # type: ignore[operator]
            slot = window_start
            while slot + duration <= window_end:
                slot_end = slot + duration
                ok = (
                    start <= slot < end
                    and slot >= now + av.min_notice
                    and slot_end <= now + dt.timedelta(days=av.window_days)
                    and (av.daily_cap is None or booked_per_day.get(day, 0) < av.daily_cap)
                )
                if ok:
                    block = (slot - av.buffer_before, slot_end + av.buffer_after)
                    if all(not (b_start < block[1] and b_end > block[0]) for b_start, b_end in busy):
                        found.append((slot, slot_end))
                slot = slot_end
        day += dt.timedelta(days=1)
    return found


# --- data -----------------------------------------------------------------------------------------


def timed(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Median wall seconds over ``repeat`` calls, and the last result."""
    times = []
    result: Any = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def per_day(av: Availability, busy: Sequence[Span], buffer_before: dt.timedelta) -> dict[dt.date, int]:
    zone = ZoneInfo(av.time_zone)
    return dict(Counter((b_start + buffer_before).astimezone(zone).date() for b_start, _ in busy))


def one_tutor(now: dt.datetime, sessions_per_day: int, seed: int) -> tuple[Availability, list[Span]]:
    """New York, Mon-Fri 08:00-12:00 and 13:00-18:00, Saturday 10:00-14:00; busy sessions of 30 minutes."""
    rng = random.Random(seed)
    weekly = tuple(WeeklyRule(d, start, end) for d in range(5) for start, end in ((480, 720), (780, 1080)))
    av = Availability(
        time_zone="America/New_York",
        weekly=(*weekly, WeeklyRule(5, 600, 840)),
        overrides=(
            DateOverride(dt.date(2027, 3, 17), None, None, unavailable=True),
            DateOverride(dt.date(2027, 3, 21), 540, 720),
        ),
        buffer_before=5 * MIN,
        buffer_after=10 * MIN,
        min_notice=120 * MIN,
        window_days=90,
        daily_cap=None,
    )
    zone = ZoneInfo(av.time_zone)
    busy: list[Span] = []
    for offset in range(91):
        day = (now + dt.timedelta(days=offset)).astimezone(zone).date()
        # Sessions on a 15-minute grid through the working day, no two overlapping (buffers included).
        grid = list(range(480, 1080 - 30, 45))
        for minute in sorted(rng.sample(grid, min(sessions_per_day, len(grid)))):
            start = dt.datetime.combine(day, dt.time(minute // 60, minute % 60), zone).astimezone(UTC)
            busy.append((start - av.buffer_before, start + 30 * MIN + av.buffer_after))
    return av, busy


def many_tutors(count: int, now: dt.datetime, days: int, seed: int) -> list[tuple[Availability, list[Span]]]:
    rng = random.Random(seed)
    tutors = []
    for _ in range(count):
        zone_name = rng.choice(ZONES)
        zone = ZoneInfo(zone_name)
        rules = []
        for weekday in range(7):
            if rng.random() < (0.8 if weekday < 5 else 0.3):
                start = rng.randrange(7 * 60, 12 * 60, 30)
                rules.append(WeeklyRule(weekday, start, min(1440, start + rng.choice([120, 180, 240, 300]))))
                if rng.random() < 0.4:
                    evening = rng.randrange(17 * 60, 20 * 60, 30)
                    rules.append(WeeklyRule(weekday, evening, evening + rng.choice([60, 120, 180])))
        buffer_before = rng.choice([0, 0, 5, 10]) * MIN
        buffer_after = rng.choice([0, 5, 10, 15]) * MIN
        av = Availability(
            time_zone=zone_name,
            weekly=tuple(rules),
            buffer_before=buffer_before,
            buffer_after=buffer_after,
            min_notice=rng.choice([0, 60, 240]) * MIN,
            window_days=rng.choice([14, 30, 90]),
            daily_cap=rng.choice([None, None, 4, 6]),
        )
        busy: list[Span] = []
        for offset in range(-1, days + 2):
            day = (now + dt.timedelta(days=offset)).astimezone(zone).date()
            for hour in sorted(rng.sample(range(8, 21, 2), rng.randint(0, 3))):
                begins = dt.datetime.combine(day, dt.time(hour), zone).astimezone(UTC)
                busy.append((begins - buffer_before, begins + 60 * MIN + buffer_after))
        tutors.append((av, busy))
    return tutors


# --- (a) and (b) in process -----------------------------------------------------------------------


def bench_one_tutor(repeat: int) -> list[dict[str, Any]]:
    now = dt.datetime(2027, 2, 20, 15, tzinfo=UTC)
    results = []
    for sessions in (2, 11):
        av, busy = one_tutor(now, sessions, seed=7)
        booked = per_day(av, busy, av.buffer_before)
        args: dict[str, Any] = {
            "duration": 30 * MIN,
            "now": now,
            "start": now,
            "end": now + dt.timedelta(days=90),
            "busy": busy,
            "booked_per_day": booked,
        }
        engine_s, engine = timed(lambda: free_slots(av, **args), repeat)  # noqa: B023
        naive_s, naive = timed(lambda: naive_free_slots(av, **args), max(1, repeat // 3))  # noqa: B023
        results.append(
            {
                "busy_blocks": len(busy),
                "slots": len(engine),
                "engine_ms": round(engine_s * 1000, 2),
                "baseline_ms": round(naive_s * 1000, 2),
                "speedup": round(naive_s / engine_s, 1),
                "same_slots": engine == naive,
            }
        )
    return results


CLASS_NOW = dt.datetime(2027, 3, 10, 12, tzinfo=UTC)  # the week holds New York's DST change
CLASS_DAYS = 7


def bench_class_search(tutors: int, repeat: int) -> dict[str, Any]:
    data = many_tutors(tutors, CLASS_NOW, CLASS_DAYS, seed=42)
    prepared = [(av, busy, per_day(av, busy, av.buffer_before)) for av, busy in data]
    end = CLASS_NOW + dt.timedelta(days=CLASS_DAYS)

    def search(fn: Callable[..., list[Span]]) -> list[list[Span]]:
        return [
            fn(
                av,
                duration=60 * MIN,
                now=CLASS_NOW,
                start=CLASS_NOW,
                end=end,
                busy=busy,
                booked_per_day=booked,
            )
            for av, busy, booked in prepared
        ]

    engine_s, engine = timed(lambda: search(free_slots), repeat)
    naive_s, naive = timed(lambda: search(naive_free_slots), max(1, repeat // 2))
    differing = sum(1 for mine, theirs in zip(engine, naive, strict=True) if mine != theirs)
    return {
        "tutors": tutors,
        "days": CLASS_DAYS,
        "slots": sum(len(found) for found in engine),
        "engine_s": round(engine_s, 3),
        "baseline_s": round(naive_s, 3),
        "speedup": round(naive_s / engine_s, 1),
        "tutors_differing": differing,
    }


# --- (b) on SQLite through the services (a child process) -----------------------------------------


def phase_db(tutors: int, repeat: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    class NoMigrations:
        """Tables straight from the models (as pytest-django's --nomigrations): a fresh SQLite
        database in seconds rather than replaying every migration; nothing measured depends on it."""

        def __contains__(self, app: str) -> bool:
            return True

        def __getitem__(self, app: str) -> None:
            return None

    settings.MIGRATION_MODULES = NoMigrations()
    call_command("migrate", verbosity=0, interactive=False, run_syncdb=True)

    from django.contrib.auth.hashers import make_password

    from tutoring_core.accounts.models import User
    from tutoring_core.accounts.services import tenant_create
    from tutoring_core.classes.models import Class
    from tutoring_core.scheduling import selectors, services
    from tutoring_core.scheduling.models import AvailabilityRule, Session, TutorProfile

    tenant, _ = tenant_create(slug="bench", name="Bench District")
    klass = Class.objects.create(tenant=tenant, title="Algebra I")
    password = make_password(None)
    data = many_tutors(tutors, CLASS_NOW, CLASS_DAYS, seed=42)
    users = User.objects.bulk_create(
        User(
            tenant=tenant,
            username=f"bench-tutor-{n}",
            first_name="Tutor",
            last_name=f"{n:04d}",
            password=password,
        )
        for n in range(tutors)
    )
    profiles = TutorProfile.objects.bulk_create(
        TutorProfile(
            tenant=tenant,
            user=user,
            time_zone=av.time_zone,
            session_lengths=[60],
            buffer_before_min=int(av.buffer_before / MIN),
            buffer_after_min=int(av.buffer_after / MIN),
            min_notice_min=int(av.min_notice / MIN),
            window_days=av.window_days,
            daily_cap=av.daily_cap,
        )
        for user, (av, _) in zip(users, data, strict=True)
    )
    TutorProfile.classes.through.objects.bulk_create(
        TutorProfile.classes.through(tutorprofile_id=profile.pk, class_id=klass.pk) for profile in profiles
    )
    AvailabilityRule.objects.bulk_create(
        AvailabilityRule(
            tenant=tenant,
            tutor=profile,
            weekday=r.weekday,
            start_minute=r.start_minute,
            end_minute=r.end_minute,
        )
        for profile, (av, _) in zip(profiles, data, strict=True)
        for r in av.weekly
    )
    Session.objects.bulk_create(
        Session(
            tenant=tenant,
            tutor=user,
            start=b_start + av.buffer_before,
            end=b_end - av.buffer_after,
            block_start=b_start,
            block_end=b_end,
            status="booked",
            time_zone=av.time_zone,
        )
        for user, (av, busy) in zip(users, data, strict=True)
        for b_start, b_end in busy
    )
    end = CLASS_NOW + dt.timedelta(days=CLASS_DAYS)

    def with_services() -> list[list[Span]]:
        return [
            services.slots_for(tutor=profile.user, start=CLASS_NOW, end=end, duration_min=60, now=CLASS_NOW)
            for profile in selectors.tutor_profiles(tenant=tenant, class_id=klass.pk)
        ]

    def with_batched() -> list[list[Span]]:
        # One read of every serving tutor's profile, rules, overrides, busy blocks and counts.
        return [
            found
            for _profile, _minutes, found in services.class_slots(
                klass=klass, start=CLASS_NOW, end=end, duration_min=60, now=CLASS_NOW
            )
        ]

    def with_baseline() -> list[list[Span]]:
        # The same reads the service makes, feeding the per-day loop.
        found = []
        for profile in selectors.tutor_profiles(tenant=tenant, class_id=klass.pk):
            av = selectors.availability_of(profile)
            margin = av.buffer_before + av.buffer_after + 60 * MIN
            busy = selectors.busy_blocks(
                tutor_id=profile.user.pk, start=CLASS_NOW - margin, end=end + margin, now=CLASS_NOW
            )
            booked = selectors.booked_per_day(
                tutor_id=profile.user.pk, time_zone=av.time_zone, start=CLASS_NOW, end=end, now=CLASS_NOW
            )
            found.append(
                naive_free_slots(
                    av,
                    duration=60 * MIN,
                    now=CLASS_NOW,
                    start=CLASS_NOW,
                    end=end,
                    busy=busy,
                    booked_per_day=booked,
                )
            )
        return found

    # Interleaved, so a change in the machine's load between them weighs on both alike.
    services_runs, baseline_runs, batched_runs = [], [], []
    for _ in range(repeat):
        seconds, mine = timed(with_services, 1)
        services_runs.append(seconds)
        seconds, theirs = timed(with_baseline, 1)
        baseline_runs.append(seconds)
        seconds, batched = timed(with_batched, 1)
        batched_runs.append(seconds)
    services_s, baseline_s = statistics.median(services_runs), statistics.median(baseline_runs)
    batched_s = statistics.median(batched_runs)
    return {
        "tutors": len(mine),
        "slots": sum(len(found) for found in mine),
        "services_s": round(services_s, 3),
        "baseline_s": round(baseline_s, 3),
        "speedup": round(baseline_s / services_s, 2),
        "tutors_differing": sum(1 for a, b in zip(mine, theirs, strict=True) if a != b),
        # services.class_slots: the same slots from a constant number of queries.
        "batched_s": round(batched_s, 3),
        "batched_speedup_vs_per_tutor": round(services_s / batched_s, 1),
        "batched_speedup_vs_baseline": round(baseline_s / batched_s, 1),
        "batched_differing": sum(1 for a, b in zip(mine, batched, strict=True) if a != b),
    }


def bench_db(tutors: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="scheduling-bench-") as folder:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=f"sqlite:///{folder}/bench.sqlite3",
            DJANGO_SETTINGS_MODULE="config.settings_test",
            VAR_DIR=folder,
            CACHE_KEY_PREFIX="scheduling-bench",
        )
        done = subprocess.run(
            [sys.executable, __file__, "--phase", "db", "--tutors", str(tutors), "--repeat", str(repeat)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the DB-backed run failed: {tail}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- (c) the booking helper's contention bench -------------------------------------------------------


def bench_booking(quick: bool) -> tuple[list[str], dict[str, Any]]:
    script = ROOT / "bench" / "scheduling_booking.py"
    if not script.exists():
        return [], {"error": "bench/scheduling_booking.py is not there yet"}
    done = subprocess.run(
        [sys.executable, str(script), *(["--quick"] if quick else [])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [], {"error": f"bench/scheduling_booking.py failed ({done.returncode}): {tail}"}
    try:
        figures = dict(json.loads(lines[-1]))
    except ValueError:
        return lines, {"error": f"bench/scheduling_booking.py ended without a JSON line ({done.returncode})"}
    if done.returncode:
        figures["exit_code"] = done.returncode
    return lines[:-1], figures


# --- main ---------------------------------------------------------------------------------------------


def table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-booking", action="store_true", help="skip (c), PostgreSQL contention")
    parser.add_argument("--phase", default="")
    parser.add_argument("--tutors", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    if args.phase == "db":
        print(json.dumps(phase_db(args.tutors, args.repeat)))
        return

    started = time.perf_counter()
    repeat = 3 if args.quick else 9
    one = bench_one_tutor(repeat)
    search = bench_class_search(1000, 1 if args.quick else 3)
    db_tutors = 100 if args.quick else 1000
    db = bench_db(db_tutors, 2)
    booking_started = time.perf_counter()
    booking_lines, booking = ([], {"skipped": True}) if args.no_booking else bench_booking(args.quick)
    booking["wall_s"] = round(time.perf_counter() - booking_started, 1)

    rows: list[tuple[str, ...]] = [
        ("case", "slots", "engine", "baseline (per-day loop)", "speed-up", "same slots")
    ]
    for r in one:
        rows.append(
            (
                f"(a) one tutor, 90 days, {r['busy_blocks']:,} busy blocks",
                f"{r['slots']:,}",
                f"{r['engine_ms']:.2f} ms",
                f"{r['baseline_ms']:.2f} ms",
                f"{r['speedup']}x",
                "yes" if r["same_slots"] else "NO",
            )
        )
    rows.append(
        (
            f"(b) {search['tutors']:,} tutors of one class, {CLASS_DAYS} days, in process",
            f"{search['slots']:,}",
            f"{search['engine_s']:.3f} s",
            f"{search['baseline_s']:.3f} s",
            f"{search['speedup']}x",
            "yes" if not search["tutors_differing"] else f"{search['tutors_differing']} tutors differ",
        )
    )
    if "error" in db:
        rows.append((f"(b) {db_tutors:,} tutors, SQLite via services", "-", "failed", "", "", ""))
    else:
        rows.append(
            (
                f"(b) {db['tutors']:,} tutors of one class, {CLASS_DAYS} days, SQLite, services.slots_for per tutor (before)",
                f"{db['slots']:,}",
                f"{db['services_s']:.3f} s",
                f"{db['baseline_s']:.3f} s (same reads)",
                f"{db['speedup']}x",
                "yes" if not db["tutors_differing"] else f"{db['tutors_differing']} tutors differ",
            )
        )
        rows.append(
            (
                f"(b) {db['tutors']:,} tutors of one class, {CLASS_DAYS} days, SQLite, services.class_slots (batched)",
                f"{db['slots']:,}",
                f"{db['batched_s']:.3f} s",
                f"{db['baseline_s']:.3f} s (per-tutor reads)",
                f"{db['batched_speedup_vs_baseline']}x ({db['batched_speedup_vs_per_tutor']}x vs before)",
                "yes" if not db["batched_differing"] else f"{db['batched_differing']} tutors differ",
            )
        )
    table(rows)
    if "error" in db:
        print(f"(b) on SQLite: {db['error']}")
    if booking_lines:
        print()
        print("(c) bookings under contention on PostgreSQL (bench/scheduling_booking.py):")
        for line in booking_lines:
            print("    " + line)
    elif not booking.get("skipped"):
        print(f"(c) bookings under contention: {booking.get('error')}")
    figures = {
        "bench": "scheduling",
        "quick": args.quick,
        "one_tutor_90_days": one,
        "class_search_in_process": search,
        "class_search_sqlite": db,
        "booking": booking,
        "bench_wall_s": round(time.perf_counter() - started, 1),
        "measured_at": dt.datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
