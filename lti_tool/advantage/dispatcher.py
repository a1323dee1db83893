"""The per-platform score dispatcher: one loop per platform registration that pulls
due outbox entries from the database and sends them at the platform's rate.

Why not one Celery task per score with a countdown retry: a retried score then
sits in a countdown while the platform's budget goes unused, and after an outage
the backlog only comes back as fast as the countdowns fire (issue 4, measured in
bench/ags.py). Here the database is the queue: whenever any entry is due and the
platform is not paused, the dispatcher leases it and sends it, so the rate budget
is used while there is work.

- One dispatcher per registration runs at a time, across all workers: a cache
  lock with a short TTL, renewed while it runs, so a dead worker's lock expires.
- It runs for a bounded slice, then hands over to a fresh task (and it stops early
  when nothing is due soon), so a worker is never held for long and a deploy
  never waits on it.
- Entries are leased in small batches (``progress.outbox_lease``: SKIP LOCKED on
  PostgreSQL, a lease token everywhere) just before they are sent; a lease that
  outlives its worker runs out and the entry is leased again.
- Pacing and limits are the shared ones of throttle.py (rate per second, slots in
  flight, pauses): other workers and one-off sends see the same budget.
- After the circuit opened (the platform looked down), one request at a time goes
  out until one succeeds, so a platform that is still down costs one try per
  pause rather than a burst.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.utils import timezone

from lti_tool.advantage import delivery, throttle
from lti_tool.advantage.models import AGS_DESTINATION
from tutoring_core.progress import api as progress

logger = logging.getLogger(__name__)

# With nothing due for this long, the dispatcher stops (and schedules its successor
# for when the next entry falls due) instead of holding a worker while it waits.
LINGER_SECONDS = 2.0
# How often an idle dispatcher looks for new entries, and renews its lock.
POLL_SECONDS = 0.25
RENEW_SECONDS = 1.0
# A successor is scheduled only for entries due this soon; later ones are found
# by the beat sweep (a countdown task sits unacknowledged in a worker meanwhile).
HANDOFF_HORIZON_SECONDS = 300.0
# A run that raised hands over no sooner than this.
CRASH_DELAY_SECONDS = 5.0
# A queued kick is not repeated for this long (bursts of commits enqueue one task).
KICK_SECONDS = 5


def _key(registration_id: str, what: str) -> str:
    return f"lti-adv:plat:{registration_id}:{what}"


class DispatcherLock:
    """At most one dispatcher per registration. The entry expires on its own when
    its holder stops renewing it (a killed worker)."""

    def __init__(self, registration_id: str, *, seconds: int) -> None:
        self.key = _key(registration_id, "dispatcher")
        self.seconds = max(1, seconds)
        self.owner = uuid.uuid4().hex

    def acquire(self) -> bool:
        return bool(cache.add(self.key, self.owner, timeout=self.seconds))

    def renew(self) -> bool:
        """Extend the lock; False if it is no longer ours (it ran out and was taken)."""
        if cache.get(self.key) != self.owner:
            return False
        return bool(cache.touch(self.key, timeout=self.seconds))

    def release(self) -> None:
        if cache.get(self.key) == self.owner:
            cache.delete(self.key)


def is_running(registration_id: str) -> bool:
    return cache.get(_key(registration_id, "dispatcher")) is not None


def claim_kick(registration_id: str) -> bool:
    """True if the caller should enqueue a dispatcher: none runs and none is queued.

    A running dispatcher sees new entries by itself (it polls, and looks again after
    releasing its lock), and a queued one clears the mark when it starts, so a kick
    is only skipped when someone who will see the new entry is already on its way.
    """
    if is_running(registration_id):
        return False
    return bool(cache.add(_key(registration_id, "kicked"), 1, timeout=KICK_SECONDS))


@dataclass
class RunReport:
    """What one dispatcher run did. ``reason`` is why it ended: ``busy`` (another
    dispatcher holds the registration), ``idle`` (nothing due soon), ``slice`` (its
    time was up), or ``lost`` (its lock ran out and another took over)."""

    reason: str
    sent: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


def dispatch(
    registration_id: str,
    *,
    slice_seconds: float | None = None,
    handoff: Callable[[float], None] | None = None,
) -> RunReport:
    """Deliver the registration's due scores for up to ``slice_seconds``.

    ``handoff(delay)`` is called (after the lock is released, before in-flight
    requests finish) when entries remain due within ``HANDOFF_HORIZON_SECONDS``:
    the task layer enqueues the next run with that countdown.
    """
    registration_id = str(registration_id)
    lock = DispatcherLock(registration_id, seconds=settings.LTI_AGS_DISPATCH_LOCK_SECONDS)
    # Whoever was kicked to run has started: later kicks may enqueue again.
    cache.delete(_key(registration_id, "kicked"))
    if not lock.acquire():
        return RunReport("busy")
    run = _Run(
        registration_id,
        lock,
        slice_seconds if slice_seconds is not None else settings.LTI_AGS_DISPATCH_SLICE_SECONDS,
    )
    crashed = True
    try:
        run.loop()
        crashed = False
    finally:
        run.release_buffer()
        lock.release()
        if run.report.reason != "lost" and handoff is not None:
            # Looked at after the lock is released: an entry committed while we were
            # deciding to stop was either leased by us or is seen here.
            delay = _next_due_in(registration_id)
            if delay is not None and crashed:
                delay = max(delay, CRASH_DELAY_SECONDS)  # no tight loop of failing runs
            if delay is not None and delay <= HANDOFF_HORIZON_SECONDS:
                try:
                    handoff(delay)
                except Exception:  # the beat sweep picks the registration up again
                    logger.exception("Could not hand over the dispatcher of %s", registration_id)
        run.finish()
    logger.info(
        "Dispatcher of %s ended (%s) after sending %d: %s",
        registration_id,
        run.report.reason,
        run.report.sent,
        dict(run.report.outcomes),
    )
    return run.report


def _next_due_in(registration_id: str) -> float | None:
    due = progress.outbox_next_due(kind=AGS_DESTINATION, channel=registration_id)
    if due is None:
        return None
    return max(0.0, (due - timezone.now()).total_seconds())


class _Run:
    def __init__(self, registration_id: str, lock: DispatcherLock, slice_seconds: float) -> None:
        self.registration_id = registration_id
        self.lock = lock
        self.end = time.monotonic() + max(0.0, slice_seconds)
        self.concurrency = settings.LTI_AGS_MAX_CONCURRENCY
        self.per_second = settings.LTI_AGS_RATE_LIMIT_PER_SECOND
        self.report = RunReport("slice")
        self.buffer: deque[progress.OutboxItem] = deque()
        self.work: queue.SimpleQueue[progress.OutboxItem | None] = queue.SimpleQueue()
        self.in_flight = 0
        self.changed = threading.Condition()
        self.senders: list[threading.Thread] = []

    # --- the loop ----------------------------------------------------------------

    def loop(self) -> None:
        next_renew = time.monotonic() + RENEW_SECONDS
        while True:
            now = time.monotonic()
            if now >= self.end:
                self.report.reason = "slice"
                return
            if now >= next_renew:
                if not self.lock.renew():
                    logger.warning("Dispatcher of %s lost its lock; stopping", self.registration_id)
                    self.report.reason = "lost"
                    return
                next_renew = now + RENEW_SECONDS
            paused = throttle.paused_for(self.registration_id)
            if paused > 0:
                # Paused for Retry-After or by the circuit breaker: nothing goes out.
                self.release_buffer()
                self._wait(min(paused, RENEW_SECONDS, self.end - now))
                continue
            limit = 1 if throttle.probing(self.registration_id) else self.concurrency
            if not self._room(limit):
                self._wait(POLL_SECONDS, until_room=limit)
                continue
            if not self.buffer:
                leased = progress.outbox_lease(
                    kind=AGS_DESTINATION,
                    channel=self.registration_id,
                    limit=min(limit - self.in_flight, self.per_second),
                    lease_seconds=settings.LTI_AGS_LEASE_SECONDS,
                )
                if not leased:
                    if self.in_flight == 0:
                        due_in = _next_due_in(self.registration_id)
                        if due_in is None or due_in > LINGER_SECONDS:
                            self.report.reason = "idle"
                            return
                        self._wait(min(max(due_in, 0.01), POLL_SECONDS))
                    else:
                        # An answer may bring a retry due (or free a person's next score).
                        self._wait(POLL_SECONDS)
                    continue
                self.buffer.extend(leased)
            if not throttle.acquire_rate(self.registration_id, per_second=self.per_second, max_wait=1.0):
                continue
            if throttle.paused_for(self.registration_id) > 0:
                continue  # paused while we waited for the budget: the loop hands the buffer back
            self._send(self.buffer.popleft())

    def _room(self, limit: int) -> bool:
        with self.changed:
            return self.in_flight < limit

    def _wait(self, seconds: float, *, until_room: int = 0) -> None:
        """Sleep up to ``seconds``, waking early when a request finishes (with
        ``until_room``: once fewer than that many are in flight)."""
        if seconds <= 0:
            return
        with self.changed:
            if until_room > 0:
                self.changed.wait_for(lambda: self.in_flight < until_room, timeout=seconds)
            else:
                self.changed.wait(timeout=seconds)

    def _send(self, item: progress.OutboxItem) -> None:
        with self.changed:
            self.in_flight += 1
        if len(self.senders) < self.concurrency:
            sender = threading.Thread(
                target=self._sender, name=f"ags-send-{self.registration_id[:8]}", daemon=True
            )
            self.senders.append(sender)
            sender.start()
        self.work.put(item)
        self.report.sent += 1

    def _sender(self) -> None:
        try:
            while (item := self.work.get()) is not None:
                outcome = "error"
                try:
                    slot = delivery.concurrency_slot(self.registration_id)
                    if throttle.paused_for(self.registration_id) > 0:
                        outcome = delivery.release(item).kind  # paused since it was handed over
                    elif slot.acquire():
                        try:
                            outcome = delivery.deliver_leased(item).kind
                        finally:
                            slot.release()
                    else:  # another worker's requests fill the platform's slots
                        outcome = delivery.release(item).kind
                except Exception:
                    # The entry keeps its lease and is sent again when the lease runs out.
                    logger.exception("Score delivery %s raised", item.id)
                finally:
                    with self.changed:
                        self.in_flight -= 1
                        self.report.outcomes[outcome] += 1
                        self.changed.notify_all()
        finally:
            connections.close_all()  # this thread's own database connections

    # --- stopping ----------------------------------------------------------------

    def release_buffer(self) -> None:
        while self.buffer:
            item = self.buffer.popleft()
            try:
                delivery.release(item)
            except Exception:
                logger.exception("Could not hand back score delivery %s", item.id)

    def finish(self) -> None:
        """Wait for the requests in flight, then stop the sender threads."""
        for _ in self.senders:
            self.work.put(None)
        for sender in self.senders:
            sender.join()
