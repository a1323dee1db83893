"""python3-saml glue: per-tenant SP settings, request data, response validation.

python3-saml does the XML security (signature references, wrapping checks,
audience, recipient, destination, InResponseTo, algorithms). This module only
feeds it strict settings and adds what it lacks: a per-IdP clock skew and a
refusal of XML comments inside assertions (CVE-2017-11427 class of bugs).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.http import HttpRequest
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils, return_false_on_exception
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from sso.models import IdentityProvider, ServiceProviderKey
from sso.protocol.errors import SignInRejected
from tutoring_core.accounts.api import Tenant

NSMAP = {"samlp": C.NS_SAMLP, "saml": C.NS_SAML}
_COMMENT_AWARE_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, remove_comments=False, huge_tree=False
)
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class SpUrls:
    entity_id: str
    acs: str
    sls: str


def sp_urls(tenant: Tenant) -> SpUrls:
    # PUBLIC_BASE_URL, not the request's Host header: the entity id and ACS must
    # be stable whatever proxy the request came through.
    base = f"{django_settings.PUBLIC_BASE_URL}/sso/{tenant.slug}/saml"
    return SpUrls(entity_id=f"{base}/metadata/", acs=f"{base}/acs/", sls=f"{base}/sls/")


def request_data(request: HttpRequest) -> dict[str, Any]:
    """What python3-saml needs to know about the current request, built from
    PUBLIC_BASE_URL so Destination/Recipient checks compare against our real URL."""
    base = urlsplit(django_settings.PUBLIC_BASE_URL)
    return {
        "https": "on" if base.scheme == "https" else "off",
        "http_host": base.netloc,
        "script_name": request.path,
        "get_data": request.GET.dict(),
        "post_data": request.POST.dict(),
        # Signatures over Redirect-binding messages are computed on the raw query.
        "query_string": request.META.get("QUERY_STRING", ""),
        "validate_signature_from_qs": True,
    }


def _cert_body(pem: str) -> str:
    return "".join(line.strip() for line in pem.strip().splitlines() if "-----" not in line)


def settings_dict(tenant: Tenant, sp_key: ServiceProviderKey, idp: IdentityProvider | None) -> dict[str, Any]:
    urls = sp_urls(tenant)
    data: dict[str, Any] = {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": urls.entity_id,
            "assertionConsumerService": {"url": urls.acs, "binding": C.BINDING_HTTP_POST},
            "singleLogoutService": {"url": urls.sls, "binding": C.BINDING_HTTP_REDIRECT},
            "NameIDFormat": C.NAMEID_PERSISTENT,
            "x509cert": _cert_body(sp_key.certificate),
            "privateKey": sp_key.private_key,
        },
        "security": {
            "authnRequestsSigned": True,
            "logoutRequestSigned": True,
            "logoutResponseSigned": True,
            "signMetadata": True,
            "wantMessagesSigned": False,
            "wantAssertionsSigned": True,
            "wantAssertionsEncrypted": False,
            "wantNameId": True,
            "wantAttributeStatement": False,
            # Do not demand PasswordProtectedTransport: it breaks MFA and smart cards.
            "requestedAuthnContext": False,
            "rejectDeprecatedAlgorithm": True,
            "rejectUnsolicitedResponsesWithInResponseTo": True,
            # Entra and ADFS send a multi-valued claim as repeated Attribute elements.
            "allowRepeatAttributeName": True,
            "signatureAlgorithm": C.RSA_SHA256,
            "digestAlgorithm": C.SHA256,
            "metadataValidUntil": None,
            "metadataCacheDuration": "PT24H",
        },
        "contactPerson": {},
        "organization": {},
    }
    if sp_key.next_certificate:
        data["sp"]["x509certNew"] = _cert_body(sp_key.next_certificate)
    if idp is None:
        # Metadata only: python3-saml still wants an IdP block to be well-formed.
        data["idp"] = {"entityId": "urn:unset", "singleSignOnService": {"url": "https://unset.invalid/"}}
    else:
        idp_block: dict[str, Any] = {
            "entityId": idp.entity_id,
            "singleSignOnService": {"url": idp.sso_url, "binding": C.BINDING_HTTP_REDIRECT},
            "x509certMulti": {"signing": [_cert_body(c) for c in idp.signing_certificates]},
        }
        if idp.slo_url:
            idp_block["singleLogoutService"] = {"url": idp.slo_url, "binding": C.BINDING_HTTP_REDIRECT}
        data["idp"] = idp_block
    return data


def saml_settings(
    tenant: Tenant, sp_key: ServiceProviderKey, idp: IdentityProvider | None
) -> OneLogin_Saml2_Settings:
    return OneLogin_Saml2_Settings(settings_dict(tenant, sp_key, idp), sp_validation_only=idp is None)


def sp_metadata(tenant: Tenant, sp_key: ServiceProviderKey) -> str:
    settings = saml_settings(tenant, sp_key, None)
    metadata = settings.get_sp_metadata()
    errors = settings.validate_metadata(metadata)
    if errors:
        raise RuntimeError(f"Our own SP metadata is invalid: {errors}")
    return metadata.decode() if isinstance(metadata, bytes) else str(metadata)


class _SkewAwareResponse(OneLogin_Saml2_Response):
    """python3-saml's response with the IdP's configured clock skew instead of the
    library-wide constant (which would be shared by every tenant and thread)."""

    clock_skew = C.ALLOWED_CLOCK_DRIFT

    @return_false_on_exception
    def validate_timestamps(self) -> bool:
        now = OneLogin_Saml2_Utils.now()
        for conditions in self._query_assertion("/saml:Conditions"):
            not_before = conditions.get("NotBefore")
            not_after = conditions.get("NotOnOrAfter")
            if not_before and OneLogin_Saml2_Utils.parse_SAML_to_time(not_before) > now + self.clock_skew:
                raise OneLogin_Saml2_ValidationError(
                    f"The assertion is not valid yet (NotBefore {not_before}, allowed clock skew "
                    f"{self.clock_skew}s). Check the IdP's clock.",
                    OneLogin_Saml2_ValidationError.ASSERTION_TOO_EARLY,
                )
            if not_after and OneLogin_Saml2_Utils.parse_SAML_to_time(not_after) + self.clock_skew <= now:
                raise OneLogin_Saml2_ValidationError(
                    f"The assertion has expired (NotOnOrAfter {not_after}, allowed clock skew "
                    f"{self.clock_skew}s).",
                    OneLogin_Saml2_ValidationError.ASSERTION_EXPIRED,
                )
        return True


@dataclass(frozen=True)
class UnverifiedEnvelope:
    """Routing facts read before validation, used only to pick the IdP config and
    the outstanding request; python3-saml then verifies both."""

    issuer: str
    in_response_to: str


def read_envelope(saml_response_b64: str) -> UnverifiedEnvelope:
    try:
        xml = base64.b64decode(saml_response_b64, validate=False)
        document = OneLogin_Saml2_XML.to_etree(xml)
        # python3-saml's parser drops comments, which hides them from every later
        # check; read once more keeping them (no DTD, no entities, no network).
        raw = etree.fromstring(xml, parser=_COMMENT_AWARE_PARSER)
    except Exception:
        raise SignInRejected("malformed", "The SAMLResponse is not base64-encoded SAML XML.") from None
    # Canonicalization ignores comments, so a comment spliced into a signed NameID
    # ("victim@x<!---->.evil") keeps the signature valid while changing what a
    # text reader sees (CVE-2017-11427). Genuine IdPs never send comments there.
    if raw.xpath("//saml:Assertion//comment()", namespaces=NSMAP):
        raise SignInRejected(
            "comment-in-assertion", "The assertion contains an XML comment, which a genuine IdP never sends."
        )
    if document.tag != f"{{{C.NS_SAMLP}}}Response":
        raise SignInRejected("malformed", "The SAMLResponse is not a SAML 2.0 Response.")
    issuers = document.xpath("/samlp:Response/saml:Issuer/text()", namespaces=NSMAP) or document.xpath(
        "/samlp:Response/saml:Assertion/saml:Issuer/text()", namespaces=NSMAP
    )
    if not issuers:
        raise SignInRejected("malformed", "The SAML response names no Issuer.")
    return UnverifiedEnvelope(issuer=str(issuers[0]).strip(), in_response_to=document.get("InResponseTo", ""))


@dataclass(frozen=True)
class ValidatedAssertion:
    name_id: str
    name_id_format: str
    name_id_nq: str
    name_id_spnq: str
    session_index: str
    assertion_id: str
    attributes: dict[str, list[str]]
    not_on_or_after: int  # epoch seconds until which a replay must be refused


def validate_response(
    *,
    tenant: Tenant,
    sp_key: ServiceProviderKey,
    idp: IdentityProvider,
    saml_response_b64: str,
    data: dict[str, Any],
    request_id: str | None,
) -> ValidatedAssertion:
    """Run every check; raise ``SignInRejected`` naming the first that failed."""
    if not idp.signing_certificates:
        raise SignInRejected("no-certificate", f"{idp.name} has no signing certificate configured.")
    settings = saml_settings(tenant, sp_key, idp)
    try:
        response = _SkewAwareResponse(settings, saml_response_b64)
    except Exception as exc:  # python3-saml, lxml and xmlsec each raise their own types
        raise SignInRejected("malformed", f"The SAML response could not be read: {exc}") from None
    response.clock_skew = idp.clock_skew_seconds
    try:
        response.is_valid(data, request_id=request_id, raise_exceptions=True)
    except (OneLogin_Saml2_ValidationError, OneLogin_Saml2_Error) as exc:
        raise SignInRejected(f"saml-{getattr(exc, 'code', 0)}", str(exc)) from None
    except Exception as exc:  # xmlsec and lxml raise their own types on hostile XML
        raise SignInRejected("malformed", f"The SAML response failed validation: {exc}") from None
    not_after = response.get_assertion_not_on_or_after() or response.valid_scd_not_on_or_after
    return ValidatedAssertion(
        name_id=response.get_nameid() or "",
        name_id_format=response.get_nameid_format() or "",
        name_id_nq=response.get_nameid_nq() or "",
        name_id_spnq=response.get_nameid_spnq() or "",
        session_index=response.get_session_index() or "",
        assertion_id=response.get_assertion_id() or "",
        attributes={k: [str(v) for v in vals] for k, vals in response.get_attributes().items()},
        not_on_or_after=int(not_after or (OneLogin_Saml2_Utils.now() + 300)),
    )
