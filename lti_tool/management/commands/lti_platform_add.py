"""Register an LMS for a tenant from a script; prints the URLs the LMS admin needs as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lti_tool.errors import RegistrationInvalid
from lti_tool.models import PlatformRegistration, Preset
from lti_tool.services import registration_create
from lti_tool.views import tool_urls
from tutoring_core.accounts.api import TenantNotFound, tenant_get


class Command(BaseCommand):
    help = "Register an LTI 1.3 platform (LMS) for a tenant and print the tool's URLs as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--preset", required=True, choices=Preset.values)
        parser.add_argument("--issuer", default="", help="platform issuer (iss); some presets default it")
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--auth-url", default="", help="OIDC auth URL (filled by the preset where fixed)")
        parser.add_argument("--token-url", default="")
        parser.add_argument("--jwks-url", default="")
        parser.add_argument("--audience", default="", help="token audience when it differs (Brightspace)")
        parser.add_argument("--deployment-id", action="append", default=[], help="repeatable")
        parser.add_argument(
            "--policy",
            choices=PlatformRegistration.DeploymentPolicy.values,
            default=PlatformRegistration.DeploymentPolicy.HOLD,
            help="what to do with deployment ids not listed here",
        )
        parser.add_argument("--name", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = tenant_get(slug=options["tenant"])
        except TenantNotFound:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.") from None
        try:
            registration = registration_create(
                tenant=tenant,
                preset=options["preset"],
                issuer=options["issuer"],
                client_id=options["client_id"],
                auth_login_url=options["auth_url"],
                auth_token_url=options["token_url"],
                key_set_url=options["jwks_url"],
                auth_audience=options["audience"],
                deployment_ids=tuple(options["deployment_id"]),
                deployment_policy=options["policy"],
                name=options["name"],
            )
        except RegistrationInvalid as exc:
            raise CommandError(str(exc)) from None
        urls = tool_urls()
        if registration.preset != Preset.CANVAS:
            urls.pop("canvas_config_url")
        output = {
            "registration_id": str(registration.pk),
            "tenant": tenant.slug,
            "issuer": registration.issuer,
            "client_id": registration.client_id,
            "auth_login_url": registration.auth_login_url,
            "token_url": registration.auth_token_url,
            "platform_jwks_url": registration.key_set_url,
            "deployment_ids": list(registration.deployments.values_list("deployment_id", flat=True)),
            **urls,
        }
        self.stdout.write(json.dumps(output))
