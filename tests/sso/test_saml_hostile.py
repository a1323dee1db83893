"""Hostile SAML responses, forged in-test with signxml, against the real ACS.

The IdP config trusts a key pair made here; every case posts through the whole
view (python3-saml validation, our extra checks, replay cache) and asserts the
exact refusal and that nobody was created or changed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from lxml import etree

from sso.models import AssertionUse, IdentityProvider, SamlRequest, SignInTicket
from tests.factories import ExternalIdentityFactory, TenantFactory, UserFactory
from tests.peers.simplesamlphp import make_key_pair
from tests.sso import saml_forge as forge
from tutoring_core.accounts.models import AuditLog, ExternalIdentity, Tenant, User

pytestmark = [pytest.mark.django_db]

IDP_ENTITY = "https://idp.north.example.edu/saml"
SP_ENTITY = "http://localhost:8000/sso/north/saml/metadata/"
ACS = "http://localhost:8000/sso/north/saml/acs/"


@pytest.fixture(scope="module")
def idp_keys() -> tuple[str, str]:
    return make_key_pair("north-idp")


@pytest.fixture(scope="module")
def attacker_keys() -> tuple[str, str]:
    return make_key_pair("attacker")


@pytest.fixture
def north(db: Any) -> Tenant:
    return TenantFactory(slug="north", name="North District")


@pytest.fixture
def provider(north: Tenant, idp_keys: tuple[str, str]) -> IdentityProvider:
    return IdentityProvider.objects.create(
        tenant=north,
        name="North IdP",
        protocol=IdentityProvider.Protocol.SAML,
        entity_id=IDP_ENTITY,
        sso_url="https://idp.north.example.edu/sso",
        signing_certificates=[idp_keys[1]],
        email_attribute="mail",
        given_name_attribute="givenName",
        family_name_attribute="sn",
        roster_id_attribute="employeeNumber",
        emails_verified=True,
        allow_jit=True,
        allowed_email_domains="north.example.edu",
        clock_skew_seconds=60,
    )


def _start(client: Client, provider: IdentityProvider) -> str:
    response = client.get(reverse("sso:saml_login", args=["north", provider.pk]))
    assert response.status_code == 302
    return SamlRequest.objects.latest("created_at").request_id


def _spec(request_id: str, **over: Any) -> forge.ResponseSpec:
    values: dict[str, Any] = {
        "issuer": IDP_ENTITY,
        "destination": ACS,
        "audience": SP_ENTITY,
        "recipient": ACS,
        "in_response_to": request_id,
    }
    values.update(over)
    return forge.ResponseSpec(**values)


def _signed_response(
    spec: forge.ResponseSpec, keys: tuple[str, str], *, sha1: bool = False
) -> etree._Element:
    response = forge.build_response(spec)
    forge.sign(forge.assertion_of(response), *keys, sha1=sha1)
    return response


def _state() -> tuple[object, ...]:
    """Everything a refused sign-in must leave as it was: people (and their
    updated_at, so a changed profile shows), identities, replay cache, tickets."""
    people = tuple(
        User.objects.order_by("pk").values_list("pk", "updated_at", "email", "first_name", "is_active")
    )
    return (
        people,
        ExternalIdentity.objects.count(),
        AssertionUse.objects.count(),
        SignInTicket.objects.count(),
    )


def _refused(client: Client, response_xml: etree._Element | str, message: str) -> None:
    before = _state()
    encoded = response_xml if isinstance(response_xml, str) else forge.encode(response_xml)
    answer = client.post("/sso/north/saml/acs/", {"SAMLResponse": encoded})
    body = answer.content.decode()
    assert answer.status_code == 400, body[:1500]
    assert message in body, body[:3000]
    assert _state() == before
    assert "_auth_user_id" not in client.session
    assert AuditLog.objects.filter(action="auth.sign_in_refused").exists()


def test_good_response_signs_in(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    """The control: the same forge, used honestly, is accepted."""
    request_id = _start(client, provider)
    answer = client.post(
        "/sso/north/saml/acs/", {"SAMLResponse": forge.encode(_signed_response(_spec(request_id), idp_keys))}
    )
    assert answer.status_code == 303
    finish = client.get(answer["Location"])
    assert finish.status_code == 302
    user = User.objects.get(pk=client.session["_auth_user_id"])
    assert (user.email, user.first_name) == ("eve@north.example.edu", "Eve")


def test_unsigned_assertion(client: Client, provider: IdentityProvider) -> None:
    request_id = _start(client, provider)
    # (The library's wording, "require it", is its own.)
    _refused(
        client,
        forge.build_response(_spec(request_id)),
        "The Assertion of the Response is not signed and the SP require it",
    )


def test_signed_response_with_unsigned_assertion(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    request_id = _start(client, provider)
    response = forge.build_response(_spec(request_id))
    response = forge.sign(response, *idp_keys)
    _refused(client, response, "The Assertion of the Response is not signed and the SP require it")


def test_signed_by_unknown_key(
    client: Client, provider: IdentityProvider, attacker_keys: tuple[str, str]
) -> None:
    request_id = _start(client, provider)
    _refused(
        client,
        _signed_response(_spec(request_id), attacker_keys),
        "Signature validation failed. SAML Response rejected",
    )


def test_wrapping_evil_assertion_beside_signed_one(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    """XSW: the genuine signed assertion stays, an unsigned evil one is added first."""
    request_id = _start(client, provider)
    response = _signed_response(_spec(request_id, name_id="legit-user"), idp_keys)
    evil = forge.build_response(_spec(request_id, name_id="admin-victim"))
    evil_assertion = forge.assertion_of(evil)
    evil_assertion.set("ID", "_evil")
    response.insert(2, evil_assertion)
    _refused(client, response, "SAML Response must contain 1 assertion")


def test_wrapping_signed_assertion_hidden_in_extensions(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    """XSW: the signed assertion is moved into Extensions and an evil copy with the
    same ID and the genuine Signature takes its place."""
    request_id = _start(client, provider)
    response = _signed_response(_spec(request_id, name_id="legit-user"), idp_keys)
    genuine = forge.assertion_of(response)
    evil = forge.deep_copy(genuine)
    evil.find(f"{{{forge.SAML}}}Subject/{{{forge.SAML}}}NameID").text = "admin-victim"
    response.remove(genuine)
    extensions = etree.Element(f"{{{forge.SAMLP}}}Extensions")
    extensions.append(genuine)
    response.insert(1, extensions)
    response.append(evil)
    _refused(client, response, "SAML Response must contain 1 assertion")


def test_wrapping_evil_assertion_wraps_signed_one(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    """XSW: an unsigned evil assertion carries the genuine signed one inside it."""
    request_id = _start(client, provider)
    response = _signed_response(_spec(request_id, name_id="legit-user"), idp_keys)
    genuine = forge.assertion_of(response)
    evil = forge.assertion_of(forge.build_response(_spec(request_id, name_id="admin-victim")))
    evil.set("ID", "_evil")
    response.remove(genuine)
    evil.find(f"{{{forge.SAML}}}Subject").append(genuine)
    response.append(evil)
    _refused(client, response, "SAML Response must contain 1 assertion")


def test_wrapping_genuine_signature_on_evil_assertion(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    """XSW: the genuine Signature (referencing the genuine ID) is moved onto an
    evil assertion; the genuine assertion is gone."""
    request_id = _start(client, provider)
    response = _signed_response(_spec(request_id, name_id="legit-user"), idp_keys)
    genuine = forge.assertion_of(response)
    signature = genuine.find(f"{{{forge.DS}}}Signature")
    evil = forge.assertion_of(forge.build_response(_spec(request_id, name_id="admin-victim")))
    evil.set("ID", "_evil")
    evil.insert(1, signature)
    response.remove(genuine)
    response.append(evil)
    _refused(client, response, "Found an invalid Signed Element. SAML Response rejected")


def test_wrong_audience(client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]) -> None:
    request_id = _start(client, provider)
    response = _signed_response(_spec(request_id, audience="https://other-sp.example/"), idp_keys)
    _refused(
        client,
        response,
        "http://localhost:8000/sso/north/saml/metadata/ is not a valid audience for this Response",
    )


def test_expired(client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]) -> None:
    request_id = _start(client, provider)
    spec = _spec(request_id, now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))
    _refused(client, _signed_response(spec, idp_keys), "The assertion has expired (NotOnOrAfter")


def test_conditions_expired_beyond_skew(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    request_id = _start(client, provider)
    spec = _spec(request_id, not_after_offset=dt.timedelta(seconds=-90))
    response = forge.build_response(spec)
    # Keep SubjectConfirmationData valid so the Conditions check is what refuses.
    scd = response.find(f".//{{{forge.SAML}}}SubjectConfirmationData")
    scd.set("NotOnOrAfter", forge._t(spec.now + dt.timedelta(minutes=5)))
    forge.sign(forge.assertion_of(response), *idp_keys)
    _refused(client, response, "The assertion has expired (NotOnOrAfter")


def test_not_yet_valid(client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]) -> None:
    request_id = _start(client, provider)
    response = _signed_response(_spec(request_id, not_before_offset=dt.timedelta(minutes=5)), idp_keys)
    _refused(client, response, "The assertion is not valid yet (NotBefore")


def test_within_clock_skew_is_accepted(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    request_id = _start(client, provider)
    response = _signed_response(_spec(request_id, not_before_offset=dt.timedelta(seconds=30)), idp_keys)
    answer = client.post("/sso/north/saml/acs/", {"SAMLResponse": forge.encode(response)})
    assert answer.status_code == 303


def test_wrong_destination(client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]) -> None:
    request_id = _start(client, provider)
    response = _signed_response(_spec(request_id, destination="https://evil.example/acs"), idp_keys)
    _refused(
        client,
        response,
        "The response was received at http://localhost:8000/sso/north/saml/acs/ instead of https://evil.example/acs",
    )


def test_wrong_recipient(client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]) -> None:
    request_id = _start(client, provider)
    response = _signed_response(_spec(request_id, recipient="https://evil.example/acs"), idp_keys)
    _refused(client, response, "A valid SubjectConfirmation was not found on this Response")


def test_unknown_in_response_to(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    _start(client, provider)
    response = _signed_response(_spec("_never-sent"), idp_keys)
    _refused(client, response, "answers a sign-in request we did not send")


def test_comment_injected_in_name_id(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    """CVE-2017-11427 class: a comment spliced into a signed NameID keeps the signature."""
    victim = UserFactory(tenant=provider.tenant, email="victim@north.example.edu")
    ExternalIdentityFactory(user=victim, kind="saml", issuer=IDP_ENTITY, subject="victim@north.example.edu")
    request_id = _start(client, provider)
    response = _signed_response(_spec(request_id, name_id="victim@north.example.edu.evil.example"), idp_keys)
    xml = (
        etree.tostring(response)
        .decode()
        .replace("victim@north.example.edu.evil.example", "victim@north.example.edu<!---->.evil.example")
    )
    import base64

    _refused(client, base64.b64encode(xml.encode()).decode(), "The assertion contains an XML comment")


def test_sha1_signature_refused(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    request_id = _start(client, provider)
    response = _signed_response(_spec(request_id), idp_keys, sha1=True)
    _refused(
        client, response, "Deprecated signature algorithm found: http://www.w3.org/2000/09/xmldsig#rsa-sha1"
    )


def test_unknown_issuer(client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]) -> None:
    request_id = _start(client, provider)
    response = _signed_response(_spec(request_id, issuer="https://evil.example/idp"), idp_keys)
    _refused(
        client, response, "&#x27;https://evil.example/idp&#x27; is not an identity provider of North District"
    )


def test_issuer_of_another_tenant(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    """South's ACS does not accept North's IdP, even with North's genuine signature."""
    TenantFactory(slug="south", name="South District")
    request_id = _start(client, provider)
    response = _signed_response(_spec(request_id), idp_keys)
    before = _state()
    answer = client.post("/sso/south/saml/acs/", {"SAMLResponse": forge.encode(response)})
    assert answer.status_code == 400
    assert "is not an identity provider of South District" in answer.content.decode()
    assert _state() == before


def test_idp_initiated_refused_when_off(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    response = _signed_response(_spec(""), idp_keys)
    _refused(client, response, "does not accept sign-ins started at North IdP")


def test_idp_initiated_replay_refused(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    provider.allow_idp_initiated = True
    provider.save()
    response = forge.encode(_signed_response(_spec(""), idp_keys))
    first = client.post("/sso/north/saml/acs/", {"SAMLResponse": response, "RelayState": "/classes/"})
    assert first.status_code == 303
    finish = client.get(first["Location"])
    assert finish.status_code == 302 and finish["Location"] == "/classes/"
    client.logout()
    _refused(client, response, "This SAML assertion was already used to sign in; it cannot be used twice.")


def test_idp_initiated_relay_state_must_be_local(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    provider.allow_idp_initiated = True
    provider.save()
    response = forge.encode(_signed_response(_spec(""), idp_keys))
    first = client.post(
        "/sso/north/saml/acs/", {"SAMLResponse": response, "RelayState": "https://evil.example/"}
    )
    assert client.get(first["Location"])["Location"] == "/"


def test_garbage_is_a_clear_400(client: Client, provider: IdentityProvider) -> None:
    _refused(client, "not base64 at all!!", "The SAMLResponse is not base64-encoded SAML XML.")
    _refused(client, "", "The request carries no SAMLResponse.")


def test_transient_name_id_is_refused_at_finish(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    request_id = _start(client, provider)
    spec = _spec(request_id, name_id_format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient")
    answer = client.post(
        "/sso/north/saml/acs/", {"SAMLResponse": forge.encode(_signed_response(spec, idp_keys))}
    )
    assert answer.status_code == 303
    before = (User.objects.count(), ExternalIdentity.objects.count())
    finish = client.get(answer["Location"])
    assert finish.status_code == 400
    assert "sent a transient NameID, which changes every sign-in" in finish.content.decode()
    assert (User.objects.count(), ExternalIdentity.objects.count()) == before


def test_request_older_than_fifteen_minutes_is_refused(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    import time_machine

    with time_machine.travel(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16), tick=False):
        request_id = _start(client, provider)
    _refused(client, _signed_response(_spec(request_id), idp_keys), "The sign-in took too long; start again.")


def test_deactivated_person_is_refused(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    person = UserFactory(tenant=provider.tenant, is_active=False)
    ExternalIdentityFactory(user=person, kind="saml", issuer=IDP_ENTITY, subject="forged-user-1")
    request_id = _start(client, provider)
    answer = client.post(
        "/sso/north/saml/acs/", {"SAMLResponse": forge.encode(_signed_response(_spec(request_id), idp_keys))}
    )
    finish = client.get(answer["Location"])
    assert finish.status_code == 400
    assert "This account is deactivated; ask your district admin." in finish.content.decode()
    assert "_auth_user_id" not in client.session


def test_acs_query_count_is_pinned(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    """The ACS is the hot path of a school morning: pin what one POST costs.

    Session reads are left out: whether a middleware loads the session (the LTI
    cookie middleware does) is not the ACS's doing."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sso import services

    services.sp_key_get_or_create(tenant=provider.tenant)
    request_id = _start(client, provider)
    body = forge.encode(_signed_response(_spec(request_id), idp_keys))
    with CaptureQueriesContext(connection) as captured:
        answer = client.post("/sso/north/saml/acs/", {"SAMLResponse": body})
    assert answer.status_code == 303
    ours = [q["sql"].split(" ")[0] for q in captured.captured_queries if "django_session" not in q["sql"]]
    # tenant, provider by issuer, pending request, SP key; then one transaction:
    # claim the request, insert the assertion id (own savepoint), insert the ticket.
    assert ours == [
        "SELECT",
        "SELECT",
        "SELECT",
        "SELECT",
        "SAVEPOINT",
        "UPDATE",
        "SAVEPOINT",
        "INSERT",
        "RELEASE",
        "INSERT",
        "RELEASE",
    ]


def test_purge_drops_expired_replay_entries_only(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    import time_machine

    from sso import tasks

    provider.allow_idp_initiated = True
    provider.save()
    client.post("/sso/north/saml/acs/", {"SAMLResponse": forge.encode(_signed_response(_spec(""), idp_keys))})
    assert AssertionUse.objects.count() == 1
    assert tasks.purge_expired.apply().get()["assertions"] == 0
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2), tick=False):
        assert tasks.purge_expired.apply().get() == {"assertions": 1, "tickets": 1, "requests": 0}


def test_email_match_is_only_a_candidate(
    client: Client, provider: IdentityProvider, idp_keys: tuple[str, str]
) -> None:
    """Someone already has eve@...: a new SSO identity with that email is created
    beside them and recorded as a candidate, never merged into their account."""
    from tutoring_core.accounts.models import LinkCandidate

    existing = UserFactory(tenant=provider.tenant, email="eve@north.example.edu")
    request_id = _start(client, provider)
    answer = client.post(
        "/sso/north/saml/acs/", {"SAMLResponse": forge.encode(_signed_response(_spec(request_id), idp_keys))}
    )
    assert client.get(answer["Location"]).status_code == 302
    signed_in = User.objects.get(pk=client.session["_auth_user_id"])
    assert signed_in.pk != existing.pk
    assert list(LinkCandidate.objects.values_list("user_id", "candidate_id", "reason")) == [
        (signed_in.pk, existing.pk, "email")
    ]
    assert not ExternalIdentity.objects.filter(user=existing).exists()


def test_doctype_and_entities_are_refused(client: Client, provider: IdentityProvider) -> None:
    import base64

    xxe = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" Version="2.0">&x;</samlp:Response>'
    )
    _refused(
        client, base64.b64encode(xxe.encode()).decode(), "The SAMLResponse is not base64-encoded SAML XML."
    )
