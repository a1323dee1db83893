from __future__ import annotations

from typing import Any

import pytest


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
    assert body["checks"]["broker"]["ok"] is True
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
