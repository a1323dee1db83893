"""Bearer-token authentication for the JSON API (django-ninja).

The API is bearer-only: a browser's session cookie does not authenticate it, so no
page can be made to call it cross-site (no CSRF surface), and ninja's views being
CSRF-exempt is safe.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer

from tutoring_core.accounts.models import User
from tutoring_core.apiauth.services import token_authenticate


class BearerToken(HttpBearer):
    """``Authorization: Bearer hub_...``: the request acts as the token's person."""

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        found = token_authenticate(token.strip())
        if found is None:
            return None
        row, person = found
        request.user = person
        request.api_token = row  # type: ignore[attr-defined]
        return person


def request_person(request: HttpRequest) -> User:
    """The person a (bearer-authenticated) API request acts as."""
    person: Any = getattr(request, "auth", None)
    assert isinstance(person, User), "API operation reached without authentication"
    return person
