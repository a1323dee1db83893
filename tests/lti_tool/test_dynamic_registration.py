"""LTI Dynamic Registration against the loopback platform, then a launch on it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from lti_tool.dynamic_registration import registration_url
from lti_tool.models import Deployment, PlatformRegistration
from tests.lti_tool.conftest import run_launch
from tests.peers.lti_platform import ROLE_INSTRUCTOR, LtiPlatform
from tutoring_core.accounts.models import AuditLog

pytestmark = pytest.mark.peer


def _path(url: str) -> str:
    return urlsplit(url).path


def test_dynamic_registration_then_launch(client: Any, platform: LtiPlatform, tenant: Any) -> None:
    platform.product_family_code = "desire2learn"
    platform.authorization_server = "https://api.brightspace.com/auth/token"
    response = client.get(
        _path(registration_url(tenant)),
        {
            "openid_configuration": platform.openid_configuration_url,
            "registration_token": platform.registration_token,
        },
    )
    assert response.status_code == 200, response.content.decode()[:800]
    assert "org.imsglobal.lti.close" in response.content.decode()
    sent = platform.registration_requests[0]
    assert sent["initiate_login_uri"] == "http://testserver/lti/login/"
    assert sent["redirect_uris"] == ["http://testserver/lti/launch/"]
    assert sent["jwks_uri"] == "http://testserver/lti/jwks.json"
    assert sent["token_endpoint_auth_method"] == "private_key_jwt"
    registration = PlatformRegistration.objects.get()
    assert (
        registration.tenant_id,
        registration.issuer,
        registration.client_id,
        registration.preset,
        registration.auth_login_url,
        registration.key_set_url,
        registration.token_audience,
    ) == (
        tenant.pk,
        platform.issuer,
        platform.client_id,
        "brightspace",
        platform.auth_url,
        platform.jwks_url,
        "https://api.brightspace.com/auth/token",
    )
    assert list(Deployment.objects.values_list("deployment_id", "status")) == [
        (platform.deployment_id, "active")
    ]
    assert AuditLog.objects.filter(action="lti.registration.dynamic", tenant=tenant).count() == 1
    launch = run_launch(client, platform, platform.launch(roles=[ROLE_INSTRUCTOR])).response
    assert launch.status_code == 302


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"registration_token": "wrong-token"}, "refused the registration (401)"),
        ({"openid_configuration": "http://127.0.0.1:9/nothing"}, "could not be fetched"),
        ({"openid_configuration": ""}, "openid_configuration parameter"),
    ],
    ids=["wrong_token", "unreachable_configuration", "no_configuration"],
)
def test_dynamic_registration_refusals_store_nothing(
    client: Any, platform: LtiPlatform, tenant: Any, params: dict[str, str], message: str
) -> None:
    query = {
        "openid_configuration": platform.openid_configuration_url,
        "registration_token": platform.registration_token,
        **params,
    }
    response = client.get(_path(registration_url(tenant)), query)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert PlatformRegistration.objects.count() == 0


def test_issuer_on_another_host_is_refused(client: Any, platform: LtiPlatform, tenant: Any) -> None:
    other = LtiPlatform(tool_launch_url="http://testserver/lti/launch/", issuer="https://lms.example.org")
    with other:
        response = client.get(
            _path(registration_url(tenant)),
            {
                "openid_configuration": other.openid_configuration_url,
                "registration_token": other.registration_token,
            },
        )
    assert response.status_code == 400
    assert "issuer on another host" in response.content.decode()
    assert other.registration_requests == []
    assert PlatformRegistration.objects.count() == 0


def test_tampered_registration_link_is_404(client: Any, tenant: Any) -> None:
    url = _path(registration_url(tenant))
    assert client.get(url[:-3] + "xx/", {"openid_configuration": "http://127.0.0.1:9/"}).status_code == 404


def test_registration_url_command(tenant: Any) -> None:
    import json
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("lti_registration_url", "--tenant", "north", stdout=out)
    url = json.loads(out.getvalue())["registration_url"]
    assert url.startswith("http://testserver/lti/register/")
    from lti_tool.dynamic_registration import tenant_for_token

    assert tenant_for_token(url.rstrip("/").rsplit("/", 1)[1]) == tenant.pk
