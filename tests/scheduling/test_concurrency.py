"""200 booking attempts at one slot at the same moment give exactly one session.

Each run is a process of its own against a database of its own: PostgreSQL on
127.0.0.1:5432 always (the exclusion constraint decides), and an SQLite file (the
serialised write decides), whatever database the test run itself uses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.scheduling.contention import ROOT, default_url


@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
def test_200_concurrent_attempts_book_one_session(vendor: str) -> None:
    url, folder = default_url(vendor, "hub_booking_contention")
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.scheduling.contention",
                "--database-url",
                url,
                "--attempts",
                "200",
                "--connections",
                "40",
            ],
            cwd=ROOT,
            # The run picks its own database; a pool size another test's gunicorn.conf.py left
            # in os.environ is for PostgreSQL only and would refuse the SQLite run.
            env={name: value for name, value in os.environ.items() if name != "DATABASE_POOL_MAX_SIZE"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["vendor"] == vendor
    assert result["error_samples"] == []
    assert (result["booked"], result["taken"], result["refused"], result["errors"]) == (1, 199, 0, 0)
    assert (result["sessions"], result["max_per_slot"], result["overlapping_pairs"]) == (1, 1, 0)


def test_exclusion_violation_becomes_slot_taken_and_the_transaction_lives_on() -> None:
    url, _ = default_url("postgresql", "hub_booking_race")
    done = subprocess.run(
        [sys.executable, "-m", "tests.scheduling.contention", "--database-url", url, "--mode", "race"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "vendor": "postgresql",
        "waited_on_lock": True,
        "outcome": "taken_by_constraint",
        "alternatives": 5,
        "after": 1,
        "sessions": 1,
    }
