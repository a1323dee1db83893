"""Which failures are worth retrying, and when to retry them."""

from __future__ import annotations

import random

# Canvas answers its API throttle with 403 and this text, not 429
# (Canvas REST API docs, "Throttling").
_CANVAS_RATE_LIMIT_TEXT = "rate limit exceeded"


def is_rate_limited(status: int | None, body: str = "") -> bool:
    if status == 429:
        return True
    return status == 403 and _CANVAS_RATE_LIMIT_TEXT in body.lower()


def is_transient(status: int | None, body: str = "", *, timed_out: bool = False) -> bool:
    """Timeouts, network failures (no status), 429, 5xx and Canvas's throttling 403."""
    if timed_out or status is None:
        return True
    return status >= 500 or is_rate_limited(status, body)


def backoff_seconds(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with full jitter (attempt 1 waits up to ``base``), never
    sooner than the platform's Retry-After."""
    draw = (rng or random).random()
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = ceiling * (0.5 + draw / 2)  # "equal jitter": at least half the ceiling
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
