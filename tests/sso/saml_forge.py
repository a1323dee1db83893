"""Forge SAML responses in-test: real keys, real signatures (signxml), hostile shapes."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import uuid
from dataclasses import dataclass, field

from lxml import etree
from signxml import DigestAlgorithm, SignatureMethod, XMLSigner, methods

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"samlp": SAMLP, "saml": SAML, "ds": DS}
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


class _AnyAlgorithmSigner(XMLSigner):
    """signxml refuses SHA-1 by default; the hostile matrix needs it to prove we do too."""

    def check_deprecated_methods(self) -> None:
        return None


def _t(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ResponseSpec:
    issuer: str
    destination: str
    audience: str
    recipient: str
    in_response_to: str = ""
    name_id: str = "forged-user-1"
    name_id_format: str = PERSISTENT
    attributes: dict[str, list[str]] = field(
        default_factory=lambda: {
            "mail": ["eve@north.example.edu"],
            "givenName": ["Eve"],
            "sn": ["Forger"],
            "employeeNumber": ["SIS-EVE"],
        }
    )
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    not_before_offset: dt.timedelta = dt.timedelta(minutes=-1)
    not_after_offset: dt.timedelta = dt.timedelta(minutes=5)
    assertion_id: str = field(default_factory=lambda: "_a" + uuid.uuid4().hex)
    response_id: str = field(default_factory=lambda: "_r" + uuid.uuid4().hex)


def build_response(spec: ResponseSpec) -> etree._Element:
    irt = {"InResponseTo": spec.in_response_to} if spec.in_response_to else {}
    nb, na = _t(spec.now + spec.not_before_offset), _t(spec.now + spec.not_after_offset)
    response = etree.Element(
        f"{{{SAMLP}}}Response",
        nsmap={"samlp": SAMLP, "saml": SAML},
        ID=spec.response_id,
        Version="2.0",
        IssueInstant=_t(spec.now),
        Destination=spec.destination,
        **irt,
    )
    etree.SubElement(response, f"{{{SAML}}}Issuer").text = spec.issuer
    status = etree.SubElement(response, f"{{{SAMLP}}}Status")
    etree.SubElement(status, f"{{{SAMLP}}}StatusCode", Value="urn:oasis:names:tc:SAML:2.0:status:Success")
    assertion = etree.SubElement(
        response, f"{{{SAML}}}Assertion", ID=spec.assertion_id, Version="2.0", IssueInstant=_t(spec.now)
    )
    etree.SubElement(assertion, f"{{{SAML}}}Issuer").text = spec.issuer
    subject = etree.SubElement(assertion, f"{{{SAML}}}Subject")
    name_id = etree.SubElement(subject, f"{{{SAML}}}NameID", Format=spec.name_id_format)
    name_id.text = spec.name_id
    confirmation = etree.SubElement(
        subject, f"{{{SAML}}}SubjectConfirmation", Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"
    )
    etree.SubElement(
        confirmation, f"{{{SAML}}}SubjectConfirmationData", NotOnOrAfter=na, Recipient=spec.recipient, **irt
    )
    conditions = etree.SubElement(assertion, f"{{{SAML}}}Conditions", NotBefore=nb, NotOnOrAfter=na)
    restriction = etree.SubElement(conditions, f"{{{SAML}}}AudienceRestriction")
    etree.SubElement(restriction, f"{{{SAML}}}Audience").text = spec.audience
    authn = etree.SubElement(
        assertion,
        f"{{{SAML}}}AuthnStatement",
        AuthnInstant=_t(spec.now),
        SessionIndex="_s" + uuid.uuid4().hex,
    )
    context = etree.SubElement(authn, f"{{{SAML}}}AuthnContext")
    etree.SubElement(
        context, f"{{{SAML}}}AuthnContextClassRef"
    ).text = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    statement = etree.SubElement(assertion, f"{{{SAML}}}AttributeStatement")
    for name, values in spec.attributes.items():
        attribute = etree.SubElement(statement, f"{{{SAML}}}Attribute", Name=name)
        for value in values:
            etree.SubElement(attribute, f"{{{SAML}}}AttributeValue").text = value
    return response


def sign(element: etree._Element, key_pem: str, cert_pem: str, *, sha1: bool = False) -> etree._Element:
    """Enveloped signature placed right after Issuer, as the SAML schema requires.

    Signs in place (the element keeps its parent) and returns it."""
    placeholder = etree.Element(f"{{{DS}}}Signature", Id="placeholder", nsmap={"ds": DS})
    element.insert(1, placeholder)
    signer = _AnyAlgorithmSigner(
        method=methods.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA1 if sha1 else SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA1 if sha1 else DigestAlgorithm.SHA256,
        c14n_algorithm=EXC_C14N,
    )
    parent = element.getparent()
    index = parent.index(element) if parent is not None else 0
    signed = signer.sign(element, key=key_pem, cert=cert_pem, reference_uri=element.get("ID"))
    if parent is not None:
        parent.remove(element) if element.getparent() is parent else None
        parent.insert(index, signed)
    return signed


def assertion_of(response: etree._Element) -> etree._Element:
    return response.find(f"{{{SAML}}}Assertion")


def encode(response: etree._Element) -> str:
    return base64.b64encode(etree.tostring(response)).decode()


def deep_copy(element: etree._Element) -> etree._Element:
    return copy.deepcopy(element)
