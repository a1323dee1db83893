"""LTI Dynamic Registration 1.0 (1EdTech), on pylti1p3's DynamicRegistration.

A district admin gives the LMS one URL (``registration_url(tenant)``, signed and
time-limited, naming the tenant). The LMS opens it with ``openid_configuration``
and ``registration_token``; we fetch the platform's configuration through the
project's HTTP client, check it, post our tool configuration to the platform's
registration endpoint, and store the registration it answers with.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from pylti1p3.dynamic_registration import DynamicRegistration
from pylti1p3.exception import LtiException

from lti_tool.errors import RegistrationInvalid
from lti_tool.launch import launch_url, login_url
from lti_tool.models import Deployment, PlatformRegistration, Preset
from tutoring_core import http
from tutoring_core.accounts.api import Tenant, audit_record

logger = logging.getLogger(__name__)

SALT = "lti_tool.dynamic_registration"
MAX_AGE = 7 * 24 * 3600
PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
# product_family_code (LTI DR §3.5.1) -> our preset.
FAMILIES = {
    "canvas": Preset.CANVAS,
    "moodle": Preset.MOODLE,
    "desire2learn": Preset.BRIGHTSPACE,
    "brightspace": Preset.BRIGHTSPACE,
    "d2l": Preset.BRIGHTSPACE,
    "blackboard": Preset.BLACKBOARD,
    "schoology": Preset.SCHOOLOGY,
}
SCOPES = [
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
]


def registration_url(tenant: Tenant) -> str:
    token = signing.dumps({"tenant": str(tenant.pk)}, salt=SALT)
    return settings.PUBLIC_BASE_URL + reverse("lti_tool:dynamic_registration", kwargs={"token": token})


def tenant_for_token(token: str) -> uuid.UUID | None:
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE)
        return uuid.UUID(data["tenant"])
    except (signing.BadSignature, KeyError, ValueError, TypeError):
        return None


class _HubSession:
    """What pylti1p3 calls a requests session, served by tutoring_core.http
    (timeouts, SSRF guard); errors come back as responses for pylti1p3 to judge."""

    def __enter__(self) -> _HubSession:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def get(self, url: str, **kwargs: Any) -> Any:
        return http.request("GET", url, raise_for_status=False, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return http.request("POST", url, raise_for_status=False, **kwargs)


class HubDynamicRegistration(DynamicRegistration):
    client_name = "Tutoring Hub"
    description = "Tutoring, booking and progress for your classes."

    def __init__(
        self, *, tenant: Tenant, openid_configuration_url: str, registration_token: str | None
    ) -> None:
        self.tenant = tenant
        self.openid_configuration_url = openid_configuration_url
        self.registration_token = registration_token
        self.configuration: dict[str, Any] = {}
        self.result: PlatformRegistration | None = None

    def get_request_session(self) -> Any:
        return _HubSession()

    def get_client_name(self) -> str:
        return settings.LTI_TOOL_TITLE

    def get_initiate_login_uri(self) -> str:
        return login_url()

    def get_jwks_uri(self) -> str:
        return settings.PUBLIC_BASE_URL + reverse("lti_tool:jwks")

    def get_redirect_uris(self) -> list[str]:
        return [launch_url()]

    def get_scopes(self) -> list[str]:
        return SCOPES

    def get_domain(self) -> str:
        return urlsplit(settings.PUBLIC_BASE_URL).netloc

    def get_target_link_uri(self) -> str:
        return launch_url()

    def get_claims(self) -> list[str]:
        return ["iss", "sub", "name", "given_name", "family_name", "email"]

    def get_messages(self) -> list[dict[str, str]]:
        return [
            {"type": "LtiResourceLinkRequest", "target_link_uri": launch_url(), "label": "Tutoring"},
            {"type": "LtiDeepLinkingRequest", "target_link_uri": launch_url(), "label": "Add tutoring"},
        ]

    def get_logo_uri(self) -> str:
        return ""

    def lti_registration_data(self) -> dict[str, Any]:
        data = super().lti_registration_data()
        data.pop("logo_uri", None)  # we publish no logo; an empty URI is invalid
        return data

    def get_openid_configuration_endpoint(self) -> str:
        return self.openid_configuration_url

    def get_registration_token(self) -> str | None:  # type: ignore[override]
        return self.registration_token

    def get_openid_configuration(self) -> dict[str, Any]:
        if not self.configuration:
            self.configuration = fetch_configuration(self.openid_configuration_url)
        return self.configuration

    def complete_registration(
        self, openid_configuration: dict[str, Any], openid_registration: dict[str, Any]
    ) -> PlatformRegistration:
        self.result = _store(self.tenant, openid_configuration, openid_registration)
        return self.result


def fetch_configuration(url: str) -> dict[str, Any]:
    """The platform's OpenID configuration, checked as LTI DR §3.4 asks."""
    try:
        response = http.get(url, headers={"Accept": "application/json"})
        config = response.json()
    except http.OutboundHTTPError as exc:
        raise RegistrationInvalid(f"The LMS configuration at {url} could not be fetched ({exc}).") from None
    except ValueError:
        raise RegistrationInvalid(f"The LMS configuration at {url} is not JSON.") from None
    if not isinstance(config, dict):
        raise RegistrationInvalid("The LMS configuration is not a JSON object.")
    missing = [
        name
        for name in (
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "registration_endpoint",
        )
        if not isinstance(config.get(name), str) or not config.get(name)
    ]
    if missing or not isinstance(config.get(PLATFORM_CONFIGURATION), dict):
        raise RegistrationInvalid(
            f"The LMS configuration lacks {', '.join(missing) or 'the LTI platform configuration'}."
        )
    # The configuration must come from the issuer's own host (LTI DR §3.5.2).
    if urlsplit(config["issuer"]).netloc != urlsplit(url).netloc:
        raise RegistrationInvalid(
            "The LMS configuration names an issuer on another host than it was fetched from."
        )
    return config


@transaction.atomic
def _store(tenant: Tenant, config: dict[str, Any], answer: dict[str, Any]) -> PlatformRegistration:
    client_id = str(answer.get("client_id") or "")
    if not client_id:
        raise RegistrationInvalid("The LMS accepted the registration but sent no client_id.")
    tool_conf = answer.get(TOOL_CONFIGURATION) or {}
    family = str(config[PLATFORM_CONFIGURATION].get("product_family_code", "")).lower()
    if PlatformRegistration.objects.filter(issuer=config["issuer"], client_id=client_id).exists():
        raise RegistrationInvalid(f"This LMS ({config['issuer']}, client {client_id}) is already registered.")
    audience = str(config.get("authorization_server") or "")
    registration = PlatformRegistration.objects.create(
        tenant=tenant,
        name=f"{config[PLATFORM_CONFIGURATION].get('product_family_code', 'LMS')} ({config['issuer']}) — dynamic",
        preset=FAMILIES.get(family, Preset.GENERIC),
        issuer=config["issuer"],
        client_id=client_id,
        auth_login_url=config["authorization_endpoint"],
        auth_token_url=config["token_endpoint"],
        key_set_url=config["jwks_uri"],
        # Brightspace names the token audience as authorization_server.
        auth_audience=audience if audience and audience != config["token_endpoint"] else "",
    )
    deployment_id = str(tool_conf.get("deployment_id") or "") if isinstance(tool_conf, dict) else ""
    if deployment_id:
        Deployment.objects.create(tenant=tenant, registration=registration, deployment_id=deployment_id)
    audit_record(
        tenant=tenant,
        actor=None,
        action="lti.registration.dynamic",
        target=registration,
        details={"issuer": registration.issuer, "client_id": client_id, "deployment_id": deployment_id},
    )
    return registration


def register(
    *, tenant: Tenant, openid_configuration_url: str, registration_token: str | None
) -> PlatformRegistration:
    """Run the whole exchange; RegistrationInvalid (nothing stored) on any refusal."""
    flow = HubDynamicRegistration(
        tenant=tenant,
        openid_configuration_url=openid_configuration_url,
        registration_token=registration_token,
    )
    try:
        flow.register()
    except LtiException as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        logger.warning("dynamic registration refused by %s: %s (%s)", openid_configuration_url, exc, status)
        raise RegistrationInvalid(f"The LMS refused the registration ({status or exc}).") from None
    except AssertionError as exc:
        raise RegistrationInvalid(
            f"The LMS answered with something that is not an LTI registration ({exc})."
        ) from None
    assert flow.result is not None
    return flow.result
