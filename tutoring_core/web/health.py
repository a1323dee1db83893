"""Liveness and readiness probes: JSON, no authentication, no secrets."""

from __future__ import annotations

import time
import uuid

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"
        return type(exc).__name__
    return None


def _check_cache() -> str | None:
    """A round trip on a key no one else uses: a missing cache table (a deploy that
    skipped migrate) or an unreachable Redis shows here, not as 500s on every LTI
    login, which keeps its state and nonce in this cache."""
    from django.core.cache import cache

    key = f"readyz:{uuid.uuid4().hex}"
    try:
        cache.set(key, key, 30)
        found = cache.get(key)
        cache.delete(key)
    except Exception as exc:  # the database cache raises DB errors, Redis its own
        return type(exc).__name__
    if found != key:
        return "CacheValueLost"
    return None


def _check_broker() -> str | None:
    from celery import current_app as app  # config.celery's app (the core never imports config)
    from django.conf import settings

    try:
        # The URL from settings, so the probe checks what this process is configured for.
        with app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # kombu raises transport-specific errors
        return type(exc).__name__
    return None


def _last_heartbeat() -> str | None:
    from django.core.cache import cache

    from tutoring_core.web.tasks import HEARTBEAT_KEY

    try:
        return cache.get(HEARTBEAT_KEY)  # type: ignore[no-any-return]
    except Exception:  # a cache outage must not break the probe
        return None


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {}
    for name, check in (
        ("database", _check_database),
        ("cache", _check_cache),
        ("broker", _check_broker),
    ):
        started = time.perf_counter()
        error = check()
        checks[name] = {
            "ok": error is None,
            "ms": round((time.perf_counter() - started) * 1000, 1),
            **({"error": error} if error else {}),
        }
    ready = all(c["ok"] for c in checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "unavailable", "checks": checks}
    # Informational: a worker that stopped does not make the web tier unready.
    body["worker_last_heartbeat"] = _last_heartbeat()
    return JsonResponse(body, status=200 if ready else 503)
