from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tutoring_core.accounts.models import Tenant
from tutoring_core.accounts.services import tenant_create


class Command(BaseCommand):
    help = "Create a tenant (district). Running it again with the same slug changes nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--time-zone", default="UTC")
        parser.add_argument("--kind", default=Tenant.Kind.DISTRICT, choices=Tenant.Kind.values)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant, created = tenant_create(
                slug=options["slug"],
                name=options["name"],
                kind=options["kind"],
                time_zone=options["time_zone"],
            )
        except ValidationError as exc:
            problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            raise CommandError(f"Invalid tenant: {problems}") from None
        self.stdout.write(
            json.dumps(
                {
                    "id": str(tenant.pk),
                    "slug": tenant.slug,
                    "name": tenant.name,
                    "time_zone": tenant.time_zone,
                    "created": created,
                }
            )
        )
