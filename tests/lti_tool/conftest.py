"""Fixtures for lti_tool tests: a loopback platform (tests/peers/lti_platform.py),
a tenant registration pointing at it, and a helper that runs the whole
login -> platform auth -> launch round trip over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from lti_tool.models import Deployment, PlatformRegistration
from tests.factories import TenantFactory
from tests.peers.lti_platform import LaunchSpec, LtiPlatform, fetch
from tutoring_core.accounts.models import Tenant

TOOL_BASE = "http://testserver"
LAUNCH_URL = TOOL_BASE + "/lti/launch/"
LOGIN_URL = TOOL_BASE + "/lti/login/"


@pytest.fixture(autouse=True)
def _lti_settings(settings: Any, db: Any) -> None:
    settings.PUBLIC_BASE_URL = TOOL_BASE
    # The shared cache (state, nonces, JWKS) is the DB cache in tests, as in dev.
    if settings.CACHES["default"]["BACKEND"].endswith("DatabaseCache"):
        if settings.CACHES["default"]["LOCATION"] not in connection.introspection.table_names():
            call_command("createcachetable", verbosity=0)
    from django.core.cache import cache

    from lti_tool import launch

    cache.clear()
    launch._local_keys.clear()  # the per-process copy of the JWKS the cache held


_KEY_POOL: list[Any] = []


@pytest.fixture(autouse=True)
def _tool_key_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real RSA keys, generated once per run: each test would otherwise make its
    own 2048-bit key (the DB rolls back between tests). Successive rotations in a
    test still get distinct keys."""
    from lti_tool import keys

    if not _KEY_POOL:
        _KEY_POOL.extend(keys._new_key_material() for _ in range(3))
    pool = iter(_KEY_POOL)
    monkeypatch.setattr(keys, "_new_key_material", lambda: next(pool))
    # tests/conftest.py forgets the previous test's key (rolled back with its database).


@pytest.fixture
def platform() -> Iterator[LtiPlatform]:
    with LtiPlatform(tool_launch_url=LAUNCH_URL, tool_login_url=LOGIN_URL) as peer:
        yield peer


@pytest.fixture
def tenant(db: Any) -> Tenant:
    return TenantFactory(slug="north", name="North District")


@pytest.fixture
def registration(platform: LtiPlatform, tenant: Tenant) -> PlatformRegistration:
    registration = PlatformRegistration.objects.create(
        tenant=tenant,
        preset="generic",
        issuer=platform.issuer,
        client_id=platform.client_id,
        auth_login_url=platform.auth_url,
        auth_token_url=platform.token_url,
        key_set_url=platform.jwks_url,
        deployment_policy=PlatformRegistration.DeploymentPolicy.HOLD,
    )
    Deployment.objects.create(tenant=tenant, registration=registration, deployment_id=platform.deployment_id)
    return registration


@dataclass
class LaunchResult:
    login: Any
    auth_status: int
    response: Any
    form: dict[str, str]


def run_launch(
    client: Client, platform: LtiPlatform, spec: LaunchSpec, *, method: str = "get"
) -> LaunchResult:
    """LMS -> tool login -> (browser) platform auth -> tool launch, every hop real."""
    params = platform.login_params(spec)
    login = getattr(client, method)("/lti/login/", params)
    assert login.status_code == 302, login.content.decode()[:500]
    auth = fetch(login["Location"])
    assert auth.status_code == 200, auth.text
    action, form = LtiPlatform.parse_form(auth.text)
    response = client.post(urlsplit(action).path, form)
    return LaunchResult(login=login, auth_status=auth.status_code, response=response, form=form)
