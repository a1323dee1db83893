"""protocol/migration: oauth_consumer_key_sign of the LTI 1.1 migration claim."""

from __future__ import annotations

from typing import Any

import pytest

from lti_tool.protocol import migration

# The example of the LTI 1.3 migration guide (lti1p1 claim section), verbatim.
SPEC_BODY = {
    "nonce": "172we8671fd8z",
    "iat": 1551290796,
    "exp": 1551290856,
    "iss": "https://lmsvendor.com",
    "aud": "PM48OJSfGDTAzAo",
    "sub": "3",
    "https://purl.imsglobal.org/spec/lti/claim/deployment_id": "689302",
}
SPEC_CLAIM = {
    "user_id": "34212",
    "oauth_consumer_key": "179248902",
    "oauth_consumer_key_sign": "lWd54kFo5qU7xshAna6v8BwoBm6tmUjc6GTax6+12ps=",
}
SPEC_SECRET = "my-lti11-secret"


def _valid(claim: dict[str, Any], body: dict[str, Any] = SPEC_BODY, **overrides: str) -> bool:
    kwargs = {
        "client_id": "PM48OJSfGDTAzAo",
        "deployment_id": "689302",
        "consumer_key": "179248902",
        "secret": SPEC_SECRET,
        **overrides,
    }
    return migration.consumer_key_sign_valid(claim, body, **kwargs)


def test_sign_matches_the_spec_example() -> None:
    assert (
        migration.consumer_key_sign(
            oauth_consumer_key="179248902",
            deployment_id="689302",
            issuer="https://lmsvendor.com",
            client_id="PM48OJSfGDTAzAo",
            exp=1551290856,
            nonce="172we8671fd8z",
            secret=SPEC_SECRET,
        )
        == "lWd54kFo5qU7xshAna6v8BwoBm6tmUjc6GTax6+12ps="
    )


def test_spec_example_verifies() -> None:
    assert _valid(SPEC_CLAIM) is True
    assert _valid(SPEC_CLAIM, {**SPEC_BODY, "exp": 1551290856.0}) is True


@pytest.mark.parametrize(
    ("claim", "body", "overrides"),
    [
        (SPEC_CLAIM, SPEC_BODY, {"secret": "another-secret"}),
        (SPEC_CLAIM, SPEC_BODY, {"secret": ""}),
        (SPEC_CLAIM, SPEC_BODY, {"consumer_key": ""}),
        (SPEC_CLAIM, SPEC_BODY, {"consumer_key": "another-key"}),
        (SPEC_CLAIM, SPEC_BODY, {"client_id": "another-client"}),
        (SPEC_CLAIM, SPEC_BODY, {"deployment_id": "another-deployment"}),
        (SPEC_CLAIM, {**SPEC_BODY, "nonce": "another-nonce"}, {}),
        (SPEC_CLAIM, {**SPEC_BODY, "exp": 1551290857}, {}),
        (SPEC_CLAIM, {**SPEC_BODY, "iss": "https://other.example"}, {}),
        ({**SPEC_CLAIM, "oauth_consumer_key_sign": ""}, SPEC_BODY, {}),
        ({k: v for k, v in SPEC_CLAIM.items() if k != "oauth_consumer_key_sign"}, SPEC_BODY, {}),
        ({**SPEC_CLAIM, "oauth_consumer_key_sign": 12}, SPEC_BODY, {}),
        ({**SPEC_CLAIM, "oauth_consumer_key": "another-key"}, SPEC_BODY, {}),
    ],
    ids=[
        "wrong-secret",
        "no-secret",
        "no-consumer-key",
        "registration-has-another-key",
        "other-client-id",
        "other-deployment",
        "other-nonce",
        "other-exp",
        "other-issuer",
        "empty-sign",
        "no-sign",
        "sign-not-a-string",
        "claim-names-another-key",
    ],
)
def test_anything_else_does_not_verify(
    claim: dict[str, Any], body: dict[str, Any], overrides: dict[str, str]
) -> None:
    assert _valid(claim, body, **overrides) is False
