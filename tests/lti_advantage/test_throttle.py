"""The shared circuit breaker: when a platform counts as down, and how it is probed.
Time is frozen, so every answer falls in the same one-second bucket."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import pytest
import time_machine

from lti_tool.advantage import throttle

NOW = dt.datetime(2026, 11, 2, 15, 30, 0, 250000, tzinfo=dt.UTC)


@pytest.fixture
def registration(db: Any, settings: Any) -> str:
    settings.LTI_AGS_CIRCUIT_FAILURES = 5
    settings.LTI_AGS_CIRCUIT_PAUSE_SECONDS = 10.0
    settings.LTI_AGS_CIRCUIT_PAUSE_CAP_SECONDS = 60.0
    return str(uuid.uuid4())


def test_a_platform_answering_most_requests_is_never_paused(registration: str) -> None:
    with time_machine.travel(NOW, tick=False):
        for _ in range(8):
            throttle.record_success(registration)
        # Seven failures (a burst's timeouts coming back together) against eight answers.
        assert [throttle.record_transient_failure(registration) for _ in range(7)] == [0.0] * 7
        assert throttle.paused_for(registration) == 0.0
        assert not throttle.probing(registration)

        # Most answers are failures now: the circuit opens.
        assert throttle.record_transient_failure(registration) == 10.0
        assert throttle.paused_for(registration) == 10.0
        assert throttle.probing(registration)


def test_only_a_failed_probe_reopens_the_circuit_and_a_success_closes_it(registration: str) -> None:
    with time_machine.travel(NOW, tick=False):
        for _ in range(5):
            throttle.record_transient_failure(registration, sent_at=time.time())
        assert throttle.paused_for(registration) == 10.0
        # Requests sent before the pause ended come back failed: nothing changes.
        assert throttle.record_transient_failure(registration, sent_at=time.time() - 1) == 0.0
        assert throttle.record_transient_failure(registration, sent_at=time.time() + 5) == 0.0
        assert throttle.paused_for(registration) == 10.0

    with time_machine.travel(NOW + dt.timedelta(seconds=11), tick=False):
        assert throttle.paused_for(registration) == 0.0
        assert throttle.probing(registration)
        # The probe fails: paused again at once, for twice as long.
        assert throttle.record_transient_failure(registration, sent_at=time.time()) == 20.0

    with time_machine.travel(NOW + dt.timedelta(seconds=32), tick=False):
        throttle.record_success(registration)
        assert not throttle.probing(registration)
        # Closed: the next outage starts again from the first pause length.
        for _ in range(4):
            assert throttle.record_transient_failure(registration, sent_at=time.time()) == 0.0
        assert throttle.record_transient_failure(registration, sent_at=time.time()) == 10.0
