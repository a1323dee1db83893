"""Bookings per second under contention on PostgreSQL, beside an unconstrained insert.

Every attempt is a thread with its own connection (at most --connections at once; the
server allows 100), all released together by a barrier, against a fresh database made
for the run (tests/scheduling/contention.py does the work in a process of its own):

Both runs share one database, its tables made once straight from the models (seconds,
where replaying every migration takes tens; the models carry the exclusion constraint),
the sessions of the first run deleted before the second:

- booking: ``booking_create`` for one tutor, the attempts spread over --slots hour
  slots, so most attempts lose to the exclusion constraint or the check before it and
  answer SlotTaken with the nearest free slots; exactly one booking per slot must win.
- baseline: the same threads each insert a session row for a tutor of their own with
  the ORM (no checks, no contention, no audit or notification): the floor the
  database and Django set.

    .venv/bin/python bench/scheduling_booking.py            # 1,000 attempts, 50 slots
    .venv/bin/python bench/scheduling_booking.py --quick    # 100 attempts, 10 slots, 20 connections

Prints a table, then one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.scheduling.contention import default_url  # noqa: E402


def _run(modes: list[str], attempts: int, slots: int, connections: int) -> dict[str, dict[str, Any]]:
    """All modes in one child process against one database, made and migrated once."""
    url, _ = default_url("postgresql", "hub_bench_booking")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.scheduling.contention",
            "--database-url",
            url,
            "--mode",
            ",".join(modes),
            "--attempts",
            str(attempts),
            "--slots",
            str(slots),
            "--connections",
            str(connections),
            "--schema",
            "models",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{','.join(modes)} run failed:\n{done.stderr[-3000:]}")
    found = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    return found if len(modes) > 1 else {modes[0]: found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--connections", type=int, default=0, help="default: 40 (20 with --quick)")
    args = parser.parse_args()
    attempts, slots = (100, 10) if args.quick else (1000, 50)
    args.connections = args.connections or (20 if args.quick else 40)
    runs = _run(["insert", "booking"], attempts, slots, args.connections)
    baseline, booking = runs["insert"], runs["booking"]
    rows = [("unconstrained insert (baseline)", baseline), ("booking_create under contention", booking)]
    print(
        f"{'run':<34} {'attempts':>8} {'booked':>7} {'taken':>6} {'errors':>6} {'seconds':>8} {'attempts/s':>11}"
    )
    for name, r in rows:
        print(
            f"{name:<34} {r['attempts']:>8} {r['booked']:>7} {r['taken']:>6} {r['errors']:>6} "
            f"{r['seconds']:>8} {r['attempts_per_second']:>11}"
        )
    correct = (
        booking["max_per_slot"] == 1 and booking["booked"] == slots and booking["overlapping_pairs"] == 0
    )
    print(f"exactly one booking per slot: {'yes' if correct else 'NO'}")
    for sample in booking["error_samples"] + baseline["error_samples"]:
        print(f"error: {sample}")
    print(
        f"losers refused by the exclusion constraint (the rest by the check before it): {booking['taken_by_constraint']}"
    )
    print(
        json.dumps(
            {
                "bench": "scheduling_booking",
                "database": "postgresql",
                "attempts": attempts,
                "slots": slots,
                "connections": args.connections,
                "baseline_inserts_per_s": baseline["attempts_per_second"],
                "booking_attempts_per_s": booking["attempts_per_second"],
                "bookings": booking["booked"],
                "slot_taken": booking["taken"],
                "slot_taken_by_constraint": booking["taken_by_constraint"],
                "errors": booking["errors"] + baseline["errors"],
                "one_per_slot": correct,
            }
        )
    )
    if not correct:
        sys.exit(1)


if __name__ == "__main__":
    main()
