"""Print the LTI Dynamic Registration URL an LMS admin pastes into Moodle, Canvas or Brightspace."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lti_tool.dynamic_registration import MAX_AGE, registration_url
from tutoring_core.accounts.api import TenantNotFound, tenant_get


class Command(BaseCommand):
    help = "Print a tenant's LTI Dynamic Registration URL (signed, valid for 7 days)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = tenant_get(slug=options["tenant"])
        except TenantNotFound:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.") from None
        self.stdout.write(
            json.dumps({"registration_url": registration_url(tenant), "valid_seconds": MAX_AGE})
        )
