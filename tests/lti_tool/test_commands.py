from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from lti_tool.models import Deployment, PlatformRegistration
from tutoring_core.accounts.models import AuditLog


def test_lti_platform_add_canvas(tenant: Any) -> None:
    out = StringIO()
    call_command(
        "lti_platform_add", "--tenant", "north", "--preset", "canvas", "--client-id", "10000000000042",
        "--deployment-id", "42:abc", stdout=out,
    )  # fmt: skip
    printed = json.loads(out.getvalue())
    registration = PlatformRegistration.objects.get()
    assert printed == {
        "registration_id": str(registration.pk),
        "tenant": "north",
        "issuer": "https://canvas.instructure.com",
        "client_id": "10000000000042",
        "auth_login_url": "https://sso.canvaslms.com/api/lti/authorize_redirect",
        "token_url": "https://sso.canvaslms.com/login/oauth2/token",
        "platform_jwks_url": "https://sso.canvaslms.com/api/lti/security/jwks",
        "deployment_ids": ["42:abc"],
        "login_url": "http://testserver/lti/login/",
        "launch_url": "http://testserver/lti/launch/",
        "jwks_url": "http://testserver/lti/jwks.json",
        "deep_linking_url": "http://testserver/lti/launch/",
        "canvas_config_url": "http://testserver/lti/canvas.json",
    }
    assert Deployment.objects.get().status == Deployment.Status.ACTIVE
    assert AuditLog.objects.filter(action="lti.registration.create").count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "nowhere", "--preset", "generic"], "No tenant"),
        (["--tenant", "north", "--preset", "generic", "--issuer", "https://lms.example.org"], "cannot fill"),
        (
            [
                "--tenant",
                "north",
                "--preset",
                "generic",
                "--issuer",
                "https://lms.example.org",
                "--auth-url",
                "ftp://x",
                "--token-url",
                "https://lms.example.org/t",
                "--jwks-url",
                "https://lms.example.org/k",
            ],
            "must be an http(s) URL",
        ),
    ],
    ids=["unknown_tenant", "missing_urls", "bad_url"],
)
def test_lti_platform_add_refuses_bad_input(tenant: Any, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("lti_platform_add", *args, "--client-id", "c1", stdout=StringIO())
    assert PlatformRegistration.objects.count() == 0


def test_lti_platform_add_refuses_a_duplicate(tenant: Any) -> None:
    args = [
        "--tenant",
        "north",
        "--preset",
        "moodle",
        "--issuer",
        "https://moodle.example.org",
        "--client-id",
        "abc",
    ]
    call_command("lti_platform_add", *args, stdout=StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("lti_platform_add", *args, "--deployment-id", "2", stdout=StringIO())
    assert PlatformRegistration.objects.count() == 1
    assert Deployment.objects.count() == 0


def test_canvas_config_json(client: Any, db: Any) -> None:
    config = client.get("/lti/canvas.json").json()
    assert config["oidc_initiation_url"] == "http://testserver/lti/login/"
    assert config["public_jwk_url"] == "http://testserver/lti/jwks.json"
    assert [p["message_type"] for p in config["extensions"][0]["settings"]["placements"]] == [
        "LtiResourceLinkRequest",
        "LtiDeepLinkingRequest",
        "LtiDeepLinkingRequest",
    ]
