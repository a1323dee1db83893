"""Claim names and the parsed view of a validated LTI 1.3 message (LTI Core 1.3 §5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lti_tool.protocol.errors import LaunchRejected

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE = LTI + "message_type"
VERSION = LTI + "version"
DEPLOYMENT_ID = LTI + "deployment_id"
TARGET_LINK_URI = LTI + "target_link_uri"
RESOURCE_LINK = LTI + "resource_link"
ROLES = LTI + "roles"
CONTEXT = LTI + "context"
LIS = LTI + "lis"
CUSTOM = LTI + "custom"
LAUNCH_PRESENTATION = LTI + "launch_presentation"
TOOL_PLATFORM = LTI + "tool_platform"
LTI1P1 = LTI + "lti1p1"
ROLE_SCOPE_MENTOR = LTI + "role_scope_mentor"
DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
AGS_ENDPOINT = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"

RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"
SUPPORTED_MESSAGES = (RESOURCE_LINK_REQUEST, DEEP_LINKING_REQUEST)

_STANDARD_PREFIXES = (
    "https://purl.imsglobal.org/spec/",
    "http://www.imsglobal.org/",
)
_JWT_CLAIMS = {
    "iss", "sub", "aud", "azp", "exp", "iat", "nbf", "nonce", "jti",
    "name", "given_name", "family_name", "middle_name", "email", "email_verified",
    "picture", "locale", "preferred_username", "zoneinfo", "website", "profile",
    "phone_number", "address", "gender", "birthdate", "updated_at", "nickname",
}  # fmt: skip


@dataclass(frozen=True)
class AgsClaim:
    lineitems: str = ""
    lineitem: str = ""
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LaunchClaims:
    issuer: str
    client_id: str
    deployment_id: str
    message_type: str
    subject: str
    roles: tuple[str, ...]
    target_link_uri: str
    given_name: str = ""
    family_name: str = ""
    name: str = ""
    email: str = ""
    person_sourcedid: str = ""
    course_section_sourcedid: str = ""
    resource_link_id: str = ""
    resource_link_title: str = ""
    context_id: str = ""
    context_title: str = ""
    context_label: str = ""
    custom: Mapping[str, Any] = field(default_factory=dict)
    ags: AgsClaim | None = None
    nrps_url: str = ""
    nrps_versions: tuple[str, ...] = ()
    deep_linking: Mapping[str, Any] | None = None
    lti1p1: Mapping[str, Any] | None = None
    return_url: str = ""
    document_target: str = ""
    extensions: Mapping[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _object(body: Mapping[str, Any], claim: str, label: str) -> Mapping[str, Any]:
    value = body.get(claim)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise LaunchRejected("claim_malformed", f"The {label} claim must be a JSON object.")
    return value


def parse(body: Mapping[str, Any], *, client_id: str) -> LaunchClaims:
    """Read a validated id_token body; raise LaunchRejected for what LTI requires
    and is missing or malformed (beyond what the signature check covered)."""
    version = body.get(VERSION)
    if version is None:
        raise LaunchRejected("version_missing", "The launch has no LTI version claim; LTI 1.3.0 is required.")
    if version != "1.3.0":
        raise LaunchRejected(
            "version_wrong", f"The launch says LTI version {version!r}; only 1.3.0 is supported."
        )
    message_type = body.get(MESSAGE_TYPE)
    if not message_type:
        raise LaunchRejected("message_type_missing", "The launch has no message_type claim.")
    if message_type not in SUPPORTED_MESSAGES:
        raise LaunchRejected(
            "message_type_unsupported", f"This tool does not handle {message_type!r} messages."
        )
    subject = _text(body.get("sub"))
    if not subject:
        raise LaunchRejected("sub_missing", "The launch does not identify the user (no sub claim).")
    deployment_id = _text(body.get(DEPLOYMENT_ID))
    if not deployment_id:
        raise LaunchRejected("deployment_id_missing", "The launch has no deployment_id claim.")
    roles = body.get(ROLES)
    if roles is None:
        raise LaunchRejected("roles_missing", "The launch has no roles claim (it may be an empty list).")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise LaunchRejected("roles_malformed", "The roles claim must be a list of role URIs.")

    resource_link = _object(body, RESOURCE_LINK, "resource_link")
    resource_link_id = _text(resource_link.get("id"))
    if message_type == RESOURCE_LINK_REQUEST and not resource_link_id:
        raise LaunchRejected("resource_link_missing", "A resource link launch must carry resource_link.id.")
    deep_linking = None
    if message_type == DEEP_LINKING_REQUEST:
        deep_linking = _object(body, DL_SETTINGS, "deep_linking_settings")
        if not _text(deep_linking.get("deep_link_return_url")):
            raise LaunchRejected(
                "deep_linking_settings_missing", "A deep linking request must carry deep_link_return_url."
            )
    context = _object(body, CONTEXT, "context")
    if context and not _text(context.get("id")):
        raise LaunchRejected("context_malformed", "The context claim has no id.")
    lis = _object(body, LIS, "lis")
    custom = _object(body, CUSTOM, "custom")
    ags_claim = _object(body, AGS_ENDPOINT, "AGS endpoint")
    ags = None
    if ags_claim:
        ags = AgsClaim(
            lineitems=_text(ags_claim.get("lineitems")),
            lineitem=_text(ags_claim.get("lineitem")),
            scopes=tuple(s for s in ags_claim.get("scope") or () if isinstance(s, str)),
        )
    nrps = _object(body, NRPS, "names and roles")
    presentation = _object(body, LAUNCH_PRESENTATION, "launch_presentation")
    lti1p1 = _object(body, LTI1P1, "lti1p1")
    extensions = {
        key: value
        for key, value in body.items()
        if key not in _JWT_CLAIMS and not key.startswith(_STANDARD_PREFIXES)
    }
    return LaunchClaims(
        issuer=_text(body.get("iss")),
        client_id=client_id,
        deployment_id=deployment_id,
        message_type=message_type,
        subject=subject,
        roles=tuple(roles),
        target_link_uri=_text(body.get(TARGET_LINK_URI)),
        given_name=_text(body.get("given_name")),
        family_name=_text(body.get("family_name")),
        name=_text(body.get("name")),
        email=_text(body.get("email")),
        person_sourcedid=_text(lis.get("person_sourcedid")),
        course_section_sourcedid=_text(lis.get("course_section_sourcedid")),
        resource_link_id=resource_link_id,
        resource_link_title=_text(resource_link.get("title")),
        context_id=_text(context.get("id")),
        context_title=_text(context.get("title")),
        context_label=_text(context.get("label")),
        custom=dict(custom),
        ags=ags,
        nrps_url=_text(nrps.get("context_memberships_url")),
        nrps_versions=tuple(v for v in nrps.get("service_versions") or () if isinstance(v, str)),
        deep_linking=dict(deep_linking) if deep_linking is not None else None,
        lti1p1=dict(lti1p1) if lti1p1 else None,
        return_url=_text(presentation.get("return_url")),
        document_target=_text(presentation.get("document_target")),
        extensions=extensions,
    )
