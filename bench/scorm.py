"""SCORM import: wall time and peak RSS of ``scorm.services.package_import`` for generated
packages of 20 and 200 MB, beside plain ``unzip`` of the same file (and Python's own
``zipfile.extractall``) in the same run (issue 14).

    .venv/bin/python bench/scorm.py            # 20 and 200 MB, three runs each
    .venv/bin/python bench/scorm.py --quick    # 20 MB, one run; < 1 minute
    .venv/bin/python bench/scorm.py --sizes 20 50 100

Each package is a SCORM 2004 4th Edition course: imsmanifest.xml, a launch page, many
small HTML/JS/CSS files (compressible) and 1 MB media files (random bytes, as video and
images are already compressed), so about 90% of the bytes are media.

Every measurement runs in its own child process and its peak RSS is the kernel's
(``os.wait4`` ru_maxrss). The import child sets Django up on a fresh SQLite file (tables
straight from the models), imports into an empty store folder (the files are written:
no content-hash shortcut), and reports its RSS before the import (Django loaded) too;
"flat" means the import's peak hardly moves between 20 and 200 MB.

Commit latency at 100 concurrent learners is helper "scormplay"'s part: when
bench/scorm_commit.py exists it runs as a child (with --quick when given), its table is
shown and its JSON line nested under "commit".

Prints a table, then one JSON line, last.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MB = 1024 * 1024
RSS_LIMIT_MB = 100

MANIFEST = """<?xml version="1.0" encoding="UTF-8"?>
<manifest identifier="bench.course.{size}" version="1" xmlns="http://www.imsglobal.org/xsd/imscp_v1p1"
  xmlns:adlcp="http://www.adlnet.org/xsd/adlcp_v1p3" xmlns:imsss="http://www.imsglobal.org/xsd/imsss">
  <metadata><schema>ADL SCORM</schema><schemaversion>2004 4th Edition</schemaversion></metadata>
  <organizations default="org"><organization identifier="org"><title>Bench course {size} MB</title>
{items}
  </organization></organizations>
  <resources>
    <resource identifier="res" type="webcontent" adlcp:scormType="sco" href="index.html"><file href="index.html"/></resource>
  </resources>
</manifest>
"""


def generate(path: Path, size_mb: int, seed: int = 14) -> int:
    """Writes a package of about ``size_mb`` MB; returns its entry count."""
    rng = random.Random(seed)
    items = "\n".join(
        f'    <item identifier="lesson_{n}" identifierref="res" parameters="?lesson={n}"><title>Lesson {n}</title>'
        f'<imsss:sequencing><imsss:objectives><imsss:primaryObjective satisfiedByMeasure="true">'
        f"<imsss:minNormalizedMeasure>0.8</imsss:minNormalizedMeasure></imsss:primaryObjective>"
        f"</imsss:objectives></imsss:sequencing></item>"
        for n in range(20)
    )
    entries = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("imsmanifest.xml", MANIFEST.format(size=size_mb, items=items))
        zf.writestr("index.html", "<!doctype html><title>Bench</title><script src='js/app.js'></script>")
        entries += 2
        text_bytes = 0
        media = 0
        while text_bytes < size_mb * MB * 0.05:
            body = f"function step{entries}(){{return {rng.randrange(10**6)};}}\n" * rng.randrange(40, 200)
            zf.writestr(f"js/part{entries:05d}.js", body)
            text_bytes += len(body)
            entries += 1
        while path.stat().st_size < size_mb * MB:
            zf.writestr(zipfile.ZipInfo(f"media/clip{media:04d}.mp4"), rng.randbytes(MB), zipfile.ZIP_STORED)
            zf.fp.flush()  # type: ignore[union-attr]
            media += 1
            entries += 1
    return entries


def run_child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in KB, stdout) of a child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed ({proc.returncode}): {err[-2000:]}")
    return elapsed, usage.ru_maxrss, out


# --- children ---------------------------------------------------------------------------


def child_setup_db() -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    class NoMigrations:
        """Tables straight from the models (as pytest-django's --nomigrations)."""

        def __contains__(self, app: str) -> bool:
            return True

        def __getitem__(self, app: str) -> None:
            return None

    settings.MIGRATION_MODULES = NoMigrations()
    call_command("migrate", verbosity=0, interactive=False, run_syncdb=True)
    if settings.CACHES["default"]["BACKEND"].endswith("DatabaseCache"):
        call_command("createcachetable", verbosity=0)  # the import's per-hash lock lives there
    from tutoring_core.accounts.models import Tenant

    Tenant.objects.create(slug="bench", name="Bench District")


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def child_import(package: str) -> None:
    import django

    django.setup()
    from scorm.services import package_import
    from tutoring_core.accounts.models import Tenant

    tenant = Tenant.objects.get(slug="bench")
    before = _rss_kb()
    started = time.perf_counter()
    with open(package, "rb") as fileobj:
        info = package_import(
            tenant_id=tenant.pk, actor_id=None, fileobj=fileobj, filename=Path(package).name
        )
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "rss_before_kb": before, "files": info.file_count}))


def child_zipfile(package: str, target: str) -> None:
    started = time.perf_counter()
    with zipfile.ZipFile(package) as zf:
        zf.extractall(target)
    print(json.dumps({"seconds": time.perf_counter() - started}))


# --- parent -----------------------------------------------------------------------------


def measure(size_mb: int, repeat: int, work: Path, db_template: Path) -> dict[str, Any]:
    package = work / f"course-{size_mb}mb.zip"
    t0 = time.perf_counter()
    entries = generate(package, size_mb)
    generated_s = time.perf_counter() - t0
    rows: dict[str, list[tuple[float, int]]] = {"import": [], "unzip": [], "zipfile": []}
    before_kb: list[int] = []
    unzip = shutil.which("unzip")
    for run in range(repeat):
        # package_import: fresh DB copy, empty store, so every file is written.
        db = work / f"db-{size_mb}-{run}.sqlite3"
        shutil.copy(db_template, db)
        store = work / f"store-{size_mb}-{run}"
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "MEDIA_ROOT": str(store)}
        env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
        _, peak, out = run_child([sys.executable, __file__, "--child-import", str(package)], env)
        figures = json.loads(out.strip().splitlines()[-1])
        assert figures["files"] == entries, (figures, entries)
        rows["import"].append((figures["seconds"], peak))
        before_kb.append(figures["rss_before_kb"])
        shutil.rmtree(store, ignore_errors=True)
        db.unlink()
        if unzip:
            target = work / f"unzip-{size_mb}-{run}"
            seconds, peak, _ = run_child([unzip, "-q", "-o", str(package), "-d", str(target)])
            rows["unzip"].append((seconds, peak))
            shutil.rmtree(target, ignore_errors=True)
        target = work / f"zipfile-{size_mb}-{run}"
        _, peak, out = run_child([sys.executable, __file__, "--child-zipfile", str(package), str(target)])
        rows["zipfile"].append((json.loads(out.strip().splitlines()[-1])["seconds"], peak))
        shutil.rmtree(target, ignore_errors=True)
    package.unlink()

    def summary(samples: list[tuple[float, int]]) -> dict[str, float] | None:
        if not samples:
            return None
        return {
            "seconds": round(statistics.median(s for s, _ in samples), 3),
            "peak_rss_mb": round(max(p for _, p in samples) / 1024, 1),
        }

    return {
        "size_mb": size_mb,
        "entries": entries,
        "generate_s": round(generated_s, 2),
        "import": summary(rows["import"]),
        "import_rss_before_mb": round(max(before_kb) / 1024, 1),
        "unzip": summary(rows["unzip"]) if unzip else {"error": "unzip is not installed"},
        "zipfile_extractall": summary(rows["zipfile"]),
    }


def commit_part(quick: bool) -> tuple[list[str], dict[str, Any]]:
    script = ROOT / "bench" / "scorm_commit.py"
    if not script.exists():
        return [], {"error": "bench/scorm_commit.py (helper scormplay) is not there yet"}
    argv = [sys.executable, str(script), *(["--quick"] if quick else [])]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0:
        return lines[:-1], {
            "error": f"bench/scorm_commit.py failed ({done.returncode}): {done.stderr[-500:]}"
        }
    try:
        return lines[:-1], json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return lines, {"error": "bench/scorm_commit.py ended without a JSON line"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 MB, one run, commit part quick (< 1 minute)")
    parser.add_argument("--sizes", type=int, nargs="+", help="package sizes in MB (default 20 200)")
    parser.add_argument("--repeat", type=int, help="runs per size (default 3, --quick 1)")
    parser.add_argument("--no-commit", action="store_true", help="skip bench/scorm_commit.py")
    parser.add_argument("--child-import", help=argparse.SUPPRESS)
    parser.add_argument("--child-zipfile", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-setup-db", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_setup_db:
        return child_setup_db()
    if args.child_import:
        return child_import(args.child_import)
    if args.child_zipfile:
        return child_zipfile(*args.child_zipfile)

    sizes = args.sizes or ([20] if args.quick else [20, 200])
    repeat = args.repeat or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="bench-scorm-") as tmp:
        work = Path(tmp)
        db_template = work / "template.sqlite3"
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{db_template}", "MEDIA_ROOT": str(work / "unused")}
        env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
        run_child([sys.executable, __file__, "--child-setup-db"], env)
        results = [measure(size, repeat, work, db_template) for size in sizes]

    print(f"SCORM import, median of {repeat} run(s); peak RSS per child process (kernel ru_maxrss)")
    header = f"{'size':>6} {'entries':>7} | {'import s':>8} {'RSS MB':>7} {'(Django)':>8} | "
    header += f"{'unzip s':>7} {'RSS MB':>7} | {'zipfile s':>9} {'RSS MB':>7}"
    print(header)
    print("-" * len(header))
    for row in results:
        unzip = (
            row["unzip"]
            if "seconds" in row["unzip"]
            else {"seconds": float("nan"), "peak_rss_mb": float("nan")}
        )
        print(
            f"{row['size_mb']:>4}MB {row['entries']:>7} | {row['import']['seconds']:>8.2f} "
            f"{row['import']['peak_rss_mb']:>7.1f} {row['import_rss_before_mb']:>8.1f} | "
            f"{unzip['seconds']:>7.2f} {unzip['peak_rss_mb']:>7.1f} | "
            f"{row['zipfile_extractall']['seconds']:>9.2f} {row['zipfile_extractall']['peak_rss_mb']:>7.1f}"
        )
    peaks = [row["import"]["peak_rss_mb"] for row in results]
    added = [round(row["import"]["peak_rss_mb"] - row["import_rss_before_mb"], 1) for row in results]
    verdict = {
        "process_peak_rss_max_mb": max(peaks),
        "django_loaded_rss_mb": max(row["import_rss_before_mb"] for row in results),
        "import_added_rss_max_mb": max(added),
        "import_within_limit": max(added) <= RSS_LIMIT_MB,
        "process_within_limit": max(peaks) <= RSS_LIMIT_MB,
        "flat_mb": round(max(peaks) - min(peaks), 1),
    }
    print(
        f"the import adds at most {verdict['import_added_rss_max_mb']} MB to a process that holds "
        f"{verdict['django_loaded_rss_mb']} MB with Django and every app loaded; process peak "
        f"{verdict['process_peak_rss_max_mb']} MB (limit {RSS_LIMIT_MB}); spread across sizes {verdict['flat_mb']} MB"
    )
    figures: dict[str, Any] = {"bench": "scorm", "repeat": repeat, "import": results, "rss": verdict}
    if not args.no_commit:
        lines, commit = commit_part(args.quick)
        print("commit latency (bench/scorm_commit.py):")
        for line in lines:
            print("  " + line)
        if "error" in commit:
            print("  " + commit["error"])
        figures["commit"] = commit
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
