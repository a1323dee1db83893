"""Full SAML sign-in against SimpleSAMLphp on loopback."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from sso.models import AssertionUse, IdentityProvider, SignInTicket
from tests.factories import ExternalIdentityFactory, UserFactory
from tests.sso.conftest import idp_login
from tutoring_core.accounts.models import AuditLog, ExternalIdentity, Role, RoleAssignment, User

pytestmark = [pytest.mark.peer, pytest.mark.django_db]


def _start(client: Any, idp: IdentityProvider, **params: str) -> str:
    response = client.get(reverse("sso:saml_login", args=[idp.tenant.slug, idp.pk]), params)
    assert response.status_code == 302
    return str(response["Location"])


def _post_to_acs(client: Any, posted: Any) -> Any:
    path = urlsplit(posted.action).path
    assert path == "/sso/north/saml/acs/"
    return client.post(path, posted.fields)


def test_sign_in_links_to_roster_person_by_sourced_id(client: Any, saml_provider: IdentityProvider) -> None:
    rostered = UserFactory(tenant=saml_provider.tenant, username="ada", first_name="A", last_name="S")
    ExternalIdentityFactory(user=rostered, kind="oneroster", issuer="sis-conn", subject="SIS-STU-1")
    before = User.objects.count()

    posted = idp_login(_start(client, saml_provider, next="/classes/"), "student1", "studentpass")
    acs = _post_to_acs(client, posted)
    assert acs.status_code == 303
    assert acs["Location"].startswith("/sso/north/saml/finish/?ticket=")
    finish = client.get(acs["Location"])

    assert finish.status_code == 302
    assert finish["Location"] == "/classes/"
    assert client.session["_auth_user_id"] == str(rostered.pk)
    assert User.objects.count() == before
    identity = ExternalIdentity.objects.get(kind="saml", user=rostered)
    assert identity.issuer == saml_provider.entity_id
    assert identity.subject == "stu-0001"
    rostered.refresh_from_db()
    assert (rostered.first_name, rostered.last_name, rostered.email) == (
        "Ada",
        "Student",
        "ada.student@north.example.edu",
    )
    assert rostered.email_verified is True
    sign_in = AuditLog.objects.get(action="auth.sign_in", actor=rostered)
    assert sign_in.details == {"method": "saml:North Schools Login"}
    assert AssertionUse.objects.filter(provider=saml_provider).count() == 1


def test_ticket_is_one_time_and_needs_the_starting_browser(
    client: Any, saml_provider: IdentityProvider
) -> None:
    saml_provider.allow_jit = True
    saml_provider.save()
    posted = idp_login(_start(client, saml_provider), "teacher1", "teacherpass")
    acs = _post_to_acs(client, posted)
    from django.test import Client

    stranger = Client()
    refused = stranger.get(acs["Location"])
    assert refused.status_code == 400
    assert b"started in another browser" in refused.content
    # The ticket was consumed by the stranger's attempt; nobody was created.
    assert not User.objects.filter(email="tom.teacher@north.example.edu").exists()
    again = client.get(acs["Location"])
    assert again.status_code == 400
    assert b"already used or has expired" in again.content
    ticket = SignInTicket.objects.get()
    assert ticket.consumed_at is not None
    assert ticket.payload == {}  # the attributes do not outlive the hop


def test_jit_creates_least_role_when_allowed(client: Any, saml_provider: IdentityProvider) -> None:
    saml_provider.allow_jit = True
    saml_provider.save()
    posted = idp_login(_start(client, saml_provider), "teacher1", "teacherpass")
    finish = client.get(_post_to_acs(client, posted)["Location"])
    assert finish.status_code == 302
    user = User.objects.get(email="tom.teacher@north.example.edu")
    assert user.tenant == saml_provider.tenant
    # Roster roles by default: the IdP says "faculty" but a new person gets the least role.
    assert list(RoleAssignment.objects.filter(user=user).values_list("role", "source")) == [
        (Role.STUDENT, "sso")
    ]


def test_idp_roles_when_tenant_opts_in(client: Any, saml_provider: IdentityProvider) -> None:
    saml_provider.allow_jit = True
    saml_provider.use_idp_roles = True
    saml_provider.save()
    posted = idp_login(_start(client, saml_provider), "teacher1", "teacherpass")
    client.get(_post_to_acs(client, posted)["Location"])
    user = User.objects.get(email="tom.teacher@north.example.edu")
    assert list(RoleAssignment.objects.filter(user=user).values_list("role", flat=True)) == [Role.TEACHER]


def test_no_jit_refuses_unknown_person_and_changes_nothing(
    client: Any, saml_provider: IdentityProvider
) -> None:
    before = (User.objects.count(), ExternalIdentity.objects.count())
    posted = idp_login(_start(client, saml_provider), "teacher1", "teacherpass")
    finish = client.get(_post_to_acs(client, posted)["Location"])
    assert finish.status_code == 400
    assert b"does not create accounts" in finish.content
    assert (User.objects.count(), ExternalIdentity.objects.count()) == before
    assert "_auth_user_id" not in client.session
    refused = AuditLog.objects.get(action="auth.sign_in_refused")
    assert refused.details["code"] == "no-account"


def test_jit_refuses_email_outside_allowed_domains(client: Any, saml_provider: IdentityProvider) -> None:
    saml_provider.allow_jit = True
    saml_provider.save()
    before = User.objects.count()
    posted = idp_login(_start(client, saml_provider), "outsider1", "outsiderpass")
    finish = client.get(_post_to_acs(client, posted)["Location"])
    assert finish.status_code == 400
    assert b"north.example.edu" in finish.content
    assert User.objects.count() == before


def test_same_response_posted_twice_is_refused(client: Any, saml_provider: IdentityProvider) -> None:
    saml_provider.allow_jit = True
    saml_provider.save()
    posted = idp_login(_start(client, saml_provider), "student1", "studentpass")
    assert _post_to_acs(client, posted).status_code == 303
    replay = _post_to_acs(client, posted)
    assert replay.status_code == 400
    assert b"already answered" in replay.content


def test_sp_metadata_is_signed_and_names_the_acs(client: Any, saml_provider: IdentityProvider) -> None:
    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    from sso.models import ServiceProviderKey

    response = client.get("/sso/north/saml/metadata/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/samlmetadata+xml"
    xml = response.content.decode()
    assert 'entityID="http://localhost:8000/sso/north/saml/metadata/"' in xml
    assert 'Location="http://localhost:8000/sso/north/saml/acs/"' in xml
    assert 'AuthnRequestsSigned="true"' in xml and 'WantAssertionsSigned="true"' in xml
    cert = ServiceProviderKey.objects.get(tenant=saml_provider.tenant).certificate
    assert OneLogin_Saml2_Utils.validate_metadata_sign(xml, cert, raise_exceptions=True) is True


def test_admin_test_sign_in_shows_mapping_and_changes_nothing(
    client: Any, saml_provider: IdentityProvider
) -> None:
    from tests.factories import district_admin

    admin_user = district_admin(saml_provider.tenant, username="north-admin")
    client.force_login(admin_user)
    start = client.get(reverse("admin:sso_identityprovider_test_sign_in", args=[saml_provider.pk]))
    assert start.status_code == 302
    assert start["Location"] == f"/sso/north/saml/{saml_provider.pk}/login/?purpose=test"
    before = (User.objects.count(), ExternalIdentity.objects.count())
    posted = idp_login(_start(client, saml_provider, purpose="test"), "teacher1", "teacherpass")
    page = client.get(_post_to_acs(client, posted)["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "tch-0001" in html
    assert "<td>roster sourcedId</td><td>employeeNumber</td><td>SIS-TCH-1</td>" in html
    assert (User.objects.count(), ExternalIdentity.objects.count()) == before
    assert client.session["_auth_user_id"] == str(admin_user.pk)
