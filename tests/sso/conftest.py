"""Fixtures for SSO tests: SimpleSAMLphp (one per session), a SAML IdP config
for tenant "north" pointing at it, and helpers that drive the IdP's login form."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import lxml.html
import pytest
import requests

from sso import saml, services
from sso.models import IdentityProvider
from tests.factories import TenantFactory
from tests.peers.simplesamlphp import SimpleSamlIdP, build
from tutoring_core.accounts.models import Tenant


@pytest.fixture(scope="session")
def simplesamlphp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleSamlIdP]:
    idp = build(tmp_path_factory.mktemp("simplesamlphp"))
    idp.start()
    try:
        yield idp
    finally:
        idp.stop()


@pytest.fixture
def north(db: Any) -> Tenant:
    return TenantFactory(slug="north", name="North District")


@pytest.fixture
def saml_provider(north: Tenant, simplesamlphp: SimpleSamlIdP) -> IdentityProvider:
    """North's IdP: SimpleSAMLphp, configured by metadata URL like a district would."""
    idp = IdentityProvider.objects.create(
        tenant=north,
        name="North Schools Login",
        protocol=IdentityProvider.Protocol.SAML,
        preset="generic_saml",
        metadata_url=simplesamlphp.metadata_url,
        email_attribute="mail",
        given_name_attribute="givenName",
        family_name_attribute="sn",
        display_name_attribute="displayName",
        roster_id_attribute="employeeNumber",
        role_attribute="eduPersonAffiliation",
        role_map={"student": "student", "faculty": "teacher"},
        emails_verified=True,
        allowed_email_domains="north.example.edu",
    )
    assert services.saml_metadata_refresh(idp=idp) is True
    key = services.sp_key_get_or_create(tenant=north)
    urls = saml.sp_urls(north)
    simplesamlphp.register_sp(
        entity_id=urls.entity_id, acs_url=urls.acs, slo_url=urls.sls, cert_pem=key.certificate
    )
    return idp


@dataclass
class PostedForm:
    action: str
    fields: dict[str, str]


def _form(html: str) -> PostedForm:
    doc = lxml.html.fromstring(html)
    forms = doc.xpath("//form")
    assert forms, f"no form in IdP page: {html[:500]}"
    form = forms[0]
    fields = {i.get("name"): i.get("value") or "" for i in form.xpath(".//input[@name]")}
    return PostedForm(action=form.get("action"), fields=fields)


def idp_login(
    redirect_url: str, username: str, password: str, browser: requests.Session | None = None
) -> PostedForm:
    """Follow our AuthnRequest to SimpleSAMLphp, fill in its login form, and return
    the auto-post form it answers with (SAMLResponse + RelayState to our ACS)."""
    browser = browser or requests.Session()
    page = browser.get(redirect_url, timeout=10)
    assert page.status_code == 200, page.text[:1000]
    if "SAMLResponse" not in page.text:
        login = _form(page.text)
        login.fields.update(username=username, password=password)
        action = requests.compat.urljoin(page.url, login.action or page.url)
        page = browser.post(action, data=login.fields, timeout=10)
        assert page.status_code == 200, page.text[:1000]
    posted = _form(page.text)
    assert "SAMLResponse" in posted.fields, page.text[:1000]
    return posted
