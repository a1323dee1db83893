"""Plain values that cross the sso door (api.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class SignInOption:
    """One "Sign in with ..." button for a tenant's sign-in page."""

    provider_id: uuid.UUID
    name: str
    protocol: str
    url: str
