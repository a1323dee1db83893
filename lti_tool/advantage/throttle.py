"""Per-platform rate limit, concurrency limit and circuit breaker, shared by all
workers through the Django cache.

With Redis (production) ``add`` and ``incr`` are atomic. The database cache's
``incr`` is a read then a write, so under heavy concurrency it may let a few
extra requests through; the platform's 429 then pauses us, so the cost is a
retry, never a lost score.
"""

from __future__ import annotations

import logging
import random
import time
import uuid

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


def _prefix(registration_id: str) -> str:
    return f"lti-adv:plat:{registration_id}"


# --- pause (circuit breaker and Retry-After) ---------------------------------------


def paused_for(registration_id: str) -> float:
    """Seconds until the platform may be called again (0 when it may)."""
    until = cache.get(f"{_prefix(registration_id)}:paused-until")
    if not until:
        return 0.0
    return max(0.0, float(until) - time.time())


def pause(registration_id: str, seconds: float) -> None:
    """Hold every worker off the platform for ``seconds`` (never shortens a pause)."""
    if seconds <= 0:
        return
    key = f"{_prefix(registration_id)}:paused-until"
    until = time.time() + seconds
    current = cache.get(key)
    if current and float(current) >= until:
        return
    cache.set(key, until, timeout=int(seconds) + 5)


def _bump(key: str, timeout: int) -> int:
    cache.add(key, 0, timeout=timeout)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
        return 1


def record_success(registration_id: str) -> None:
    """The platform answered: count it, and close the circuit (end probing) if it
    was open."""
    prefix = _prefix(registration_id)
    _bump(f"{prefix}:ok:{int(time.time())}", timeout=10)
    if cache.get(f"{prefix}:probe"):
        cache.delete_many([f"{prefix}:probe", f"{prefix}:opens"])


def probing(registration_id: str) -> bool:
    """True after the circuit opened and until a request succeeds again ("half
    open"): a dispatcher then sends one request at a time, so a platform that is
    still down costs one try per pause, not a burst of them."""
    return bool(cache.get(f"{_prefix(registration_id)}:probe"))


def record_transient_failure(registration_id: str, *, sent_at: float | None = None) -> float:
    """Count a failure (5xx, timeout, network). The circuit opens (every worker
    pauses the platform, longer each time it opens again) when most of the last two
    seconds' answers were failures, at least LTI_AGS_CIRCUIT_FAILURES of them, or
    when the failure was a probe of an open circuit. Returns the pause set, or 0.

    A share, not failures in a row: requests go out in bursts, so the timeouts of one
    burst all come back together and would look like a run of failures on a
    platform that answers four requests in five. And a failure of a request sent
    (``sent_at``) before the circuit's last pause ended says nothing new: it
    neither reopens the circuit nor lengthens the pause.
    """
    prefix = _prefix(registration_id)
    # Read in the reverse of the order an opening writes them (probe-from, pause,
    # probing mark): whoever sees the mark also sees the rest.
    was_probing = probing(registration_id)
    if paused_for(registration_id) > 0:
        return 0.0  # already paused: this request went out before the pause began
    probe_from = cache.get(f"{prefix}:probe-from")
    if sent_at is not None and probe_from is not None and sent_at < float(probe_from):
        return 0.0
    second = int(time.time())
    buckets = [f"{prefix}:fail:{second}", f"{prefix}:fail:{second - 1}"]
    failures = _bump(buckets[0], timeout=10) + int(cache.get(buckets[1]) or 0)
    answered = sum(
        int(v) for v in cache.get_many([f"{prefix}:ok:{second}", f"{prefix}:ok:{second - 1}"]).values()
    )
    if not was_probing and (failures < settings.LTI_AGS_CIRCUIT_FAILURES or failures < answered):
        return 0.0
    if not cache.add(f"{prefix}:opening", 1, timeout=5):
        return 0.0  # another worker is opening it this moment
    try:
        cache.delete_many(buckets)
        opens = _bump(f"{prefix}:opens", timeout=3600)
        seconds = min(
            settings.LTI_AGS_CIRCUIT_PAUSE_CAP_SECONDS,
            settings.LTI_AGS_CIRCUIT_PAUSE_SECONDS * 2 ** (opens - 1),
        )
        # Only requests sent once the pause is over are probes; answers to the ones
        # sent before (or that slipped out as it began) are not news. Written before
        # the pause and the probing mark, so a failure answered meanwhile is judged by it.
        cache.set(f"{prefix}:probe-from", time.time() + seconds, timeout=3600)
        pause(registration_id, seconds)
        cache.set(f"{prefix}:probe", 1, timeout=3600)
    finally:
        cache.delete(f"{prefix}:opening")
    logger.warning(
        "Platform %s looks down (%d failures in two seconds, %d other answers): paused for %.1f s",
        registration_id,
        failures,
        answered,
        seconds,
    )
    return seconds


def record_rate_limited(registration_id: str, retry_after: float | None) -> float:
    """Count a 429 (or Canvas's throttling 403). Now and then one is a blip that
    the row's own Retry-After covers; when at least half of the last two seconds'
    requests were refused (and enough of them to mean something), we really are
    over the platform's budget and every worker pauses for Retry-After.
    Returns the pause set, or 0."""
    prefix = _prefix(registration_id)
    second = int(time.time())
    key = f"{prefix}:limited:{second}"
    cache.add(key, 0, timeout=10)
    try:
        limited = cache.incr(key)
    except ValueError:
        limited = 1
    limited += int(cache.get(f"{prefix}:limited:{second - 1}") or 0)
    sent = sum(int(cache.get(f"{prefix}:rate:{s}") or 0) for s in (second, second - 1))
    if limited < settings.LTI_AGS_CIRCUIT_FAILURES or limited * 2 < sent:
        return 0.0
    seconds = retry_after if retry_after is not None else 1.0
    pause(registration_id, seconds)
    logger.warning(
        "Platform %s refused %d of our last %d requests as over its rate: paused for %.1f s",
        registration_id,
        limited,
        sent,
        seconds,
    )
    return seconds


# --- rate limit ---------------------------------------------------------------------


# Platforms count requests per wall-clock second as they arrive. A request taken
# from one second's budget in that second's last moments could arrive in the next
# one and push it over the limit, so the budget is only handed out from a little
# after a second starts until a little before it ends.
_SECOND_START = 0.003
_SECOND_END = 0.975


def acquire_rate(registration_id: str, *, per_second: int, max_wait: float = 2.0) -> bool:
    """Take one request from this second's budget, waiting for a later second if this
    one is spent. False if none came free within ``max_wait`` seconds."""
    deadline = time.time() + max_wait
    while True:
        now = time.time()
        second = int(now)
        if now - second < _SECOND_END:
            key = f"{_prefix(registration_id)}:rate:{second}"
            cache.add(key, 0, timeout=5)
            try:
                used = cache.incr(key)
            except ValueError:
                continue
            if used <= per_second:
                return True
        wait = (second + 1 + _SECOND_START) - now + random.uniform(0, 0.005)
        if now + wait > deadline:
            return False
        time.sleep(wait)


# --- concurrency --------------------------------------------------------------------


class ConcurrencySlot:
    """One of ``limit`` slots for requests in flight to a platform; the slot's cache
    entry expires on its own if its worker dies holding it."""

    def __init__(self, registration_id: str, *, limit: int, hold_seconds: float) -> None:
        self.prefix = f"{_prefix(registration_id)}:slot"
        self.limit = limit
        self.hold = max(1, int(hold_seconds))
        self.owner = uuid.uuid4().hex
        self.key: str | None = None

    def acquire(self, max_wait: float = 2.0) -> bool:
        deadline = time.time() + max_wait
        start = random.randrange(self.limit)
        while True:
            for offset in range(self.limit):
                key = f"{self.prefix}:{(start + offset) % self.limit}"
                if cache.add(key, self.owner, timeout=self.hold):
                    self.key = key
                    return True
            if time.time() > deadline:
                return False
            time.sleep(random.uniform(0.005, 0.03))

    def release(self) -> None:
        if self.key is not None and cache.get(self.key) == self.owner:
            cache.delete(self.key)
        self.key = None
