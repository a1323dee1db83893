from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from tutoring_core.accounts.models import Tenant
from tutoring_core.accounts.services import district_admin_ensure, set_password_link_issue, tenant_create


class Command(BaseCommand):
    help = (
        "Create a tenant (district) and, with --admin-email, its first district admin with a "
        "one-time link to set a password. Running it again with the same slug changes nothing "
        "and issues a new link."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--time-zone", default="UTC")
        parser.add_argument("--kind", default=Tenant.Kind.DISTRICT, choices=Tenant.Kind.values)
        parser.add_argument(
            "--admin-email",
            help="The district admin's email (their username). Prints a link to set a password, "
            "valid for 24 hours and for one use.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            # One transaction: a refused admin leaves no half-made district behind.
            with transaction.atomic():
                tenant, created = tenant_create(
                    slug=options["slug"],
                    name=options["name"],
                    kind=options["kind"],
                    time_zone=options["time_zone"],
                )
                admin = None
                if options["admin_email"] is not None:
                    admin, admin_created = district_admin_ensure(tenant=tenant, email=options["admin_email"])
                    link = set_password_link_issue(user=admin)
        except ValidationError as exc:
            problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            raise CommandError(f"Invalid tenant: {problems}") from None
        result: dict[str, Any] = {
            "id": str(tenant.pk),
            "slug": tenant.slug,
            "name": tenant.name,
            "time_zone": tenant.time_zone,
            "created": created,
        }
        if admin is not None:
            result["admin"] = {
                "id": str(admin.pk),
                "username": admin.username,
                "created": admin_created,
                "set_password_url": link.url,
                "set_password_expires_at": link.expires_at.isoformat(),
            }
        self.stdout.write(json.dumps(result))
        if admin is not None:
            self.stderr.write(
                f"Send this one-time link to {admin.email}; it sets their password and works "
                f"once, until {link.expires_at:%Y-%m-%d %H:%M} UTC:\n{link.url}"
            )
