from __future__ import annotations

from celery import shared_task

from lti_tool.keys import tool_keys_retire_expired


@shared_task(name="lti_tool.retire_expired_keys")
def retire_expired_keys() -> int:
    """Hourly: drop rotated-out keys from the JWKS once their overlap window ends."""
    return tool_keys_retire_expired()
