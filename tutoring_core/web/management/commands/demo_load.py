from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string

from tutoring_core.web.demo import DEMO_PASSWORD, demo_load


class Command(BaseCommand):
    help = "Load the demo district (idempotent) and print its logins. Refuses outside DEBUG/DEMO_MODE."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet-logins", action="store_true", help="Do not print the logins.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not (settings.DEBUG or settings.DEMO_MODE):
            raise CommandError(
                "Demo data has known passwords: load it only with DEBUG=true or DEMO_MODE=true."
            )
        logins = demo_load()
        for dotted in settings.DEMO_LOADERS:
            import_string(dotted)()
        if options["quiet_logins"]:
            return
        self.stdout.write(f"\nDemo logins (password for all: {DEMO_PASSWORD})")
        for login in logins:
            self.stdout.write(f"  {login.username:<20} {login.role:<16} {login.name}")
