"""lxml and xmlsec must run on the same libxml2: python3-saml hands lxml trees to
xmlsec, and a mismatch (e.g. lxml wheels with a bundled libxml2 and xmlsec built
against the system's) crashes or fails signature checks at run time only."""

from __future__ import annotations

import xmlsec
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from tests.peers.simplesamlphp import make_key_pair


def test_lxml_and_xmlsec_use_the_same_libxml2() -> None:
    assert etree.LIBXML_VERSION == xmlsec.get_libxml_version()
    assert etree.LIBXML_COMPILED_VERSION == xmlsec.get_libxml_compiled_version()
    assert etree.LIBXML_VERSION == etree.LIBXML_COMPILED_VERSION


def test_xmlsec_signs_and_verifies_an_lxml_tree() -> None:
    key, cert = make_key_pair("libxml2-check")
    document = etree.fromstring(
        b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        b'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" '
        b'IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>x</saml:Issuer></samlp:Response>'
    )
    signed = OneLogin_Saml2_Utils.add_sign(
        document,
        key,
        cert,
        sign_algorithm=OneLogin_Saml2_Constants.RSA_SHA256,
        digest_algorithm=OneLogin_Saml2_Constants.SHA256,
    )
    assert OneLogin_Saml2_Utils.validate_sign(signed, cert, raise_exceptions=True) is True
    tampered = signed.replace(b"<saml:Issuer>x<", b"<saml:Issuer>y<")
    assert OneLogin_Saml2_Utils.validate_sign(tampered, cert) is False
