"""Report: the JSON summary of a run that the import command prints and the report
page shows (counts, the first errors, the guard, per-phase timings)."""

from __future__ import annotations

from typing import Any

from oneroster.models import SyncRun

# Errors listed in the report (the run page lists more of them).
REPORTED_ERRORS = 50


def run_report(run: SyncRun) -> dict[str, Any]:
    """The JSON summary the command prints and the report page shows."""
    return {
        "run": str(run.pk),
        "connection": str(run.connection_id),
        "mode": run.mode,
        "dry_run": run.dry_run,
        "status": run.status,
        "message": run.message,
        "counts": run.counts,
        "errors": [
            {
                "entity": e.entity,
                "location": e.location,
                "line": e.line,
                "sourcedId": e.sourced_id,
                "message": e.message,
            }
            for e in run.errors.all()[:REPORTED_ERRORS]
        ],
        "error_count": run.error_count,
        "guard": run.guard,
        "timings": run.timings,
    }
