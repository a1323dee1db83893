"""A real task through a real worker on the configured broker: the embedded
filesystem broker locally, Redis in CI (CELERY_BROKER_URL)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from config.celery import app
from tutoring_core.accounts.tasks import clear_expired_sessions
from tutoring_core.web.tasks import HEARTBEAT_KEY, heartbeat


def _wait_for(predicate: Any, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_app_is_configured_for_safe_delivery() -> None:
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.task_time_limit == 900
    assert app.conf.beat_schedule["web-heartbeat"]["task"] == "web.heartbeat"


@pytest.mark.django_db(transaction=True)
def test_task_enqueued_on_commit_runs_on_a_real_worker() -> None:
    cache.delete(HEARTBEAT_KEY)
    expired = SessionStore()
    expired["x"] = 1
    expired.create()
    Session.objects.filter(pk=expired.session_key).update(
        expire_date=timezone.now() - timezone.timedelta(days=1)
    )
    live = SessionStore()
    live["x"] = 2
    live.create()

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        with transaction.atomic():
            heartbeat.delay_on_commit()
            clear_expired_sessions.delay_on_commit()
            # Nothing is sent before the commit: a rolled-back request enqueues nothing.
            time.sleep(0.5)
            assert cache.get(HEARTBEAT_KEY) is None
        assert _wait_for(lambda: cache.get(HEARTBEAT_KEY) is not None)
        assert _wait_for(lambda: not Session.objects.filter(pk=expired.session_key).exists())
    assert Session.objects.filter(pk=live.session_key).exists()


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_enqueues_nothing() -> None:
    cache.delete(HEARTBEAT_KEY)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        try:
            with transaction.atomic():
                heartbeat.delay_on_commit()
                raise RuntimeError("request failed")
        except RuntimeError:
            pass
        # A task sent after the rollback proves the worker is consuming.
        clear_expired_sessions.delay()
        time.sleep(2)
    assert cache.get(HEARTBEAT_KEY) is None
