"""Tool keys (encrypted, JWKS, rotation) and platform JWKS caching and rotation."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO
from typing import Any

import jwt
import pytest
import time_machine
from django.core.management import call_command
from django.db import connection

from lti_tool import api
from lti_tool.models import ToolKey
from tests.lti_tool.conftest import run_launch
from tests.peers.lti_platform import ROLE_LEARNER, LtiPlatform, PlatformResponse
from tutoring_core import http


def test_private_key_is_encrypted_at_rest(db: Any) -> None:
    key = api.tool_signing_key()
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key_pem FROM lti_tool_toolkey WHERE kid = %s", [key.kid])
        stored = cursor.fetchone()[0]
    assert "PRIVATE KEY" not in stored
    assert key.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")


def test_loaded_signing_key_is_the_stored_key_and_loaded_once_per_kid(db: Any) -> None:
    from lti_tool import keys

    key = keys.tool_key_current()
    loaded = keys.tool_private_key(key)
    assert keys.tool_private_key(ToolKey.objects.get(kid=key.kid)) is loaded
    token = jwt.encode({"sub": "x"}, loaded, algorithm="RS256", headers={"kid": key.kid})
    public = jwt.PyJWK(key.public_jwk, algorithm="RS256").key
    assert jwt.decode(token, public, algorithms=["RS256"]) == {"sub": "x"}
    rotated = keys.tool_key_rotate()
    assert rotated.kid != key.kid
    assert keys.tool_private_key(rotated) is not loaded


def test_jwks_publishes_active_and_retiring_keys_until_overlap_ends(client: Any, db: Any) -> None:
    with time_machine.travel(dt.datetime(2026, 2, 1, 12, tzinfo=dt.UTC), tick=False):
        first = api.tool_signing_key().kid
    with time_machine.travel(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC), tick=False):
        out = StringIO()
        call_command("lti_rotate_keys", "--overlap-hours", "24", stdout=out)
        result = json.loads(out.getvalue())
        second = result["new_kid"]
        assert second != first
        assert api.tool_signing_key().kid == second
        assert [k["kid"] for k in client.get("/lti/jwks.json").json()["keys"]] == [second, first]
    with time_machine.travel(dt.datetime(2026, 3, 2, 13, tzinfo=dt.UTC), tick=False):
        out = StringIO()
        call_command("lti_rotate_keys", "--retire-only", stdout=out)
        assert json.loads(out.getvalue()) == {"new_kid": None, "retired": 1, "published": [second]}
        jwks = client.get("/lti/jwks.json").json()
    assert [k["kid"] for k in jwks["keys"]] == [second]
    assert set(jwks["keys"][0]) == {"kty", "n", "e", "kid", "alg", "use"}
    assert ToolKey.objects.get(kid=first).status == ToolKey.Status.RETIRED


@pytest.mark.peer
def test_client_assertion_signed_with_the_api_key_gets_a_platform_token(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    """What the AGS/NRPS engineer builds on: api.registration_get + api.tool_signing_key."""
    info = api.registration_get(registration_id=registration.pk, tenant_id=registration.tenant_id)
    assert (info.token_url, info.token_audience, info.client_id) == (
        platform.token_url,
        platform.token_url,
        platform.client_id,
    )
    key = api.tool_signing_key()
    platform.set_tool_jwks(client.get("/lti/jwks.json").json())
    now = int(dt.datetime.now(dt.UTC).timestamp())
    assertion = jwt.encode(
        {
            "iss": info.client_id,
            "sub": info.client_id,
            "aud": info.token_audience,
            "iat": now,
            "exp": now + 300,
            "jti": "j-1",
        },
        key.private_key_pem,
        algorithm="RS256",
        headers={"kid": key.kid},
    )
    response = http.post(
        info.token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
            "scope": "https://purl.imsglobal.org/spec/lti-ags/scope/score",
        },
    )
    assert response.json()["scope"] == "https://purl.imsglobal.org/spec/lti-ags/scope/score"
    assert response.json()["token_type"] == "bearer"


def test_registration_get_hides_other_tenants(db: Any, registration: Any) -> None:
    from tests.factories import TenantFactory

    other = TenantFactory(slug="elsewhere")
    with pytest.raises(api.RegistrationNotFound):
        api.registration_get(registration_id=registration.pk, tenant_id=other.pk)


@pytest.mark.peer
def test_platform_jwks_is_fetched_once_per_ttl(client: Any, platform: LtiPlatform, registration: Any) -> None:
    for n in range(3):
        spec = platform.launch(sub=f"s-{n}", roles=[ROLE_LEARNER])
        assert run_launch(client, platform, spec).response.status_code == 302
    assert platform.jwks_requests == 1


@pytest.mark.peer
def test_another_process_uses_the_jwks_in_the_shared_cache(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    """Each process keeps its own copy of the cached JWKS; a process without one (a
    fresh gunicorn worker) reads the shared cache and does not fetch again."""
    from lti_tool import launch

    assert run_launch(client, platform, platform.launch(sub="a")).response.status_code == 302
    launch._local_keys.clear()
    assert run_launch(client, platform, platform.launch(sub="b")).response.status_code == 302
    assert platform.jwks_requests == 1
    assert list(launch._local_keys) == [registration.key_set_url]


@pytest.mark.peer
def test_platform_key_rotation_is_picked_up_and_unknown_kids_refetch_at_most_once(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    assert run_launch(client, platform, platform.launch(sub="a")).response.status_code == 302
    assert platform.jwks_requests == 1
    platform.rotate_key()
    platform.drop_old_keys()
    # A new kid: the cached JWKS lacks it, so the tool refetches once and accepts.
    assert run_launch(client, platform, platform.launch(sub="b")).response.status_code == 302
    assert platform.jwks_requests == 2
    # A flood of unknown kids inside the refetch window causes no more fetches.
    for n in range(3):
        response = run_launch(client, platform, platform.launch(sub=f"x{n}", signing="unknown_kid")).response
        assert response.status_code == 400
        assert 'data-code="kid_unknown"' in response.content.decode()
    assert platform.jwks_requests == 2
    assert run_launch(client, platform, platform.launch(sub="c")).response.status_code == 302
    assert platform.jwks_requests == 2


@pytest.mark.peer
def test_jwks_is_refreshed_once_after_the_ttl_and_stale_copy_survives_an_outage(
    client: Any, platform: LtiPlatform, registration: Any, settings: Any
) -> None:
    settings.LTI_JWKS_CACHE_SECONDS = 60
    start = dt.datetime.now(dt.UTC)
    with time_machine.travel(start, tick=False):
        assert run_launch(client, platform, platform.launch(sub="a")).response.status_code == 302
    assert platform.jwks_requests == 1
    with time_machine.travel(start + dt.timedelta(seconds=61), tick=False):
        for sub in ("b", "c", "d"):
            assert run_launch(client, platform, platform.launch(sub=sub)).response.status_code == 302
    assert platform.jwks_requests == 2
    # The platform's JWKS endpoint goes down: launches go on with the stale copy.
    platform.add_route("GET", "/jwks", lambda _r: PlatformResponse(503, "down", "text/plain"))
    with time_machine.travel(start + dt.timedelta(seconds=125), tick=False):
        assert run_launch(client, platform, platform.launch(sub="e")).response.status_code == 302
