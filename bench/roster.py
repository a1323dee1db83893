"""Roster sync at district scale, on PostgreSQL, against PostgreSQL COPY as the limit.

    .venv/bin/python bench/roster.py            # size L (50,000 students), RSS also at M
    .venv/bin/python bench/roster.py --quick    # size S (2,500), RSS also at 1,000; < 1 minute

Each phase runs in its own process so its peak RSS (ru_maxrss) is its own:
full import, the same import again (no change), a 1% delta, and COPY of the same
rows into the same tables (the physical limit), all in this run, on a database of
its own (dropped and created here). Prints a table, then one JSON line, last.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = os.environ.get("BENCH_DB", "roster_bench")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"{PG}/{DB}",
        DJANGO_SETTINGS_MODULE="config.settings_test",
        VAR_DIR=str(Path(tempfile.gettempdir()) / "roster-bench-var"),
        CACHE_KEY_PREFIX="roster-bench",
    )
    return env


def _child(*args: str) -> tuple[dict[str, Any], float]:
    """Run one phase in a fresh process; return its JSON result and peak RSS in MB."""
    proc = subprocess.Popen(
        [sys.executable, __file__, *args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate()
    if proc.returncode:
        sys.stderr.write(err)
        raise SystemExit(f"phase {args[:2]} failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    return result, float(result["peak_rss_mb"])


# --- phases (run in the child) ------------------------------------------------------------


def _setup_django() -> None:
    import django

    django.setup()


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_seconds() -> tuple[float, float | None, int]:
    """CPU seconds so far of this process and of its PostgreSQL backend (user + system,
    from /proc; None when the server is not on this machine)."""
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        backend: float | None = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        backend = None
    return time.process_time(), backend, pid


def _cpu_used(before: tuple[float, float | None, int]) -> dict[str, float | None]:
    client, backend, pid = _cpu_seconds()
    # The same backend throughout, or its CPU is not all counted.
    same = backend is not None and before[1] is not None and pid == before[2]
    return {
        "client_cpu_s": round(client - before[0], 2),
        "server_cpu_s": round(backend - before[1], 2)
        if same and backend is not None and before[1] is not None
        else None,
    }


def phase_generate(size: int, folder: Path) -> dict[str, Any]:
    from oneroster.protocol.generator import District

    district = District(size, seed=42, guardians=False, change_rate=0.01)
    district.write_csv(folder / "full")
    district.at(1).write_csv(folder / "delta", mode="delta")
    return {}


def phase_import(slug: str, path: Path, delta: bool, profile: str = "") -> dict[str, Any]:
    _setup_django()
    from oneroster.models import RosterConnection, SyncRun
    from oneroster.services import sync_run_create, sync_run_execute
    from tutoring_core.accounts.services import tenant_create

    tenant, _ = tenant_create(slug=slug, name=slug)
    connection, _ = RosterConnection.objects.get_or_create(tenant=tenant, name="bench", kind="csv")
    run = sync_run_create(connection=connection, mode="delta" if delta else "full", source_path=str(path))
    SyncRun.objects.filter(pk=run.pk).update(approved=True)
    profiler = None
    if profile:
        from pyinstrument import Profiler  # requirements/dev.txt

        profiler = Profiler(interval=0.002)
        profiler.start()
    cpu = _cpu_seconds()
    start = time.perf_counter()
    run = sync_run_execute(run_id=run.pk)
    seconds = time.perf_counter() - start
    used = _cpu_used(cpu)
    if profiler is not None:
        profiler.stop()
        Path(profile).write_text(profiler.output_text(color=False, unicode=False))
    if run.status != "succeeded":
        raise SystemExit(f"import failed: {run.status} {run.message}")
    rows = sum(sum(c.values()) for c in run.counts.values())
    written = sum(c["created"] + c["updated"] + c["deactivated"] for c in run.counts.values())
    return {
        "seconds": seconds,
        "rows": rows,
        "written": written,
        "counts": run.counts,
        "timings": run.timings,
        **used,
    }


def phase_copy(slug: str, path: Path) -> dict[str, Any]:
    """COPY the same rows into the same core tables: no diff, no mapping, no checks."""
    _setup_django()
    from django.contrib.auth.hashers import make_password
    from django.db import connection as db
    from django.utils import timezone

    from tutoring_core.accounts.models import ExternalIdentity, RoleAssignment, User
    from tutoring_core.accounts.services import tenant_create
    from tutoring_core.classes.models import Class, ClassKey, Course, Enrollment, School, Term

    tenant, _ = tenant_create(slug=slug, name=slug)
    now = timezone.now()
    password = make_password(None)
    rows = 0

    def rows_of(name: str) -> Any:
        with open(path / name, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            yield from reader

    def copy(model: Any, columns: list[str], tuples: Any) -> int:
        n = 0
        with (
            db.cursor() as cursor,
            cursor.cursor.copy(f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN") as out,
        ):
            for t in tuples:
                out.write_row(t)
                n += 1
        return n

    cpu = _cpu_seconds()
    start = time.perf_counter()
    schools: dict[str, uuid.UUID] = {}
    terms: dict[str, uuid.UUID] = {}
    courses: dict[str, uuid.UUID] = {}
    klasses: dict[str, uuid.UUID] = {}
    users: dict[str, uuid.UUID] = {}
    base = ["created_at", "updated_at", "tenant_id", "source", "is_active"]

    def ids(store: dict[str, uuid.UUID], sid: str) -> uuid.UUID:
        store[sid] = uuid.uuid4()
        return store[sid]

    rows += copy(School, ["id", "name", "code", *base], (
        (ids(schools, r["sourcedId"]), r["name"], r["identifier"], now, now, tenant.pk, "oneroster", True)
        for r in rows_of("orgs.csv") if r["type"] == "school"
    ))  # fmt: skip
    rows += copy(Term, ["id", "title", "kind", "start_date", "end_date", *base], (
        (ids(terms, r["sourcedId"]), r["title"], r["type"], r["startDate"], r["endDate"], now, now, tenant.pk,
         "oneroster", True) for r in rows_of("academicSessions.csv")
    ))  # fmt: skip
    rows += copy(Course, ["id", "title", "code", "school_id", *base], (
        (ids(courses, r["sourcedId"]), r["title"], r["courseCode"], schools.get(r["orgSourcedId"]), now, now,
         tenant.pk, "oneroster", True) for r in rows_of("courses.csv")
    ))  # fmt: skip
    class_rows = list(rows_of("classes.csv"))
    rows += copy(Class, ["id", "title", "code", "school_id", "course_id", *base], (
        (ids(klasses, r["sourcedId"]), r["title"], r["classCode"], schools.get(r["schoolSourcedId"]),
         courses.get(r["courseSourcedId"]), now, now, tenant.pk, "oneroster", True) for r in class_rows
    ))  # fmt: skip
    copy(ClassKey, ["tenant_id", "kind", "issuer", "subject", "klass_id", "created_at", "updated_at"], (
        (tenant.pk, "oneroster", "copy", sid, pk, now, now) for sid, pk in klasses.items()
    ))  # fmt: skip
    copy(Class.terms.through, ["class_id", "term_id"], (
        (klasses[r["sourcedId"]], terms[t]) for r in class_rows for t in r["termSourcedIds"].split(",") if t in terms
    ))  # fmt: skip
    user_rows = list(rows_of("users.csv"))
    rows += copy(User, ["id", "password", "is_superuser", "username", "first_name", "last_name", "email", "is_staff",
                        "is_active", "date_joined", "tenant_id", "display_name", "preferred_time_zone",
                        "email_verified", "updated_at"], (
        (ids(users, r["sourcedId"]), password, False, f"{slug}.{uuid.uuid4().hex[:16]}", r["givenName"],
         r["familyName"], r["email"].lower(), False, True, now, tenant.pk, "", "", False, now) for r in user_rows
    ))  # fmt: skip
    copy(ExternalIdentity, ["tenant_id", "kind", "issuer", "subject", "user_id", "last_seen_at", "created_at",
                            "updated_at"], (
        (tenant.pk, "oneroster", "copy", sid, pk, now, now, now) for sid, pk in users.items()
    ))  # fmt: skip
    hub = {"student": "student", "teacher": "teacher", "administrator": "school_admin", "parent": "guardian"}
    rows += copy(RoleAssignment, ["tenant_id", "user_id", "role", "school_id", "source", "is_active", "created_at",
                                  "updated_at"], (
        (tenant.pk, users[r["sourcedId"]], hub[r["role"]], schools.get(r["orgSourcedIds"].split(",")[0]),
         "oneroster", True, now, now) for r in user_rows
    ))  # fmt: skip
    rows += copy(Enrollment, ["id", "tenant_id", "user_id", "klass_id", "role", "status", "source", "is_primary",
                              "begin_date", "created_at", "updated_at"], (
        (uuid.uuid4(), tenant.pk, users[r["userSourcedId"]], klasses[r["classSourcedId"]], r["role"], "active",
         "oneroster", r["primary"] == "true", r["beginDate"] or None, now, now) for r in rows_of("enrollments.csv")
    ))  # fmt: skip
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": rows, **_cpu_used(cpu)}


# --- orchestration (the parent) ---------------------------------------------------------------


def _psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-qAtc", sql], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--phase", default="")
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--dir", default="")
    parser.add_argument("--slug", default="")
    parser.add_argument("--delta", action="store_true")
    parser.add_argument(
        "--profile",
        default="",
        help="write a pyinstrument profile of the full import (largest size) to this file",
    )
    args = parser.parse_args()

    if args.phase:
        folder = Path(args.dir)
        if args.phase == "generate":
            result = phase_generate(args.size, folder)
        elif args.phase == "import":
            result = phase_import(args.slug, folder, args.delta, args.profile)
        elif args.phase == "copy":
            result = phase_copy(args.slug, folder)
        else:
            raise SystemExit(f"unknown phase {args.phase}")
        result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        print(json.dumps(result, default=str))
        return

    size, small = (2_500, 1_000) if args.quick else (50_000, 10_000)
    label = "S" if args.quick else "L"
    _psql(f"DROP DATABASE IF EXISTS {DB}")
    _psql(f"CREATE DATABASE {DB}")
    migrate = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"],
        env=_env(),
        capture_output=True,
        text=True,
    )
    if migrate.returncode:
        sys.stderr.write(migrate.stderr)
        raise SystemExit("migrate failed")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="roster-bench-") as tmp:
        results: dict[int, Any] = {}
        for n in (small, size):
            folder = Path(tmp) / str(n)
            _child("--phase", "generate", "--size", str(n), "--dir", str(folder))
            profile = ("--profile", str(Path(args.profile).resolve())) if args.profile and n == size else ()
            full, full_rss = _child(
                "--phase", "import", "--slug", f"bench-{n}", "--dir", str(folder / "full"), *profile
            )
            results[n] = {"full": full, "full_rss": full_rss}
            if n != size:
                continue
            same, same_rss = _child(
                "--phase", "import", "--slug", f"bench-{n}", "--dir", str(folder / "full")
            )
            delta, delta_rss = _child(
                "--phase", "import", "--slug", f"bench-{n}", "--dir", str(folder / "delta"), "--delta"
            )
            copy, copy_rss = _child("--phase", "copy", "--slug", f"copy-{n}", "--dir", str(folder / "full"))
            results[n].update(
                same=same, same_rss=same_rss, delta=delta, delta_rss=delta_rss, copy=copy, copy_rss=copy_rss
            )
    _psql(f"DROP DATABASE IF EXISTS {DB}")
    r = results[size]
    full_s, same_s, delta_s, copy_s = (r[k]["seconds"] for k in ("full", "same", "delta", "copy"))
    enrollments = r["full"]["counts"]["enrollment"]["created"]
    figures = {
        "size": label,
        "students": size,
        "enrollments": enrollments,
        "rows": r["full"]["rows"],
        "full_import_s": round(full_s, 2),
        "full_rows_per_s": round(r["full"]["rows"] / full_s),
        "full_peak_rss_mb": r["full_rss"],
        "no_change_s": round(same_s, 2),
        "no_change_share_of_full": round(same_s / full_s, 3),
        "delta_rows_written": r["delta"]["written"],
        "delta_s": round(delta_s, 2),
        "delta_share_of_full": round(delta_s / full_s, 3),
        "copy_s": round(copy_s, 2),
        "copy_rows_per_s": round(r["copy"]["rows"] / copy_s),
        # CPU seconds of the phase's process and of its PostgreSQL backend: what each did,
        # whatever else the machine was doing (wall seconds move with the load).
        "cpu_s": {
            k: {"client": r[k]["client_cpu_s"], "server": r[k]["server_cpu_s"]}
            for k in ("full", "same", "delta", "copy")
        },
        "full_over_copy": round(full_s / copy_s, 2),
        "smaller_students": small,
        "smaller_full_peak_rss_mb": results[small]["full_rss"],
        "targets": {
            "full_within_3x_copy": full_s <= 3 * copy_s,
            "peak_rss_at_most_300mb": r["full_rss"] <= 300,
            "no_change_at_most_25pct": same_s <= 0.25 * full_s,
            "delta_at_most_5pct": delta_s <= 0.05 * full_s,
        },
        # Wall seconds per phase of each import (the run's own report, SyncRun.timings).
        "phase_seconds": {k: r[k]["timings"] for k in ("full", "same", "delta")},
        "bench_wall_s": round(time.perf_counter() - started, 1),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    table = [
        ("phase", "seconds", "rows/s", "peak RSS MB", "vs", "CPU s client + server"),
        (f"full import {label} ({size:,} students)", f"{full_s:.2f}", f"{figures['full_rows_per_s']:,}", f"{r['full_rss']:.0f}",
         f"{figures['full_over_copy']}x COPY"),
        ("same import again (no change)", f"{same_s:.2f}", "", f"{r['same_rss']:.0f}", f"{figures['no_change_share_of_full']:.1%} of full"),
        (f"1% delta ({r['delta']['written']:,} rows written)", f"{delta_s:.2f}", "", f"{r['delta_rss']:.0f}",
         f"{figures['delta_share_of_full']:.1%} of full"),
        ("PostgreSQL COPY, same rows (baseline)", f"{copy_s:.2f}", f"{figures['copy_rows_per_s']:,}", f"{r['copy_rss']:.0f}", "1.0x"),
        (f"full import ({small:,} students)", f"{results[small]['full']['seconds']:.2f}", "", f"{results[small]['full_rss']:.0f}",
         "RSS flatness check"),
    ]  # fmt: skip

    def cpu(k: str) -> str:
        server = r[k]["server_cpu_s"]
        return f"{r[k]['client_cpu_s']:.1f} + {'?' if server is None else f'{server:.1f}'}"

    table = [
        table[0],
        *((*row, cpu(k)) for row, k in zip(table[1:5], ("full", "same", "delta", "copy"), strict=True)),
        (*table[5], ""),
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(6)]
    for row in table:
        print("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
