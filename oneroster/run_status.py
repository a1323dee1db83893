"""How a sync run's state reads to a district admin: phases and timings in words,
progress that says what it knows (rows read while reading, changes applied while
applying) and a failed run as failed with its reason, never as 100 %."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oneroster.models import SyncRun

PHASES: dict[str, str] = {
    "": "Waiting to start",
    "fetch": "Reading the roster",
    "validate": "Checking the rows",
    "diff": "Comparing with the hub",
    "guard": "Waiting for approval",
    "apply": "Applying changes",
    "done": "Finished",
}
# run.timings keys (services._Clock, pipeline.Applier) in the same words.
TIMINGS: dict[str, str] = {
    "fetch_stage": "Reading the roster",
    "validate": "Checking the rows",
    "diff": "Comparing with the hub",
    "guard": "Safety check",
    "apply": "Applying",
    "cleanup": "Cleaning up",
    "this_attempt": "Total for this attempt",
}
ENTITY_WORDS: dict[str, str] = {
    "org": "schools and districts",
    "academicSession": "terms",
    "course": "courses",
    "class": "classes",
    "user": "people",
    "role": "roles",
    "agent": "guardian links",
    "enrollment": "enrollments",
    "term_parents": "term hierarchy",
    "analyze": "database statistics",
}


@dataclass(frozen=True)
class RunProgress:
    status: str
    status_label: str
    phase: str
    phase_label: str
    # None while the total is unknown (reading the source): the page shows a bar
    # that moves without a value, the JSON a null.
    percent: int | None
    rows_read: int | None
    text: str
    failed: bool
    reason: str


def _count(n: int) -> str:
    return f"{n:,}"


def run_progress(run: SyncRun) -> RunProgress:
    status = run.status
    phase = run.phase
    failed = status in (SyncRun.Status.FAILED, SyncRun.Status.REJECTED)
    percent: int | None
    rows_read: int | None = None
    if failed:
        percent = None
        text = f"Stopped: {run.message}" if run.message else "Stopped."
    elif status == SyncRun.Status.SUCCEEDED:
        percent = 100
        if run.dry_run:
            text = "Dry run finished: nothing was applied."
        elif run.progress_total:
            text = f"{_count(run.progress_done)} of {_count(run.progress_total)} changes applied."
        else:
            text = "Finished: nothing needed to change."
    elif status == SyncRun.Status.QUEUED and not phase:
        percent, text = 0, "Waiting for a worker to start it."
    elif phase in ("fetch", "validate", "diff"):
        percent, rows_read = None, run.progress_done
        text = f"{_count(run.progress_done)} rows read so far."
        if phase != "fetch":
            text = f"{_count(run.progress_done)} rows read; {PHASES[phase].lower()}."
    elif phase == "apply" and run.progress_total:
        percent = min(100, int(100 * run.progress_done / run.progress_total))
        text = f"{_count(run.progress_done)} of {_count(run.progress_total)} changes applied."
    elif status == SyncRun.Status.AWAITING_APPROVAL:
        percent, text = None, "Waiting for an admin to approve or reject it."
    else:
        percent, text = None, PHASES.get(phase, phase)
    if failed:
        phase_label = "Stopped" if status == SyncRun.Status.FAILED else "Rejected"
    else:
        phase_label = PHASES.get(phase, phase.replace("_", " ").capitalize())
    return RunProgress(
        status=status,
        status_label=run.get_status_display(),
        phase=phase,
        phase_label=phase_label,
        percent=percent,
        rows_read=rows_read,
        text=text,
        failed=failed,
        reason=run.message if failed else "",
    )


def timing_rows(timings: dict[str, Any]) -> list[tuple[str, float]]:
    """run.timings as (words, seconds) rows; apply steps as "Applying people" etc."""
    rows = []
    for phase, value in timings.items():
        label = TIMINGS.get(phase, phase.replace("_", " ").capitalize())
        if isinstance(value, dict):
            rows += [(f"{label} {_step_words(step)}", seconds) for step, seconds in value.items()]
        else:
            rows.append((label, value))
    return rows


def _step_words(step: str) -> str:
    entity, _, action = step.partition(".")
    words = ENTITY_WORDS.get(entity, entity.replace("_", " "))
    if action == "deactivate":
        return f"{words} (deactivating)"
    return words + (f" ({action.replace('_', ' ')})" if action else "")
