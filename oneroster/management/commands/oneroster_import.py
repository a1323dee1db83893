"""Import a OneRoster CSV package (folder or zip) for one tenant, with a progress bar.

    manage.py oneroster_import --tenant north /data/sis-export.zip [--delta] [--dry-run]

Ends by printing one JSON summary line (counts per entity and action, errors).
Exit status: 0 applied (or dry run), 1 failed, 2 waiting for an admin's approval.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from oneroster.models import RosterConnection, SyncRun
from oneroster.services import SyncRefused, run_report, sync_run_create, sync_run_execute
from tutoring_core.accounts import api as accounts


class Command(BaseCommand):
    help = "Import a OneRoster CSV package (1.1 or 1.2, folder or zip) into a tenant."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="Folder or zip holding manifest.csv and the data files.")
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument(
            "--delta", action="store_true", help="Treat every file as a delta (no deactivation by absence)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Validate and diff; apply nothing.")
        parser.add_argument(
            "--connection",
            default="",
            help="Id of an existing CSV connection (default: the tenant's 'CSV import').",
        )
        parser.add_argument(
            "--approve", action="store_true", help="Pass the deactivation guard (an operator's decision)."
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = accounts.tenant_get(slug=options["tenant"])
        except accounts.TenantNotFound as exc:
            raise CommandError(str(exc)) from None
        if options["connection"]:
            try:
                connection = RosterConnection.objects.get(
                    tenant=tenant, pk=options["connection"], kind=RosterConnection.Kind.CSV
                )
            except (RosterConnection.DoesNotExist, ValueError):
                raise CommandError(f"No CSV connection {options['connection']} in {tenant.slug}.") from None
        else:
            connection, _ = RosterConnection.objects.get_or_create(
                tenant=tenant, name="CSV import", kind=RosterConnection.Kind.CSV
            )
        try:
            run = sync_run_create(
                connection=connection,
                mode=SyncRun.Mode.DELTA if options["delta"] else SyncRun.Mode.FULL,
                dry_run=options["dry_run"],
                source_path=options["path"],
            )
        except SyncRefused as exc:
            raise CommandError(str(exc)) from None
        if options["approve"]:
            SyncRun.objects.filter(pk=run.pk).update(approved=True)
        bars: dict[str, tqdm] = {}
        quiet = options["no_progress"]

        def progress(phase: str, done: int, total: int) -> None:
            if quiet:
                return
            bar = bars.get(phase)
            if bar is None:
                label = {"stage": "reading rows", "apply": "applying"}.get(phase, phase)
                bar = bars[phase] = tqdm(
                    total=total or None, desc=label, unit=" rows", file=sys.stderr, leave=True
                )
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        run = sync_run_execute(run_id=run.pk, progress=progress)
        for bar in bars.values():
            bar.close()
        self.stdout.write(json.dumps(run_report(run), separators=(",", ":")))
        if run.status == SyncRun.Status.AWAITING_APPROVAL:
            sys.exit(2)
        if run.status != SyncRun.Status.SUCCEEDED:
            sys.exit(1)
