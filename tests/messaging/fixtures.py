"""Fixtures shared by the messaging and calendars tests (imported by their conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import time_machine

from config.celery import app as celery_app
from tests.peers.smtp import SmtpSink
from tests.scheduling.factories import NOW, World, make_world


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


@pytest.fixture
def frozen() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def sink(smtp_sink: SmtpSink, settings: Any) -> Iterator[SmtpSink]:
    """The loopback SMTP sink, empty, with Django's SMTP backend pointed at it."""
    smtp_sink.clear()
    smtp_sink.refuse_with = None
    for name, value in smtp_sink.email_settings().items():
        setattr(settings, name, value)
    yield smtp_sink
    smtp_sink.refuse_with = None


@pytest.fixture
def eager() -> Iterator[None]:
    """Tasks run in-process when enqueued (after commit), as a worker would run them."""
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = False
