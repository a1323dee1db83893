from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.cache.backends.db import BaseDatabaseCache
from django.core.management import call_command
from django.db import connection


@pytest.mark.django_db
def test_healthz(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_reports_database_and_broker(client: Any) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["cache"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert set(body["checks"]) == {"database", "cache", "broker"}
    assert set(body) == {"status", "checks", "worker_last_heartbeat"}


@pytest.mark.django_db
def test_readyz_unavailable_when_broker_is_down(client: Any, settings: Any) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    # The probe names the failure's type, never a URL or a credential.
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db
def test_health_needs_no_authentication_and_rejects_post(client: Any) -> None:
    assert client.post("/healthz").status_code == 405


PROBE_TABLE = "hub_cache_readyz_test"


@pytest.fixture
def database_cache(settings: Any) -> Iterator[BaseDatabaseCache]:
    """The embedded default (a DatabaseCache) on a table of this test's own, even when
    the suite runs on Redis; created the way `migrate` creates hub_cache."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": PROBE_TABLE,
            "KEY_PREFIX": "readyz-test",
        }
    }
    call_command("createcachetable", verbosity=0)
    cache = caches["default"]
    assert isinstance(cache, BaseDatabaseCache)
    yield cache
    if PROBE_TABLE in connection.introspection.table_names():
        _drop_probe_table()


def _drop_probe_table() -> None:
    # The schema editor's own DROP TABLE (the cache's model class is not a real model).
    with connection.schema_editor() as editor:
        editor.execute(editor.sql_delete_table % {"table": editor.quote_name(PROBE_TABLE)})


@pytest.mark.django_db(transaction=True)
def test_readyz_ready_with_the_database_cache(client: Any, database_cache: BaseDatabaseCache) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["cache"]["ok"] is True


@pytest.mark.django_db(transaction=True)
def test_readyz_unavailable_when_the_cache_table_is_missing(
    client: Any, database_cache: BaseDatabaseCache
) -> None:
    _drop_probe_table()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["cache"]["ok"] is False
    assert body["checks"]["cache"]["error"] in {"OperationalError", "ProgrammingError"}
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert PROBE_TABLE not in response.content.decode()


@pytest.mark.django_db
def test_readyz_unavailable_when_redis_is_down(client: Any, settings: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "tutoring_core.redis_cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        }
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["cache"] == {
        "ok": False,
        "ms": body["checks"]["cache"]["ms"],
        "error": "ConnectionError",
    }
    assert body["checks"]["database"]["ok"] is True
    assert body["worker_last_heartbeat"] is None
    assert "127.0.0.1" not in response.content.decode()
