"""Import a SCORM package zip into a tenant.

manage.py scorm_import --tenant district-a course.zip

Prints one JSON object ({"id", "version", "title", "scos": [...], ...}); a rejected
package exits non-zero with the reason (naming the offending entry) on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scorm.errors import PackageRejected
from scorm.services import package_import
from tutoring_core.accounts.api import TenantNotFound, tenant_get


class Command(BaseCommand):
    help = "Import a SCORM 1.2 or 2004 package (a .zip) into a tenant; prints the package as JSON."
    # Scripts read what this prints (the JSON on stdout, the reason on stderr): the
    # deployment's own warnings (scorm.W001, ...) belong to `check` and `migrate`.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The package zip.")
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = tenant_get(slug=options["tenant"])
        except TenantNotFound as exc:
            raise CommandError(str(exc)) from None
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        try:
            with path.open("rb") as fileobj:
                info = package_import(tenant_id=tenant.pk, actor_id=None, fileobj=fileobj, filename=path.name)
        except PackageRejected as exc:
            raise CommandError(f"Package rejected: {exc.reason}") from None
        self.stdout.write(json.dumps(info.as_json()))
