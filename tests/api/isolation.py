"""Isolation makers for the JSON API's admin models.

The API's own URLs are bearer-only, so the session-signed walker in
tests/test_tenant_isolation.py cannot call them: they are exempted below and walked
with another district's bearer token in tests/api/test_isolation.py instead.
"""

from __future__ import annotations

from django.urls import URLPattern

from config.api import api
from tests import factories as f
from tests.isolation import EXEMPT_URL_NAMES, admin_model
from tutoring_core.accounts.models import Tenant
from tutoring_core.apiauth.services import token_create


def api_id_url_names() -> list[str]:
    """Every API URL that takes an id (each gets a 404 check in tests/api/test_isolation.py)."""
    return [
        entry.name
        for entry in api.urls[0]
        if isinstance(entry, URLPattern) and entry.name and entry.pattern.regex.groupindex
    ]


for _name in api_id_url_names():
    EXEMPT_URL_NAMES[_name] = (
        "JSON API, bearer-only: walked with another district's token in tests/api/test_isolation.py"
    )


@admin_model("apiauth.ApiToken")
def _api_token(tenant: Tenant) -> object:
    return token_create(person=f.UserFactory(tenant=tenant)).row
