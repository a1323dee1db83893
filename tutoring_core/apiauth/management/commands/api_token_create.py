from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tutoring_core.accounts.errors import TenantNotFound
from tutoring_core.accounts.models import User
from tutoring_core.accounts.selectors import tenant_get
from tutoring_core.apiauth.services import TokenRefused, token_create


class Command(BaseCommand):
    help = (
        "Create a JSON API bearer token acting as one person of a district. The token is "
        "printed once and stored only as a hash: copy it now."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The district's slug.")
        parser.add_argument("--email", required=True, help="The person's email address in that district.")
        parser.add_argument("--name", default="", help="What the token is for (shown in the admin).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = tenant_get(slug=options["tenant"])
        except TenantNotFound as exc:
            raise CommandError(str(exc)) from None
        email = options["email"].strip()
        people = list(User.objects.filter(tenant=tenant, email__iexact=email, is_active=True)[:2])
        if not people:
            raise CommandError(f"No active person in {tenant.slug} has the email {email!r}.")
        if len(people) > 1:
            raise CommandError(
                f"Several people in {tenant.slug} have the email {email!r}; "
                "give each person their own email address first."
            )
        try:
            created = token_create(person=people[0], name=options["name"] or "manage.py api_token_create")
        except TokenRefused as exc:
            raise CommandError(exc.reason) from None
        self.stderr.write(
            f"Token {created.row.prefix}… for {people[0]} ({tenant.slug}). "
            "It is shown only now; store it as a secret."
        )
        self.stdout.write(created.token)
