"""protocol/: no Django, no database."""

from __future__ import annotations

import pytest

from lti_tool.protocol import claims, presets, roles
from lti_tool.protocol.errors import LaunchRejected

V2 = "http://purl.imsglobal.org/vocab/lis/v2/"


@pytest.mark.parametrize(
    ("lis_roles", "expected"),
    [
        ([V2 + "membership#Instructor"], "teacher"),
        ([V2 + "membership#Learner", V2 + "membership#Instructor"], "teacher"),
        ([V2 + "membership/Instructor#TeachingAssistant"], "tutor"),
        ([V2 + "membership#ContentDeveloper"], "teacher"),
        ([V2 + "membership#Mentor"], "guardian"),
        ([V2 + "membership#Learner"], "student"),
        (["Learner"], "student"),
        (["Instructor"], "teacher"),
        (["TeachingAssistant"], "tutor"),
        (["urn:lti:role:ims/lis/Instructor"], "teacher"),
        (["urn:lti:role:ims/lis/Learner"], "student"),
        (["urn:lti:role:ims/lis/Instructor/TeachingAssistant"], "tutor"),
        (["urn:lti:instrole:ims/lis/Faculty"], "teacher"),
        ([V2 + "institution/person#Student"], "student"),
        ([V2 + "institution/person#Faculty"], "teacher"),
        # A context role wins over an institution role: a faculty member who is a
        # learner in this course is a student here.
        ([V2 + "institution/person#Faculty", V2 + "membership#Learner"], "student"),
        # An LMS-wide administrator gets no class privilege from that alone.
        ([V2 + "system/person#Administrator"], "student"),
        (["urn:lti:sysrole:ims/lis/SysAdmin"], "student"),
        (["http://example.org/roles#Wizard"], "student"),
        ([], "student"),
    ],
)
def test_class_role(lis_roles: list[str], expected: str) -> None:
    assert roles.class_role(lis_roles) == expected


def _body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "iss": "https://lms.example.org",
        "sub": "u1",
        claims.VERSION: "1.3.0",
        claims.MESSAGE_TYPE: "LtiResourceLinkRequest",
        claims.DEPLOYMENT_ID: "d1",
        claims.ROLES: [],
        claims.RESOURCE_LINK: {"id": "rl"},
        "https://www.instructure.com/placement": "course_navigation",
    }
    body.update(overrides)
    return body


def test_parse_keeps_extension_claims_only() -> None:
    parsed = claims.parse(_body(), client_id="c")
    assert parsed.extensions == {"https://www.instructure.com/placement": "course_navigation"}
    assert parsed.resource_link_id == "rl"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({claims.ROLES: "Instructor"}, "roles_malformed"),
        ({claims.CONTEXT: {"title": "no id"}}, "context_malformed"),
        ({claims.CUSTOM: ["not", "an", "object"]}, "claim_malformed"),
        ({claims.MESSAGE_TYPE: "LtiDeepLinkingRequest"}, "deep_linking_settings_missing"),
    ],
)
def test_parse_rejects(overrides: dict[str, object], code: str) -> None:
    with pytest.raises(LaunchRejected) as caught:
        claims.parse(_body(**overrides), client_id="c")
    assert caught.value.code == code


def test_presets_fill_canvas_beta_and_brightspace_audience() -> None:
    assert presets.fill("canvas", issuer="https://canvas.beta.instructure.com", client_id="1") == {
        "issuer": "https://canvas.beta.instructure.com",
        "auth_login_url": "https://sso.beta.canvaslms.com/api/lti/authorize_redirect",
        "auth_token_url": "https://sso.beta.canvaslms.com/login/oauth2/token",
        "key_set_url": "https://sso.beta.canvaslms.com/api/lti/security/jwks",
        "auth_audience": "",
    }
    filled = presets.fill("brightspace", issuer="https://district.brightspace.com/", client_id="x")
    assert filled["auth_audience"] == "https://api.brightspace.com/auth/token"
    assert filled["key_set_url"] == "https://district.brightspace.com/d2l/.well-known/jwks"
    assert (
        presets.fill("moodle", issuer="https://moodle.district.org", client_id="x", key_set_url="https://k")[
            "key_set_url"
        ]
        == "https://k"
    )
