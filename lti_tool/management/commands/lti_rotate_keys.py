"""Rotate the tool's signing key; retire keys whose overlap window has passed."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from lti_tool.keys import tool_key_rotate, tool_keys_retire_expired
from lti_tool.models import ToolKey


class Command(BaseCommand):
    help = (
        "Make a new tool signing key (the old one stays in the JWKS for the overlap window) "
        "and retire keys whose window has passed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--overlap-hours", type=int, default=None, help="default: LTI_KEY_OVERLAP_HOURS")
        parser.add_argument("--retire-only", action="store_true", help="only retire expired keys")

    def handle(self, *args: Any, **options: Any) -> None:
        retired = tool_keys_retire_expired()
        new_kid = None
        if not options["retire_only"]:
            overlap = options["overlap_hours"]
            key = tool_key_rotate(overlap=dt.timedelta(hours=overlap) if overlap is not None else None)
            new_kid = key.kid
        published = list(ToolKey.objects.published().values_list("kid", flat=True))
        self.stdout.write(json.dumps({"new_kid": new_kid, "retired": retired, "published": published}))
