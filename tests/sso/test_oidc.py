"""OIDC sign-in: the code flow against oidc-provider-mock, and forged ID tokens
against the real relying-party code (ForgeProvider serves them over HTTP)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.test import Client
from django.urls import reverse
from joserfc import jwt
from oidc_provider_mock import User as MockUser
from oidc_provider_mock import run_server_in_thread

from sso.models import IdentityProvider
from tests.factories import ExternalIdentityFactory, TenantFactory, UserFactory
from tests.peers.oidc_provider import ForgeProvider, forge_provider
from tutoring_core.accounts.models import AuditLog, ExternalIdentity, Role, RoleAssignment, Tenant, User

pytestmark = [pytest.mark.django_db]

CLIENT_ID = "hub-client"
MOCK_USERS = [
    MockUser(
        sub="oidc-stu-1",
        claims={
            "email": "ada.student@north.example.edu",
            "email_verified": True,
            "given_name": "Ada",
            "family_name": "Student",
            "name": "Ada Student",
            "sourced_id": "SIS-STU-1",
        },
    ),
    MockUser(
        sub="oidc-new-1",
        claims={"email": "nia.new@north.example.edu", "email_verified": False, "given_name": "Nia"},
    ),
]


@pytest.fixture(scope="module")
def mock_server() -> Iterator[str]:
    with run_server_in_thread(require_nonce=True, user_claims=MOCK_USERS) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def north(db: Any) -> Tenant:
    return TenantFactory(slug="north", name="North District")


def _provider(tenant: Tenant, issuer: str, **extra: Any) -> IdentityProvider:
    fields: dict[str, Any] = {
        "tenant": tenant,
        "name": "North Cloud Login",
        "protocol": IdentityProvider.Protocol.OIDC,
        "preset": "generic_oidc",
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": "s3cret-value",
        "email_attribute": "email",
        "given_name_attribute": "given_name",
        "family_name_attribute": "family_name",
        "display_name_attribute": "name",
        "roster_id_attribute": "sourced_id",
        "allowed_email_domains": "north.example.edu",
    }
    fields.update(extra)
    return IdentityProvider.objects.create(**fields)


def _start(client: Client, idp: IdentityProvider) -> dict[str, str]:
    response = client.get(reverse("sso:oidc_login", args=[idp.tenant.slug, idp.pk]))
    assert response.status_code == 302, response.content[:500]
    query = {k: v[0] for k, v in parse_qs(urlsplit(response["Location"]).query).items()}
    query["_url"] = response["Location"]
    return query


def _authorize_at_mock(auth_url: str, sub: str) -> str:
    answer = requests.post(auth_url, data={"sub": sub}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:500]
    callback = urlsplit(answer.headers["Location"])
    assert callback.path == "/sso/north/oidc/callback/"
    return f"{callback.path}?{callback.query}"


@pytest.mark.peer
def test_code_flow_with_pkce_links_roster_person(client: Client, north: Tenant, mock_server: str) -> None:
    idp = _provider(north, mock_server)
    rostered = UserFactory(tenant=north, username="ada")
    ExternalIdentityFactory(user=rostered, kind="oneroster", issuer="sis", subject="SIS-STU-1")
    query = _start(client, idp)
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == "http://localhost:8000/sso/north/oidc/callback/"
    assert query["nonce"] and query["state"]

    finish = client.get(_authorize_at_mock(query["_url"], "oidc-stu-1"))
    assert finish.status_code == 302
    assert client.session["_auth_user_id"] == str(rostered.pk)
    identity = ExternalIdentity.objects.get(kind="oidc", user=rostered)
    assert (identity.issuer, identity.subject) == (mock_server, "oidc-stu-1")
    rostered.refresh_from_db()
    assert rostered.email == "ada.student@north.example.edu" and rostered.email_verified is True
    assert AuditLog.objects.get(action="auth.sign_in", actor=rostered).details == {
        "method": "oidc:North Cloud Login"
    }
    idp.refresh_from_db()
    assert idp.client_secret == "s3cret-value"
    assert idp.jwks["keys"][0]["kty"] == "RSA"


@pytest.mark.peer
def test_secret_is_encrypted_at_rest(north: Tenant, mock_server: str) -> None:
    from django.db import connection

    idp = _provider(north, mock_server)
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret FROM sso_identityprovider WHERE id = %s", [idp.pk.hex])
        stored = cursor.fetchone()[0]
    assert "s3cret" not in stored and stored.startswith("gAAAA")


@pytest.mark.peer
def test_jit_unverified_email_is_refused(client: Client, north: Tenant, mock_server: str) -> None:
    idp = _provider(north, mock_server, allow_jit=True)
    before = (User.objects.count(), ExternalIdentity.objects.count())
    query = _start(client, idp)
    finish = client.get(_authorize_at_mock(query["_url"], "oidc-new-1"))
    assert finish.status_code == 400
    assert "new accounts need a verified email in north.example.edu" in finish.content.decode()
    assert (User.objects.count(), ExternalIdentity.objects.count()) == before


@pytest.mark.peer
def test_jit_creates_with_least_role(client: Client, north: Tenant, mock_server: str) -> None:
    idp = _provider(north, mock_server, allow_jit=True)
    query = _start(client, idp)
    assert client.get(_authorize_at_mock(query["_url"], "oidc-stu-1")).status_code == 302
    user = User.objects.get(email="ada.student@north.example.edu")
    assert list(RoleAssignment.objects.filter(user=user).values_list("role", flat=True)) == [Role.STUDENT]


@pytest.mark.peer
def test_wrong_state_is_refused(client: Client, north: Tenant, mock_server: str) -> None:
    idp = _provider(north, mock_server, allow_jit=True)
    query = _start(client, idp)
    callback = _authorize_at_mock(query["_url"], "oidc-stu-1")
    tampered = callback.replace(f"state={query['state']}", "state=not-the-state")
    response = client.get(tampered)
    assert response.status_code == 400
    assert "does not match a sign-in started in this browser" in response.content.decode()
    assert not User.objects.filter(email="ada.student@north.example.edu").exists()
    # Another browser cannot finish this flow either.
    assert Client().get(callback).status_code == 400


# --- forged ID tokens ------------------------------------------------------------------


@pytest.fixture
def forge() -> Iterator[ForgeProvider]:
    with forge_provider() as provider:
        yield provider


def _claims(forge: ForgeProvider, nonce: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": forge.issuer,
        "sub": "forged-sub",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "nonce": nonce,
        "email": "eve@north.example.edu",
        "email_verified": True,
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(forge: ForgeProvider, claims: dict[str, Any]) -> str:
    return jwt.encode({"alg": "RS256", "kid": "forge-1"}, claims, forge.key)


def _unsigned(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _forged_sign_in(client: Client, north: Tenant, forge: ForgeProvider, make_token: Any) -> Any:
    idp = _provider(north, forge.issuer, allow_jit=True)
    query = _start(client, idp)
    forge.next_token = lambda form: {
        "access_token": "at",
        "token_type": "Bearer",
        "id_token": make_token(query),
    }
    return client.get(f"/sso/north/oidc/callback/?code=abc&state={query['state']}")


CASES = {
    "good-control": (lambda f, q: _signed(f, _claims(f, q["nonce"])), 302, ""),
    "wrong-nonce": (
        lambda f, q: _signed(f, _claims(f, "another-nonce")),
        400,
        "The ID token&#x27;s &#x27;nonce&#x27; claim is wrong",
    ),
    "wrong-issuer": (
        lambda f, q: _signed(f, _claims(f, q["nonce"], iss="https://evil.example")),
        400,
        "The ID token&#x27;s &#x27;iss&#x27; claim is wrong",
    ),
    "wrong-audience": (
        lambda f, q: _signed(f, _claims(f, q["nonce"], aud="someone-else")),
        400,
        "The ID token&#x27;s &#x27;aud&#x27; claim is wrong",
    ),
    "expired": (
        lambda f, q: _signed(
            f, _claims(f, q["nonce"], iat=int(time.time()) - 3600, exp=int(time.time()) - 600)
        ),
        400,
        "The ID token has expired.",
    ),
    "alg-none": (lambda f, q: _unsigned(_claims(f, q["nonce"])), 400, "signed with &#x27;none&#x27;"),
    "foreign-key": (
        lambda f, q: jwt.encode(
            {"alg": "RS256", "kid": "forge-1"},
            _claims(f, q["nonce"]),
            __import__("joserfc.jwk", fromlist=["RSAKey"]).RSAKey.generate_key(2048),
        ),
        400,
        "signature does not verify",
    ),
    "multi-aud-without-azp": (
        lambda f, q: _signed(f, _claims(f, q["nonce"], aud=[CLIENT_ID, "other"])),
        400,
        "several audiences",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_forged_id_tokens(client: Client, north: Tenant, forge: ForgeProvider, case: str) -> None:
    make, status, message = CASES[case]
    bystander = UserFactory(tenant=north, email="eve@north.example.edu")  # same email as the forged claims

    def state() -> tuple[object, ...]:
        people = tuple(User.objects.order_by("pk").values_list("pk", "updated_at", "email", "first_name"))
        return (people, ExternalIdentity.objects.count())

    before = state()
    response = _forged_sign_in(client, north, forge, lambda q: make(forge, q))
    assert response.status_code == status, response.content.decode()[:2000]
    assert forge.token_requests[0]["code_verifier"]
    if status == 302:
        # A new person beside the bystander (an email match is only a candidate).
        assert User.objects.filter(email="eve@north.example.edu").count() == 2
        assert client.session["_auth_user_id"] != str(bystander.pk)
        return
    assert message in response.content.decode()
    assert state() == before
    assert "_auth_user_id" not in client.session
    assert AuditLog.objects.filter(action="auth.sign_in_refused").count() == 1


@pytest.mark.peer
def test_admin_test_sign_in_shows_claims_and_changes_nothing(
    client: Client, north: Tenant, mock_server: str
) -> None:
    from tests.factories import district_admin

    idp = _provider(north, mock_server, allow_jit=True)
    admin_user = district_admin(north, username="north-admin")
    client.force_login(admin_user)
    start = client.get(reverse("admin:sso_identityprovider_test_sign_in", args=[idp.pk]))
    assert start["Location"] == f"/sso/north/oidc/{idp.pk}/login/?purpose=test"
    login = client.get(start["Location"])
    before = (User.objects.count(), ExternalIdentity.objects.count())
    page = client.get(_authorize_at_mock(login["Location"], "oidc-stu-1"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "<td>roster sourcedId</td><td>sourced_id</td><td>SIS-STU-1</td>" in html
    assert "<th>email_verified</th><td>true</td>" in html
    assert (User.objects.count(), ExternalIdentity.objects.count()) == before
    assert client.session["_auth_user_id"] == str(admin_user.pk)
    assert AuditLog.objects.get(action="sso.test_sign_in").details == {"subject": "oidc-stu-1", "ok": True}


@pytest.mark.peer
def test_flow_older_than_fifteen_minutes_is_refused(client: Client, north: Tenant, mock_server: str) -> None:
    import datetime as dt

    import time_machine

    idp = _provider(north, mock_server, allow_jit=True)
    with time_machine.travel(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16), tick=False):
        query = _start(client, idp)
    response = client.get(_authorize_at_mock(query["_url"], "oidc-stu-1"))
    assert response.status_code == 400
    assert "The sign-in took too long; start again." in response.content.decode()
    assert not User.objects.filter(email="ada.student@north.example.edu").exists()


def test_idp_error_is_shown(client: Client, north: Tenant, forge: ForgeProvider) -> None:
    idp = _provider(north, forge.issuer)
    query = _start(client, idp)
    response = client.get(
        f"/sso/north/oidc/callback/?error=access_denied&error_description=User+said+no&state={query['state']}"
    )
    assert response.status_code == 400
    assert "North Cloud Login answered: access_denied User said no" in response.content.decode()
    assert forge.token_requests == []


def test_discovery_issuer_mismatch_is_refused(client: Client, north: Tenant, forge: ForgeProvider) -> None:
    idp = _provider(north, forge.issuer + "/tenant-a")  # discovery at that path is a 404 here
    response = client.get(reverse("sso:oidc_login", args=["north", idp.pk]))
    assert response.status_code == 502
    assert "Could not fetch the OpenID configuration" in response.content.decode()


def test_api_sign_in_options(north: Tenant, forge: ForgeProvider) -> None:
    from sso import api

    idp = _provider(north, forge.issuer)
    IdentityProvider.objects.create(tenant=north, name="Off", protocol="oidc", is_enabled=False)
    assert api.sign_in_options(tenant=north) == [
        api.SignInOption(
            provider_id=idp.pk,
            name="North Cloud Login",
            protocol="oidc",
            url=f"/sso/north/oidc/{idp.pk}/login/",
        )
    ]
    assert api.sign_in_page_url(tenant=north) == "/sso/north/"


def test_jwks_is_cached_and_refetched_on_rotation_at_most_once_a_minute(
    client: Client, north: Tenant, forge: ForgeProvider
) -> None:
    import datetime as dt

    import time_machine

    def good(query: dict[str, str]) -> str:
        return jwt.encode({"alg": "RS256", "kid": forge.key.kid}, _claims(forge, query["nonce"]), forge.key)

    assert _forged_sign_in(client, north, forge, good).status_code == 302
    idp = IdentityProvider.objects.get(tenant=north)
    assert forge.hits["/jwks"] == 1

    def sign_in_again() -> Any:
        query = _start(client, idp)
        forge.next_token = lambda form: {
            "access_token": "at",
            "token_type": "Bearer",
            "id_token": good(query),
        }
        return client.get(f"/sso/north/oidc/callback/?code=abc&state={query['state']}")

    client.logout()
    assert sign_in_again().status_code == 302
    assert forge.hits["/jwks"] == 1  # cached
    forge.rotate("forge-2")
    client.logout()
    refused = sign_in_again()  # unknown kid, but the last fetch was under a minute ago
    assert refused.status_code == 400
    assert forge.hits["/jwks"] == 1
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)):
        client.logout()
        assert sign_in_again().status_code == 302
    assert forge.hits["/jwks"] == 2


@pytest.mark.peer
def test_userinfo_is_read_when_configured(client: Client, north: Tenant, mock_server: str) -> None:
    """ClassLink-style: the roster id is taken from userinfo (the mock serves the
    same claims there); a userinfo answer must be for the same subject."""
    idp = _provider(north, mock_server, use_userinfo=True)
    rostered = UserFactory(tenant=north, username="ada")
    ExternalIdentityFactory(user=rostered, kind="oneroster", issuer="sis", subject="SIS-STU-1")
    query = _start(client, idp)
    assert client.get(_authorize_at_mock(query["_url"], "oidc-stu-1")).status_code == 302
    assert client.session["_auth_user_id"] == str(rostered.pk)


def test_broken_jwks_is_a_clear_refusal(client: Client, north: Tenant, forge: ForgeProvider) -> None:
    forge.key_set_override = {"keys": [{"kty": "RSA", "kid": "forge-1", "n": "not-a-modulus"}]}

    def good(query: dict[str, str]) -> str:
        return _signed(forge, _claims(forge, query["nonce"]))

    response = _forged_sign_in(client, north, forge, good)
    assert response.status_code == 400
    assert "The provider&#x27;s JSON Web Key Set cannot be used" in response.content.decode()
    assert IdentityProvider.objects.get(tenant=north).jwks == {}


# --- RFC 9207: the iss authorization-response parameter ---------------------------------


def test_authorization_response_iss_of_another_provider_is_refused(
    client: Client, north: Tenant, forge: ForgeProvider
) -> None:
    """A mix-up attack: the response carries another provider's iss. Refused before
    the code goes to any token endpoint; nothing is created."""
    idp = _provider(north, forge.issuer, allow_jit=True)
    query = _start(client, idp)
    before = (User.objects.count(), ExternalIdentity.objects.count())
    response = client.get(
        "/sso/north/oidc/callback/",
        {"code": "abc", "state": query["state"], "iss": "https://attacker.example.org"},
    )
    assert response.status_code == 400
    assert (
        "The sign-in response comes from &#x27;https://attacker.example.org&#x27;, not from "
        f"North Cloud Login (&#x27;{forge.issuer}&#x27;); start again."
    ) in response.content.decode()
    assert forge.token_requests == []
    assert (User.objects.count(), ExternalIdentity.objects.count()) == before
    assert "_auth_user_id" not in client.session
    refused = AuditLog.objects.get(action="auth.sign_in_refused")
    assert refused.details["code"] == "iss-mismatch"


@pytest.mark.peer
def test_authorization_response_iss_of_the_provider_is_accepted(
    client: Client, north: Tenant, mock_server: str
) -> None:
    idp = _provider(north, mock_server)
    rostered = UserFactory(tenant=north, username="ada")
    ExternalIdentityFactory(user=rostered, kind="oneroster", issuer="sis", subject="SIS-STU-1")
    query = _start(client, idp)
    callback = _authorize_at_mock(query["_url"], "oidc-stu-1")
    finish = client.get(callback + "&" + urlencode({"iss": mock_server}))
    assert finish.status_code == 302
    assert client.session["_auth_user_id"] == str(rostered.pk)
