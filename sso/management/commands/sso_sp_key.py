"""Roll a tenant's SAML SP signing key over without breaking sign-in.

manage.py sso_sp_key stage <tenant-slug>     # publish the next key in metadata
manage.py sso_sp_key activate <tenant-slug>  # sign with it (after IdPs refreshed)
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sso import services
from tutoring_core.accounts import api as accounts


class Command(BaseCommand):
    help = "Stage or activate the next SAML SP signing key of a tenant."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["stage", "activate"])
        parser.add_argument("tenant")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = accounts.tenant_get(slug=options["tenant"])
        except accounts.TenantNotFound as exc:
            raise CommandError(str(exc)) from None
        if options["action"] == "stage":
            key = services.sp_key_stage_next(tenant=tenant)
            self.stdout.write(
                f"Staged a new SP key for {tenant.slug} (valid until {key.next_not_after:%Y-%m-%d}). "
                "It is published in the SP metadata now; activate it once every IdP has refreshed."
            )
            return
        try:
            key = services.sp_key_activate_next(tenant=tenant)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{tenant.slug} now signs with the new SP key (valid until {key.not_after:%Y-%m-%d})."
        )
