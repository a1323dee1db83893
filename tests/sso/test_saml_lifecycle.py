"""Against SimpleSAMLphp: metadata refresh through a key rollover (keeping the last
good copy), certificate expiry warnings, IdP-initiated sign-in and single logout."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.urls import reverse

from sso import saml, services, tasks
from sso.models import IdentityProvider
from tests.peers.simplesamlphp import SimpleSamlIdP
from tests.sso.conftest import idp_login
from tutoring_core.accounts.models import AuditLog, User

pytestmark = [pytest.mark.peer, pytest.mark.django_db]


@pytest.fixture
def rollover(simplesamlphp: SimpleSamlIdP) -> Iterator[SimpleSamlIdP]:
    """Leaves the shared IdP signing with its original key afterwards."""
    try:
        yield simplesamlphp
    finally:
        simplesamlphp.write_hosted()


def _sign_in(
    client: Any,
    idp: IdentityProvider,
    user: str = "student1",
    password: str = "studentpass",  # noqa: S107 - the test IdP user's password
    browser: requests.Session | None = None,
) -> Any:
    start = client.get(reverse("sso:saml_login", args=[idp.tenant.slug, idp.pk]))
    posted = idp_login(start["Location"], user, password, browser=browser)
    acs = client.post(urlsplit(posted.action).path, posted.fields)
    return acs if acs.status_code != 303 else client.get(acs["Location"])


def test_rollover_keeps_both_certificates_and_last_good_copy(
    client: Any, saml_provider: IdentityProvider, rollover: SimpleSamlIdP
) -> None:
    saml_provider.allow_jit = True
    saml_provider.save()
    assert len(saml_provider.signing_certificates) == 1
    good_xml = saml_provider.metadata_xml

    # 1. The IdP announces its next key: we take both.
    new_cert = rollover.make_key("idp-next")
    rollover.write_hosted(new_certificate="idp-next")
    assert tasks.saml_metadata_refresh.apply(args=[str(saml_provider.pk)]).get() == "refreshed"
    saml_provider.refresh_from_db()
    assert len(saml_provider.signing_certificates) == 2
    new_body = "".join(new_cert.split()[2:-2])
    assert sum(new_body in "".join(c.split()) for c in saml_provider.signing_certificates) == 1

    # 2. The IdP switches to the new key: sign-in keeps working without a refresh.
    rollover.write_hosted(key_name="idp-next")
    assert _sign_in(client, saml_provider).status_code == 302

    # 3. A broken metadata document does not replace the last good copy.
    saml_provider.metadata_url = f"{rollover.base_url}/index.php"
    saml_provider.save()
    good_xml = IdentityProvider.objects.get(pk=saml_provider.pk).metadata_xml
    assert services.saml_metadata_refresh(idp=saml_provider) is False
    stored = IdentityProvider.objects.get(pk=saml_provider.pk)
    assert stored.metadata_xml == good_xml
    assert len(stored.signing_certificates) == 2
    assert "kept the last good copy" in stored.metadata_error


def test_refresh_task_retries_then_gives_up_keeping_the_last_good_copy(
    saml_provider: IdentityProvider, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    settings.OUTBOUND_RETRIES = 0  # the task's retries are under test, not the client's
    saml_provider.metadata_url = "http://127.0.0.1:9/metadata.xml"  # discard port: nothing listens
    saml_provider.save()
    before = list(saml_provider.signing_certificates)
    # Eager apply runs the retries in line (Celery ignores the countdown then), so
    # this is four retries and then the terminal "failed".
    with caplog.at_level("INFO", logger="celery"):
        result = tasks.saml_metadata_refresh.apply(args=[str(saml_provider.pk)], throw=False)
    assert (result.state, result.result) == ("SUCCESS", "failed")
    assert sum("Retry in" in r.getMessage() for r in caplog.records) == 4
    stored = IdentityProvider.objects.get(pk=saml_provider.pk)
    assert stored.signing_certificates == before
    assert "fetch failed" in stored.metadata_error


def test_district_admin_adds_idp_by_metadata_url(
    client: Any, north: Any, simplesamlphp: SimpleSamlIdP
) -> None:
    from tests.factories import district_admin
    from tests.sso.test_views import _admin_form

    client.force_login(district_admin(north, username="north-admin"))
    response = client.post(
        reverse("admin:sso_identityprovider_add"),
        _admin_form(
            protocol="saml",
            preset="generic_saml",
            apply_preset="on",
            name="By URL",
            metadata_url=simplesamlphp.metadata_url,
            issuer="",
            client_id="",
            client_secret="",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    idp = IdentityProvider.objects.get(name="By URL")
    assert idp.entity_id == simplesamlphp.entity_id
    assert idp.sso_url == f"{simplesamlphp.base_url}/saml2/idp/SSOService.php"
    assert len(idp.signing_certificates) == 1
    assert idp.email_attribute == "mail"
    page = client.get(reverse("admin:sso_identityprovider_change", args=[idp.pk])).content.decode()
    assert f"/admin/sso/identityprovider/{idp.pk}/test-sign-in/" in page
    assert "ACS (HTTP-POST): <code>http://localhost:8000/sso/north/saml/acs/</code>" in page
    assert "<div>CN=simplesamlphp-test-idp — expires " in page
    refresh = client.post(reverse("admin:sso_identityprovider_refresh_metadata", args=[idp.pk]), follow=True)
    assert refresh.status_code == 200
    assert "Metadata refreshed." in refresh.content.decode()


def test_certificate_expiry_warning_is_audited_once(saml_provider: IdentityProvider) -> None:
    assert services.certificate_expiry_warn(idp=saml_provider) is False  # a year left
    import time_machine

    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=350), tick=False):
        assert tasks.certificate_expiry_check.apply().get() == 1
        assert tasks.certificate_expiry_check.apply().get() == 0  # once a day
    warning = AuditLog.objects.get(action="sso.certificate_expiring")
    assert warning.target_id == str(saml_provider.pk)
    assert warning.details["certificates"][0][0] == "CN=simplesamlphp-test-idp"


def test_idp_initiated_sign_in_follows_the_tenant_switch(
    client: Any, saml_provider: IdentityProvider, simplesamlphp: SimpleSamlIdP
) -> None:
    saml_provider.allow_jit = True
    saml_provider.save()
    browser = requests.Session()
    unsolicited = f"{simplesamlphp.base_url}/saml2/idp/SSOService.php?spentityid=http://localhost:8000/sso/north/saml/metadata/"
    posted = idp_login(unsolicited, "student1", "studentpass", browser=browser)
    refused = client.post(urlsplit(posted.action).path, posted.fields)
    assert refused.status_code == 400
    assert "does not accept sign-ins started at North Schools Login" in refused.content.decode()
    assert not User.objects.filter(email="ada.student@north.example.edu").exists()

    saml_provider.allow_idp_initiated = True
    saml_provider.save()
    posted = idp_login(unsolicited, "student1", "studentpass", browser=browser)
    acs = client.post(urlsplit(posted.action).path, posted.fields)
    assert acs.status_code == 303
    assert client.get(acs["Location"]).status_code == 302
    assert User.objects.get(pk=client.session["_auth_user_id"]).email == "ada.student@north.example.edu"


def test_single_logout_round_trip(client: Any, saml_provider: IdentityProvider) -> None:
    saml_provider.allow_jit = True
    saml_provider.save()
    assert saml_provider.slo_url.endswith("/saml2/idp/SingleLogoutService.php")
    browser = requests.Session()
    assert _sign_in(client, saml_provider, browser=browser).status_code == 302
    assert "_auth_user_id" in client.session

    to_idp = client.post("/sso/north/saml/logout/")
    assert to_idp.status_code == 302
    assert "_auth_user_id" not in client.session
    assert to_idp["Location"].startswith(saml_provider.slo_url + "?SAMLRequest=")
    location = _follow_idp_until_us(browser, to_idp["Location"])
    assert location.startswith("http://localhost:8000/sso/north/saml/sls/?SAMLResponse="), location
    done = client.get(location.removeprefix("http://localhost:8000"))
    assert done.status_code == 302
    assert done["Location"] == "/sso/north/"


def test_logout_without_saml_session_just_signs_out(client: Any, saml_provider: IdentityProvider) -> None:
    from tests.factories import UserFactory

    client.force_login(UserFactory(tenant=saml_provider.tenant))
    response = client.post("/sso/north/saml/logout/")
    assert response.status_code == 302 and response["Location"] == "/sso/north/"
    assert "_auth_user_id" not in client.session


def test_garbage_logout_message_is_refused(client: Any, saml_provider: IdentityProvider) -> None:
    response = client.get(f"/sso/north/saml/sls/?SAMLResponse=bm90LXNhbWw%3D&RelayState={saml_provider.pk}")
    assert response.status_code == 400
    assert "The logout message was refused: it cannot be read." in response.content.decode()


def test_idp_initiated_logout_ends_the_session(
    client: Any, saml_provider: IdentityProvider, simplesamlphp: SimpleSamlIdP
) -> None:
    saml_provider.allow_jit = True
    saml_provider.save()
    browser = requests.Session()
    assert _sign_in(client, saml_provider, browser=browser).status_code == 302
    to_us = _follow_idp_until_us(
        browser,
        f"{simplesamlphp.base_url}/saml2/idp/SingleLogoutService.php?ReturnTo={simplesamlphp.base_url}/",
    )
    assert to_us.startswith("http://localhost:8000/sso/north/saml/sls/?SAMLRequest=")
    answer = client.get(to_us.removeprefix("http://localhost:8000"))
    assert answer.status_code == 302
    assert answer["Location"].startswith(saml_provider.slo_url + "?SAMLResponse=")
    assert "_auth_user_id" not in client.session


def test_unsigned_or_foreign_logout_request_does_not_sign_out(
    client: Any, saml_provider: IdentityProvider, simplesamlphp: SimpleSamlIdP
) -> None:
    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    saml_provider.allow_jit = True
    saml_provider.save()
    assert _sign_in(client, saml_provider).status_code == 302
    info = client.session["sso_saml_session"]
    # A LogoutRequest from the right issuer for this very person, but unsigned.
    xml = (
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_forged" Version="2.0" '
        f'IssueInstant="2030-01-01T00:00:00Z" Destination="http://localhost:8000/sso/north/saml/sls/">'
        f"<saml:Issuer>{simplesamlphp.entity_id}</saml:Issuer>"
        f'<saml:NameID Format="{info["format"]}">{info["name_id"]}</saml:NameID></samlp:LogoutRequest>'
    )
    encoded = OneLogin_Saml2_Utils.deflate_and_base64_encode(xml)
    answer = client.get("/sso/north/saml/sls/", {"SAMLRequest": encoded})
    assert answer.status_code == 400
    assert "The logout message was refused: it is not signed." in answer.content.decode()
    assert "_auth_user_id" in client.session


def test_logout_answer_must_match_a_request_we_sent(client: Any, saml_provider: IdentityProvider) -> None:
    saml_provider.allow_jit = True
    saml_provider.save()
    browser = requests.Session()
    assert _sign_in(client, saml_provider, browser=browser).status_code == 302
    back = _follow_idp_until_us(browser, client.post("/sso/north/saml/logout/")["Location"])
    path = back.removeprefix("http://localhost:8000")
    assert client.get(path).status_code == 302
    replay = client.get(path)
    assert replay.status_code == 400
    assert "This logout answer is for a request we did not send or already saw." in replay.content.decode()


def _follow_idp_until_us(browser: requests.Session, url: str) -> str:
    """Follow the IdP's redirects (HTTP or its meta-refresh pages) until it sends
    the browser back to us; return that URL."""
    import lxml.html

    for _hop in range(6):
        if url.startswith("http://localhost:8000/"):
            return url
        answer = browser.get(url, allow_redirects=False, timeout=10)
        if answer.is_redirect:
            url = answer.headers["Location"]
            continue
        links = lxml.html.fromstring(answer.content).xpath("//a[@id='redirlink']/@href")
        assert answer.status_code == 200 and links, answer.text[:800]
        url = str(links[0])
    raise AssertionError(f"the IdP never sent the browser back: {url}")


def test_signed_logout_request_for_someone_else_keeps_this_session(
    client: Any, saml_provider: IdentityProvider, simplesamlphp: SimpleSamlIdP
) -> None:
    from django.test import Client

    saml_provider.allow_jit = True
    saml_provider.save()
    student_browser, teacher_client = requests.Session(), Client()
    assert _sign_in(client, saml_provider, browser=student_browser).status_code == 302
    assert _sign_in(teacher_client, saml_provider, "teacher1", "teacherpass").status_code == 302
    to_us = _follow_idp_until_us(
        student_browser,
        f"{simplesamlphp.base_url}/saml2/idp/SingleLogoutService.php?ReturnTo={simplesamlphp.base_url}/",
    )
    # The student's (genuinely signed) LogoutRequest lands in the teacher's browser.
    answer = teacher_client.get(to_us.removeprefix("http://localhost:8000"))
    assert answer.status_code == 302
    assert "_auth_user_id" in teacher_client.session


def test_sp_certificate_expiry_is_warned(saml_provider: IdentityProvider) -> None:
    import time_machine

    from sso.models import ServiceProviderKey

    key = ServiceProviderKey.objects.get(tenant=saml_provider.tenant)
    with time_machine.travel(key.not_after - dt.timedelta(days=10), tick=False):
        assert tasks.certificate_expiry_check.apply().get() == 2  # the IdP's (a year) and ours
        assert tasks.certificate_expiry_check.apply().get() == 0
    warning = AuditLog.objects.get(action="sso.sp_certificate_expiring")
    assert warning.details == {"not_after": key.not_after.isoformat()}


def test_metadata_for_another_entity_keeps_the_last_good_copy(saml_provider: IdentityProvider) -> None:
    saml_provider.entity_id = "https://idp.elsewhere.example/saml"
    saml_provider.save()
    before = list(saml_provider.signing_certificates)
    assert services.saml_metadata_refresh(idp=saml_provider) is False
    stored = IdentityProvider.objects.get(pk=saml_provider.pk)
    assert stored.entity_id == "https://idp.elsewhere.example/saml"
    assert stored.signing_certificates == before
    assert (
        "The metadata has no IdP descriptor for entity id 'https://idp.elsewhere.example/saml'."
        in stored.metadata_error
    )


def test_sp_key_rollover_keeps_sign_in_working(
    client: Any, saml_provider: IdentityProvider, simplesamlphp: SimpleSamlIdP
) -> None:
    from io import StringIO

    from django.core.management import call_command

    from sso.models import ServiceProviderKey

    saml_provider.allow_jit = True
    saml_provider.save()
    tenant = saml_provider.tenant
    urls = saml.sp_urls(tenant)
    old = ServiceProviderKey.objects.get(tenant=tenant).certificate

    out = StringIO()
    call_command("sso_sp_key", "stage", "north", stdout=out)
    assert "Staged a new SP key for north" in out.getvalue()
    new = ServiceProviderKey.objects.get(tenant=tenant).next_certificate
    metadata = client.get("/sso/north/saml/metadata/").content.decode()
    for pem in (old, new):
        assert "".join(pem.split()[2:-2]) in "".join(metadata.split())
    # The IdP picks up the metadata with both keys; we still sign with the old one.
    simplesamlphp.register_sp(
        entity_id=urls.entity_id, acs_url=urls.acs, slo_url=urls.sls, cert_pem=old, extra_cert_pems=(new,)
    )
    assert _sign_in(client, saml_provider).status_code == 302

    call_command("sso_sp_key", "activate", "north", stdout=out)
    key = ServiceProviderKey.objects.get(tenant=tenant)
    assert (key.certificate, key.next_certificate) == (new, "")
    client.logout()
    assert _sign_in(client, saml_provider).status_code == 302  # signed with the new key, IdP verified it
    assert AuditLog.objects.filter(action__in=["sso.sp_key_staged", "sso.sp_key_activated"]).count() == 2


def test_idp_that_never_got_the_new_key_refuses_our_requests(
    client: Any, saml_provider: IdentityProvider, simplesamlphp: SimpleSamlIdP
) -> None:
    """The reason for staging: activating before the IdP refreshed breaks sign-in."""
    services.sp_key_stage_next(tenant=saml_provider.tenant)
    services.sp_key_activate_next(tenant=saml_provider.tenant)
    start = client.get(reverse("sso:saml_login", args=["north", saml_provider.pk]))
    page = requests.get(start["Location"], timeout=10)
    # SimpleSAMLphp shows its error page (with status 200) naming the failed check.
    assert "Unable to validate signature on query string." in page.text
