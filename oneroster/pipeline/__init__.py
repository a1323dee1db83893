"""The sync pipeline, a module per stage: fetch/stage -> validate -> diff -> guard ->
apply -> report. ``oneroster.services.sync_run_execute`` drives it.

- ``staging``: records stream from the source into the staging table (COPY on
  PostgreSQL); ``staging_clear`` drops a run's rows when it ends.
- ``validation``: duplicate sourcedIds and references that name nothing, set-based.
- ``diff``: the counts of what apply would do, the re-keyed people, and which mapping
  rows a run deactivates.
- ``guard``: a full sync that would deactivate too much waits for an admin.
- ``apply``: new and changed rows go to the core a chunk at a time through the typed
  bulk functions of ``accounts.api`` / ``classes.api`` (one engine on SQLite and
  PostgreSQL), then deactivations.
- ``report``: the JSON summary of a run.
- ``common``: what the stages share (table names, SQL helpers, progress callback).

Memory stays flat whatever the district's size: rows are staged in the database as
they stream in, references and the diff are set-based SQL over the staged rows and the
mapping table, and apply works in chunks read back by keyset. The only per-chunk state
in Python is one chunk of rows and the core ids its references need.
"""

from __future__ import annotations

from oneroster.pipeline.apply import Applier
from oneroster.pipeline.common import ProgressFn, SyncAborted
from oneroster.pipeline.diff import plan, rekeys
from oneroster.pipeline.guard import guard_check
from oneroster.pipeline.report import run_report
from oneroster.pipeline.staging import Stager, stage, staging_clear
from oneroster.pipeline.validation import validate

__all__ = [
    "Applier",
    "ProgressFn",
    "Stager",
    "SyncAborted",
    "guard_check",
    "plan",
    "rekeys",
    "run_report",
    "stage",
    "staging_clear",
    "validate",
]
