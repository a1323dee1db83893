"""Test settings: the production module with a few test-only overrides.

Set before import so the production module's fail-closed checks pass with test
values; the database and broker still come from DATABASE_URL / CELERY_BROKER_URL
when set (CI runs on PostgreSQL and Redis).
"""

from __future__ import annotations

import os
from pathlib import Path

_base = Path(__file__).resolve().parent.parent
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
# A fixed Fernet key: tests must not depend on whatever a developer has exported.
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "dGVzdC1rZXktMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
os.environ.setdefault("OUTBOUND_ALLOW_PRIVATE_ADDRESSES", "true")
os.environ.setdefault("VAR_DIR", str(_base / "var" / "test"))
os.environ.setdefault("CACHE_KEY_PREFIX", f"test-{os.getpid()}")

# Under pytest-xdist each worker process gets its own cache prefix, Redis database
# (a test that clears the cache flushes the whole database) and Celery queue, so two
# workers never see each other's keys or consume each other's tasks.
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _xdist_worker:
    _worker_no = int(_xdist_worker.removeprefix("gw") or 0)
    os.environ["CACHE_KEY_PREFIX"] = f"{os.environ['CACHE_KEY_PREFIX']}-{_xdist_worker}"
    os.environ["CELERY_TASK_DEFAULT_QUEUE"] = f"hub-{_xdist_worker}"
    if os.environ.get("REDIS_URL"):
        from urllib.parse import urlsplit, urlunsplit

        _url = urlsplit(os.environ["REDIS_URL"])
        _db = int(_url.path.strip("/") or 0)
        # CI's cache is database 14; workers count down from it (13, ...), clear of
        # the databases tests name for themselves (11, 12) while there are two workers.
        os.environ["REDIS_URL"] = urlunsplit(_url._replace(path=f"/{_db - _worker_no}"))

from config.settings import *

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

STATIC_ROOT.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]

# Each test run gets its own embedded-broker folder, so two runs on one machine
# never consume each other's messages.
if CELERY_BROKER_URL == "filesystem://":
    _broker = VAR_DIR / f"broker-{os.getpid()}"
    for _folder in ("queue", "control"):
        (_broker / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker / "queue"),
        "data_folder_out": str(_broker / "queue"),
        "control_folder": str(_broker / "control"),
        "store_processed": False,
    }

# A file, not SQLite's shared-cache memory database: tests that write from several
# threads (the AGS dispatcher's senders) need SQLite's file locks, which wait for
# the busy timeout, where the memory database fails at once ("table is locked").
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    import atexit

    _test_db = VAR_DIR / f"test-db-{os.getpid()}.sqlite3"
    DATABASES["default"]["TEST"] = {"NAME": str(_test_db)}

    @atexit.register
    def _remove_test_db_wal() -> None:
        # Django removes the database file after the run; its WAL files are ours to remove.
        for suffix in ("-wal", "-shm"):
            Path(f"{_test_db}{suffix}").unlink(missing_ok=True)
