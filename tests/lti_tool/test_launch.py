"""Login and launch against the loopback platform (lti1p3platform), real keys over HTTP:
the 1EdTech tool-certification bad payloads, and valid teacher/student launches."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lti_tool import api
from lti_tool.models import Deployment, LtiContext, ResourceLink
from tests.factories import UserFactory
from tests.lti_tool.conftest import run_launch
from tests.peers.lti_platform import (
    ROLE_INST_FACULTY,
    ROLE_INSTRUCTOR,
    ROLE_LEARNER,
    ROLE_MENTOR,
    ROLE_TA,
    LaunchSpec,
    LtiPlatform,
    fetch,
)
from tutoring_core.accounts.models import AuditLog, ExternalIdentity, User
from tutoring_core.classes.models import Class, ClassKey, Enrollment

pytestmark = pytest.mark.peer

LTI = "https://purl.imsglobal.org/spec/lti/claim/"


def _counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "identities": ExternalIdentity.objects.count(),
        "classes": Class.objects.count(),
        "enrollments": Enrollment.objects.count(),
        "contexts": LtiContext.objects.count(),
        "links": ResourceLink.objects.count(),
    }


def _pop(*claims: str) -> Any:
    def mutate(payload: dict[str, Any]) -> None:
        for claim in claims:
            payload.pop(claim, None)

    return mutate


def _set(**values: Any) -> Any:
    def mutate(payload: dict[str, Any]) -> None:
        for claim, value in values.items():
            payload[claim.replace("__", "/")] = value

    return mutate


def _set_claim(claim: str, value: Any) -> Any:
    def mutate(payload: dict[str, Any]) -> None:
        payload[claim] = value

    return mutate


NOW = int(time.time())

# (case id, LaunchSpec kwargs, expected status, expected code)
BAD_PAYLOADS = [
    ("no_kid", {"signing": "no_kid"}, 400, "kid_missing"),
    ("unknown_kid", {"signing": "unknown_kid"}, 400, "kid_unknown"),
    ("alg_none", {"signing": "none"}, 400, "alg_refused"),
    ("hs256_with_public_key", {"signing": "hs256_public"}, 400, "alg_refused"),
    ("signed_by_another_key", {"signing": "foreign_key"}, 400, "signature_invalid"),
    ("wrong_lti_version", {"mutate": _set_claim(LTI + "version", "1.2.0")}, 400, "version_wrong"),
    ("missing_lti_version", {"mutate": _pop(LTI + "version")}, 400, "version_missing"),
    (
        "jwt_without_lti_claims",
        {"mutate": lambda p: [p.pop(k) for k in list(p) if k.startswith("https://purl.imsglobal.org/")]},
        400,
        "version_missing",
    ),
    ("missing_aud", {"mutate": _pop("aud", "azp")}, 400, "aud_missing"),
    ("wrong_aud", {"mutate": _set_claim("aud", "some-other-tool")}, 400, "aud_wrong"),
    ("azp_names_another_client", {"mutate": _set_claim("azp", "other")}, 400, "azp_wrong"),
    (
        "extra_untrusted_aud_even_with_azp",
        {"mutate": lambda p: p.update(aud=[p["aud"], "https://other-tool.example.org"], azp=p["aud"])},
        400,
        "aud_untrusted",
    ),
    ("missing_iss", {"mutate": _pop("iss")}, 400, "iss_missing"),
    ("wrong_iss", {"mutate": _set_claim("iss", "https://evil.example.org")}, 400, "iss_wrong"),
    ("missing_sub", {"sub": None}, 400, "sub_missing"),
    ("missing_deployment_id", {"mutate": _pop(LTI + "deployment_id")}, 400, "deployment_id_missing"),
    ("missing_roles", {"roles": None}, 400, "roles_missing"),
    ("missing_message_type", {"mutate": _pop(LTI + "message_type")}, 400, "message_type_missing"),
    (
        "unsupported_message_type",
        {"mutate": _set_claim(LTI + "message_type", "LtiSubmissionReviewRequest")},
        400,
        "message_type_unsupported",
    ),
    (
        "missing_resource_link_id",
        {"mutate": _set_claim(LTI + "resource_link", {"title": "x"})},
        400,
        "resource_link_missing",
    ),
    (
        "iat_in_future",
        {"mutate": lambda p: p.update(iat=NOW + 3600, exp=NOW + 7200)},
        400,
        "token_iat_future",
    ),
    ("expired", {"mutate": lambda p: p.update(iat=NOW - 7200, exp=NOW - 3600)}, 400, "token_expired"),
    ("missing_exp", {"mutate": _pop("exp")}, 400, "exp_missing"),
    ("wrong_nonce", {"mutate": _set_claim("nonce", "not-the-issued-nonce")}, 400, "nonce_wrong"),
    ("unknown_deployment_held", {"deployment_id": "unregistered-deployment"}, 403, "deployment_pending"),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "code"), [case[1:] for case in BAD_PAYLOADS], ids=[case[0] for case in BAD_PAYLOADS]
)
def test_certification_bad_payloads_are_rejected_and_create_nothing(
    client: Any, platform: LtiPlatform, registration: Any, kwargs: dict[str, Any], status: int, code: str
) -> None:
    before = _counts()
    spec = platform.launch(**{"roles": [ROLE_INSTRUCTOR], **kwargs})
    result = run_launch(client, platform, spec)
    assert result.response.status_code == status
    assert f'data-code="{code}"' in result.response.content.decode()
    assert _counts() == before
    assert "_auth_user_id" not in client.session


def test_extra_audience_is_refused_with_its_name(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    """LTI Security Framework 5.1.3 step 3: a token that also names an audience the
    tool does not trust is refused, even when azp names the tool."""
    before = _world()
    spec = platform.launch(
        roles=[ROLE_INSTRUCTOR],
        mutate=lambda p: p.update(aud=[p["aud"], "https://other-tool.example.org"], azp=p["aud"]),
    )
    response = run_launch(client, platform, spec).response
    assert response.status_code == 400
    assert (
        '<p class="error" data-code="aud_untrusted">The launch is also addressed to '
        "&#x27;https://other-tool.example.org&#x27;, an audience this tool does not trust. "
        "If the LMS adds it on purpose, list it under the registration&#x27;s trusted audiences.</p>"
    ) in response.content.decode()
    assert _world() == before
    assert "_auth_user_id" not in client.session


def test_extra_audience_listed_on_the_registration_is_accepted(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    registration.trusted_audiences = "https://other-tool.example.org\nhttps://third.example.org"
    registration.save(update_fields=["trusted_audiences", "updated_at"])
    spec = platform.launch(
        sub="s-aud",
        roles=[ROLE_LEARNER],
        mutate=lambda p: p.update(aud=[p["aud"], "https://other-tool.example.org"], azp=p["aud"]),
    )
    assert run_launch(client, platform, spec).response.status_code == 302
    assert ExternalIdentity.objects.get(kind="lti").subject == "s-aud"
    # A trusted extra audience still needs azp to name the tool (OIDC Core 3.1.3.7).
    spec = platform.launch(
        roles=[ROLE_LEARNER],
        mutate=lambda p: p.update(
            aud=[p["aud"], "https://other-tool.example.org"], azp="https://other-tool.example.org"
        ),
    )
    response = run_launch(type(client)(), platform, spec).response
    assert response.status_code == 400
    assert 'data-code="azp_wrong"' in response.content.decode()


def test_unknown_deployment_is_held_for_approval(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    run_launch(client, platform, platform.launch(deployment_id="new-deployment"))
    held = Deployment.objects.get(registration=registration, deployment_id="new-deployment")
    assert held.status == Deployment.Status.PENDING
    held.status = Deployment.Status.ACTIVE
    held.save(update_fields=["status"])
    response = run_launch(client, platform, platform.launch(deployment_id="new-deployment")).response
    assert response.status_code == 302


def test_unknown_deployment_accepted_under_accept_new(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    registration.deployment_policy = "accept_new"
    registration.save(update_fields=["deployment_policy"])
    response = run_launch(client, platform, platform.launch(deployment_id="fresh")).response
    assert response.status_code == 302
    assert Deployment.objects.get(deployment_id="fresh").status == Deployment.Status.ACTIVE


def test_not_a_jwt_is_rejected(client: Any, platform: LtiPlatform, registration: Any) -> None:
    spec = platform.launch()
    login = client.get("/lti/login/", platform.login_params(spec))
    state = parse_qs(urlsplit(login["Location"]).query)["state"][0]
    before = _counts()
    response = client.post("/lti/launch/", {"id_token": "this.is-not.a-jwt", "state": state})
    assert response.status_code == 400
    assert 'data-code="not_a_jwt"' in response.content.decode()
    assert _counts() == before


def _world() -> dict[str, int]:
    """Everything a launch could create, a refused one included: people, classes,
    sessions and audit rows."""
    from django.contrib.sessions.models import Session

    return {**_counts(), "sessions": Session.objects.count(), "audit": AuditLog.objects.count()}


USED_MESSAGE = "This launch was already used; start it again from the LMS."


def test_replayed_launch_from_the_same_browser_is_refused(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    result = run_launch(client, platform, platform.launch(roles=[ROLE_LEARNER]))
    assert result.response.status_code == 302
    client.logout()
    before = _world()
    # The launch expired its state cookie: the browser posts the same form again
    # without it (as a back button or a resubmitted form does)...
    replay = client.post("/lti/launch/", result.form)
    assert replay.status_code == 400
    html = replay.content.decode()
    assert 'data-code="state_used"' in html and USED_MESSAGE in html
    assert 'id="lti-new-window"' not in html
    # ...or a replayer holding the cookie as well.
    client.cookies["lti1p3-" + result.form["state"]] = result.form["state"]
    again = client.post("/lti/launch/", result.form)
    assert again.status_code == 400
    assert 'data-code="state_used"' in again.content.decode()
    assert _world() == before
    assert "_auth_user_id" not in client.session


def test_replayed_launch_from_a_fresh_browser_is_refused(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    result = run_launch(client, platform, platform.launch(roles=[ROLE_INSTRUCTOR]))
    assert result.response.status_code == 302
    before = _world()
    stranger = type(client)()
    replay = stranger.post("/lti/launch/", result.form)
    assert replay.status_code == 400
    html = replay.content.decode()
    assert 'data-code="state_used"' in html and USED_MESSAGE in html
    assert 'id="lti-new-window"' not in html
    assert _world() == before
    assert "_auth_user_id" not in stranger.session


def test_refused_launch_uses_up_its_state(client: Any, platform: LtiPlatform, registration: Any) -> None:
    """A launch refused after its nonce was spent (here: a held deployment) cannot
    be posted again either; the LMS starts a new one."""
    result = run_launch(client, platform, platform.launch(deployment_id="held-one"))
    assert result.response.status_code == 403
    before = _world()
    replay = type(client)().post("/lti/launch/", result.form)
    assert replay.status_code == 400
    assert 'data-code="state_used"' in replay.content.decode()
    assert _world() == before


def test_unknown_state_is_rejected(client: Any, platform: LtiPlatform, registration: Any) -> None:
    response = client.post("/lti/launch/", {"id_token": "a.b.c", "state": "never-issued"})
    assert response.status_code == 400
    assert 'data-code="state_unknown"' in response.content.decode()


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"iss": ""}, "login_iss_missing"),
        ({"login_hint": ""}, "login_login_hint_missing"),
        ({"client_id": "unregistered-client"}, "registration_unknown"),
        ({"iss": "https://unknown-lms.example.org"}, "registration_unknown"),
        ({"target_link_uri": "https://evil.example.org/lti/launch/"}, "login_target_foreign"),
    ],
    ids=["no_iss", "no_login_hint", "unknown_client", "unknown_issuer", "foreign_target"],
)
def test_bad_login_initiation(
    client: Any, platform: LtiPlatform, registration: Any, params: dict[str, str], code: str
) -> None:
    login = {**platform.login_params(platform.launch()), **params}
    response = client.get("/lti/login/", login)
    assert response.status_code == 400
    assert f'data-code="{code}"' in response.content.decode()
    assert platform.auth_requests == []


def test_login_by_post_sends_a_complete_auth_request(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    spec = platform.launch()
    login = client.post("/lti/login/", platform.login_params(spec))
    assert login.status_code == 302
    query = {k: v[0] for k, v in parse_qs(urlsplit(login["Location"]).query).items()}
    assert login["Location"].startswith(platform.auth_url + "?")
    assert {k: query[k] for k in ("scope", "response_type", "response_mode", "prompt", "client_id")} == {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": platform.client_id,
    }
    assert query["redirect_uri"] == "http://testserver/lti/launch/"
    assert query["login_hint"] == spec.login_hint
    assert query["lti_message_hint"] == spec.hint
    assert len(query["nonce"]) >= 32 and len(query["state"]) >= 24
    assert login.cookies["lti1p3-" + query["state"]].value == query["state"]


# (case id, spec kwargs, enrolled role, given, family, display, email)
VALID_LAUNCHES = [
    (
        "teacher_several_roles",
        {"roles": [ROLE_INSTRUCTOR, ROLE_INST_FACULTY], "given_name": "Terry", "family_name": "Okafor", "name": "Terry Okafor", "email": "terry@example.org"},
        "teacher", "Terry", "Okafor", "Terry Okafor", "terry@example.org",
    ),
    ("student_full_uri", {"roles": [ROLE_LEARNER], "name": "Ava Nguyen"}, "student", "", "", "Ava Nguyen", ""),
    ("student_short_role", {"roles": ["Learner"]}, "student", "", "", "", ""),
    ("teacher_short_role", {"roles": ["Instructor"]}, "teacher", "", "", "", ""),
    ("teacher_lti11_urn", {"roles": ["urn:lti:role:ims/lis/Instructor"]}, "teacher", "", "", "", ""),
    ("teaching_assistant", {"roles": [ROLE_TA]}, "tutor", "", "", "", ""),
    ("mentor", {"roles": [ROLE_MENTOR]}, "guardian", "", "", "", ""),
    ("unknown_role", {"roles": ["http://example.org/roles#Wizard"]}, "student", "", "", "", ""),
    ("no_role", {"roles": []}, "student", "", "", "", ""),
    ("only_email", {"roles": [ROLE_LEARNER], "email": "only@example.org"}, "student", "", "", "", "only@example.org"),
    ("only_names", {"roles": [ROLE_LEARNER], "given_name": "Ben", "family_name": "Carter"}, "student", "Ben", "Carter", "Ben Carter", ""),
    ("no_personal_data", {"roles": [ROLE_LEARNER]}, "student", "", "", "", ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "role", "given", "family", "display", "email"),
    [case[1:] for case in VALID_LAUNCHES],
    ids=[case[0] for case in VALID_LAUNCHES],
)
def test_valid_launch_provisions_and_lands_in_the_class(
    client: Any,
    platform: LtiPlatform,
    registration: Any,
    kwargs: dict[str, Any],
    role: str,
    given: str,
    family: str,
    display: str,
    email: str,
) -> None:
    spec = platform.launch(sub="person-42", context_id="course-7", context_title="Geometry", **kwargs)
    response = run_launch(client, platform, spec).response
    identity = ExternalIdentity.objects.get(kind="lti", issuer=platform.issuer, subject="person-42")
    user = identity.user
    assert (user.tenant_id, user.first_name, user.last_name, user.display_name, user.email) == (
        registration.tenant_id,
        given,
        family,
        display,
        email,
    )
    klass = ClassKey.objects.get(kind="lti_context", subject=f"{platform.deployment_id}/course-7").klass
    assert klass.title == "Geometry"
    assert list(Enrollment.objects.filter(klass=klass).values_list("user_id", "role", "source")) == [
        (user.pk, role, "lti")
    ]
    assert response.status_code == 302
    assert response["Location"] == reverse("web:class_detail", kwargs={"class_id": klass.pk})
    assert client.session["_auth_user_id"] == str(user.pk)
    assert client.session["lti_launch"]["role"] == role
    assert client.get(response["Location"]).status_code == 200
    assert AuditLog.objects.filter(action="auth.sign_in", actor=user, details__method="lti").count() == 1


def test_same_launch_twice_changes_nothing_the_second_time(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    kwargs = {"sub": "s-1", "roles": [ROLE_LEARNER], "context_id": "c-1", "resource_link_id": "rl-1"}
    assert run_launch(client, platform, platform.launch(**kwargs)).response.status_code == 302
    after_first = _counts()
    assert run_launch(client, platform, platform.launch(**kwargs)).response.status_code == 302
    assert _counts() == after_first == {
        "users": 1, "identities": 1, "classes": 1, "enrollments": 1, "contexts": 1, "links": 1,
    }  # fmt: skip


def test_repeat_launch_sees_what_changed_since_the_last(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    """The read-only path of a repeat launch falls back to the upserts whenever
    anything differs: a roster sync deactivated the enrollment, the LMS renamed the
    course and the person, the identity was last seen long ago."""
    kwargs = {"sub": "s-1", "roles": [ROLE_LEARNER], "context_id": "c-1", "resource_link_id": "rl-1"}
    assert run_launch(client, platform, platform.launch(**kwargs)).response.status_code == 302
    enrollment = Enrollment.objects.get()
    Enrollment.objects.filter(pk=enrollment.pk).update(status=Enrollment.Status.INACTIVE)
    long_ago = timezone.now() - dt.timedelta(hours=2)
    ExternalIdentity.objects.update(last_seen_at=long_ago)
    spec = platform.launch(**kwargs, context_title="Algebra II", given_name="Noa", family_name="Berg")
    assert run_launch(client, platform, spec).response.status_code == 302
    enrollment.refresh_from_db()
    identity = ExternalIdentity.objects.get()
    assert enrollment.status == Enrollment.Status.ACTIVE
    assert Class.objects.get().title == "Algebra II"
    assert (identity.user.first_name, identity.user.last_name) == ("Noa", "Berg")
    assert identity.last_seen_at is not None and identity.last_seen_at > long_ago
    assert _counts() == {
        "users": 1, "identities": 1, "classes": 1, "enrollments": 1, "contexts": 1, "links": 1,
    }  # fmt: skip


def test_deactivated_person_cannot_launch_again(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    kwargs = {"sub": "s-1", "roles": [ROLE_LEARNER], "context_id": "c-1", "resource_link_id": "rl-1"}
    first = run_launch(client, platform, platform.launch(**kwargs)).response
    assert first.status_code == 302
    User.objects.filter(pk=client.session["_auth_user_id"]).update(is_active=False)
    client.logout()
    response = run_launch(client, platform, platform.launch(**kwargs)).response
    assert response.status_code == 403
    assert b"account_inactive" in response.content
    assert "_auth_user_id" not in client.session
    assert AuditLog.objects.filter(action="auth.sign_in").count() == 1


def test_person_sourcedid_links_to_the_roster_person(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    rostered = UserFactory(tenant=registration.tenant, first_name="Ava")
    ExternalIdentity.objects.create(
        tenant=registration.tenant, kind="oneroster", issuer="conn-1", subject="SIS-0042", user=rostered
    )
    spec = platform.launch(sub="lms-77", roles=[ROLE_LEARNER], lis={"person_sourcedid": "SIS-0042"})
    assert run_launch(client, platform, spec).response.status_code == 302
    assert ExternalIdentity.objects.get(kind="lti", subject="lms-77").user_id == rostered.pk
    assert User.objects.filter(tenant=registration.tenant).count() == 1


def test_course_section_sourcedid_joins_the_roster_class(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    rostered = Class.objects.create(tenant=registration.tenant, title="Algebra I (SIS)")
    ClassKey.objects.create(
        tenant=registration.tenant, kind="oneroster", issuer="conn-1", subject="SEC-9", klass=rostered
    )
    spec = platform.launch(
        sub="lms-78",
        roles=[ROLE_LEARNER],
        context_id="canvas-course-1",
        lis={"course_section_sourcedid": "SEC-9"},
    )
    assert run_launch(client, platform, spec).response.status_code == 302
    assert Class.objects.filter(tenant=registration.tenant).count() == 1
    assert set(ClassKey.objects.filter(klass=rostered).values_list("kind", flat=True)) == {
        "oneroster",
        "lti_context",
    }
    assert Enrollment.objects.get(klass=rostered).role == "student"


LTI11_KEY = "consumer-key"
LTI11_SECRET = "lti11-shared-secret"


def _lti11_world(registration: Any, *, key: str = LTI11_KEY, secret: str = LTI11_SECRET) -> tuple[Any, Any]:
    """An LTI 1.1 person and class of ``consumer-key``, and the registration's 1.1 key/secret."""
    registration.lti1p1_consumer_key = key
    registration.lti1p1_shared_secret = secret
    registration.save(update_fields=["lti1p1_consumer_key", "lti1p1_shared_secret", "updated_at"])
    old = UserFactory(tenant=registration.tenant)
    ExternalIdentity.objects.create(
        tenant=registration.tenant, kind="lti", issuer=f"lti1p1:{LTI11_KEY}", subject="u-11", user=old
    )
    old_class = Class.objects.create(tenant=registration.tenant, title="Old 1.1 course")
    ClassKey.objects.create(
        tenant=registration.tenant,
        kind="lti_context",
        issuer=f"lti1p1:{LTI11_KEY}",
        subject="ctx-11",
        klass=old_class,
    )
    return old, old_class


def _lti11_launch(platform: LtiPlatform, **kwargs: Any) -> LaunchSpec:
    return platform.launch(
        sub="new-13",
        roles=[ROLE_INSTRUCTOR],
        context_id="ctx-13",
        lti1p1={"oauth_consumer_key": LTI11_KEY, "user_id": "u-11", "context_id": "ctx-11"},
        **kwargs,
    )


def test_lti11_migration_claim_links_the_lti11_person_and_class(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    old, old_class = _lti11_world(registration)
    spec = _lti11_launch(platform, lti1p1_secret=LTI11_SECRET)
    assert run_launch(client, platform, spec).response.status_code == 302
    assert ExternalIdentity.objects.get(kind="lti", subject="new-13").user_id == old.pk
    assert ClassKey.objects.get(subject=f"{platform.deployment_id}/ctx-13").klass_id == old_class.pk
    assert Class.objects.count() == 1
    assert User.objects.count() == 1


def _other_nonce_sign(payload: dict[str, Any]) -> None:
    """A sign copied from another launch: right secret, another nonce."""
    from lti_tool.protocol import migration

    payload[LTI + "lti1p1"]["oauth_consumer_key_sign"] = migration.consumer_key_sign(
        oauth_consumer_key=LTI11_KEY,
        deployment_id=payload[LTI + "deployment_id"],
        issuer=payload["iss"],
        client_id=payload["aud"],
        exp=payload["exp"],
        nonce="a-nonce-of-another-launch",
        secret=LTI11_SECRET,
    )


@pytest.mark.parametrize(
    ("configured", "spec_kwargs"),
    [
        ({"secret": LTI11_SECRET}, {"lti1p1_secret": "a-guessed-secret"}),
        ({"secret": LTI11_SECRET}, {}),
        ({"secret": LTI11_SECRET}, {"mutate": _other_nonce_sign}),
        ({"secret": ""}, {"lti1p1_secret": LTI11_SECRET}),
        ({"key": "", "secret": ""}, {"lti1p1_secret": LTI11_SECRET}),
        ({"key": "another-consumer", "secret": LTI11_SECRET}, {"lti1p1_secret": LTI11_SECRET}),
    ],
    ids=[
        "wrong-secret",
        "unsigned",
        "sign-of-another-launch",
        "registration-has-no-secret",
        "registration-has-no-1.1-key",
        "claim-names-another-consumer",
    ],
)
def test_unproven_lti11_migration_claim_links_nothing(
    client: Any,
    platform: LtiPlatform,
    registration: Any,
    configured: dict[str, str],
    spec_kwargs: dict[str, Any],
) -> None:
    """Without a verified oauth_consumer_key_sign the launch goes on, as a new LTI 1.3
    person in a new class: the 1.1 person and class are not taken over."""
    old, old_class = _lti11_world(registration, **configured)
    response = run_launch(client, platform, _lti11_launch(platform, **spec_kwargs)).response
    assert response.status_code == 302
    new_identity = ExternalIdentity.objects.get(kind="lti", subject="new-13")
    new_class_id = ClassKey.objects.get(subject=f"{platform.deployment_id}/ctx-13").klass_id
    assert new_identity.user_id != old.pk
    assert new_class_id != old_class.pk
    assert client.session["_auth_user_id"] == str(new_identity.user_id)
    assert list(ExternalIdentity.objects.filter(user=old).values_list("issuer", "subject")) == [
        (f"lti1p1:{LTI11_KEY}", "u-11")
    ]
    assert list(ClassKey.objects.filter(klass=old_class).values_list("issuer", "subject")) == [
        (f"lti1p1:{LTI11_KEY}", "ctx-11")
    ]
    assert not Enrollment.objects.filter(klass=old_class).exists()
    assert not AuditLog.objects.filter(action="identity.link").exists()


def test_lti11_shared_secret_is_stored_encrypted(registration: Any) -> None:
    registration.lti1p1_consumer_key = LTI11_KEY
    registration.lti1p1_shared_secret = LTI11_SECRET
    registration.save()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT lti1p1_shared_secret FROM lti_tool_platformregistration WHERE id = %s",
            [registration.pk.hex if connection.vendor == "sqlite" else registration.pk],
        )
        stored = cursor.fetchone()[0]
    assert LTI11_SECRET not in stored
    registration.refresh_from_db()
    assert registration.lti1p1_shared_secret == LTI11_SECRET


def test_launch_with_a_bound_line_item_makes_the_link_gradable_once(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    from lti_tool.advantage.models import LineItem

    kwargs = {
        "sub": "t-2",
        "roles": [ROLE_INSTRUCTOR],
        "context_id": "c-10",
        "resource_link_id": "rl-10",
        "ags_lineitems": "https://lms.example.org/api/lti/courses/10/line_items",
        "ags_lineitem": "https://lms.example.org/api/lti/courses/10/line_items/7",
    }
    assert run_launch(client, platform, platform.launch(**kwargs)).response.status_code == 302
    assert run_launch(client, platform, platform.launch(**kwargs)).response.status_code == 302
    item = LineItem.objects.get()
    assert (item.url, item.resource_link_id, item.registration_id) == (
        "https://lms.example.org/api/lti/courses/10/line_items/7",
        "rl-10",
        registration.pk,
    )
    assert item.activity.klass_id == Class.objects.get().pk


def test_launch_keeps_ags_nrps_custom_and_extension_claims(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    spec = platform.launch(
        sub="t-1",
        roles=[ROLE_INSTRUCTOR],
        context_id="c-9",
        resource_link_id="rl-9",
        custom={"canvas_course_id": "1234", "hub_target": "booking"},
        ags_lineitems="https://lms.example.org/api/lti/courses/9/line_items",
        ags_lineitem="https://lms.example.org/api/lti/courses/9/line_items/3",
        nrps_url="https://lms.example.org/api/lti/courses/9/names_and_roles",
        extra_claims={"https://canvas.instructure.com/lti/launch_type": "course_navigation"},
    )
    response = run_launch(client, platform, spec).response
    link = ResourceLink.objects.get(resource_link_id="rl-9")
    assert link.custom == {"canvas_course_id": "1234", "hub_target": "booking"}
    assert link.target == ResourceLink.Target.BOOKING
    assert response["Location"] == f"/scheduling/classes/{link.context.klass_id}/book/"
    assert link.extension_claims == {"https://canvas.instructure.com/lti/launch_type": "course_navigation"}
    info = api.resource_link_get(link_id=link.pk, tenant_id=registration.tenant_id)
    assert info.ags == api.AgsEndpoint(
        lineitems_url="https://lms.example.org/api/lti/courses/9/line_items",
        lineitem_url="https://lms.example.org/api/lti/courses/9/line_items/3",
        scopes=(
            "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
            "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
            "https://purl.imsglobal.org/spec/lti-ags/scope/score",
        ),
    )
    assert info.nrps == api.NrpsEndpoint(
        context_memberships_url="https://lms.example.org/api/lti/courses/9/names_and_roles",
        service_versions=("2.0",),
    )
    assert info.class_id == link.context.klass_id
    assert [
        c.id for c in api.contexts_for_class(class_id=info.class_id, tenant_id=registration.tenant_id)
    ] == [link.context_id]


def test_launch_spec_defaults_are_a_valid_student(platform: LtiPlatform) -> None:
    assert LaunchSpec().roles == [ROLE_LEARNER]


def test_repeat_launch_query_count_is_pinned(client: Any, platform: LtiPlatform, registration: Any) -> None:
    """The hot path: a known person relaunching a known link. Cache reads and writes
    are left out of the count: they are SQL on the database cache (dev, tests) and
    Redis commands in production and CI; so are savepoints, which the database cache
    adds around its own writes.

    4 (was 14, then 8, then 5): the registration, the deployment and the link with
    its context are one read; the person and the class with their enrollment another
    (classes.api.person_class_current); none is written when nothing changed
    (last_seen_at/last_launch_at within 5 minutes). Then the sign-in: Django's
    last_login UPDATE and the audit row. The session is on the cache (Django's cache
    engine), not in the database."""
    kwargs = {"sub": "s-1", "roles": [ROLE_LEARNER], "context_id": "c-1", "resource_link_id": "rl-1"}
    assert run_launch(client, platform, platform.launch(**kwargs)).response.status_code == 302
    spec = platform.launch(**kwargs)
    login = client.get("/lti/login/", platform.login_params(spec))
    _action, form = LtiPlatform.parse_form(fetch(login["Location"]).text)
    with CaptureQueriesContext(connection) as captured:
        assert client.post("/lti/launch/", form).status_code == 302
    domain = [
        q["sql"]
        for q in captured.captured_queries
        if "hub_cache" not in q["sql"] and not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    assert [q.split(" ", 3)[:3] for q in domain] == [
        ["SELECT", 'r."created_at",', 'r."updated_at",'],
        ["SELECT", 'i."id",', 'i."created_at",'],
        ["UPDATE", '"accounts_user"', "SET"],
        ["INSERT", "INTO", '"accounts_auditlog"'],
    ], "\n".join(domain)


def test_successful_launch_expires_its_state_cookie(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    result = run_launch(client, platform, platform.launch(roles=[ROLE_LEARNER]))
    name = "lti1p3-" + result.form["state"]
    assert result.response.status_code == 302
    assert result.response.cookies[name]["max-age"] == 0
    assert name not in client.cookies or client.cookies[name].value == ""


def test_framed_session_cookie_attributes_after_launch(
    client: Any, platform: LtiPlatform, registration: Any, settings: Any
) -> None:
    """On loopback (as on https) the session cookie set by a launch is SameSite=None;
    Secure; Partitioned, so it survives in the LMS iframe."""
    settings.PUBLIC_BASE_URL = "http://localhost"
    platform.tool_launch_url = "http://localhost/lti/launch/"
    spec = platform.launch(roles=[ROLE_LEARNER])
    login = client.get(
        "/lti/login/",
        platform.login_params(spec, target_link_uri="http://localhost/lti/launch/"),
        HTTP_HOST="localhost",
    )
    state_cookie = login.cookies[next(name for name in login.cookies if name.startswith("lti1p3-"))]
    assert (state_cookie["samesite"], state_cookie["secure"]) == ("None; Partitioned", True)
    _action, form = LtiPlatform.parse_form(fetch(login["Location"]).text)
    response = client.post("/lti/launch/", form, HTTP_HOST="localhost")
    assert response.status_code == 302
    session_cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert (session_cookie["samesite"], session_cookie["secure"]) == ("None; Partitioned", True)
    assert "SameSite=None; Partitioned" in session_cookie.OutputString()


def test_first_launch_reads_the_unknown_link_once_before_creating_it(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    """The launch's first read (registration, deployment, link) already says the link
    is new; provisioning does not look it up again before creating it."""
    spec = platform.launch(sub="s-9", roles=[ROLE_LEARNER], context_id="c-9", resource_link_id="rl-new")
    login = client.get("/lti/login/", platform.login_params(spec))
    _action, form = LtiPlatform.parse_form(fetch(login["Location"]).text)
    with CaptureQueriesContext(connection) as captured:
        assert client.post("/lti/launch/", form).status_code == 302
    link_reads = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith("SELECT") and 'FROM "lti_tool_resourcelink"' in q["sql"]
    ]
    # _seen's read-then-update_or_create of the new row; none before it.
    assert len(link_reads) == 2, "\n".join(link_reads)
    assert (
        ResourceLink.objects.get(resource_link_id="rl-new").deployment.deployment_id == platform.deployment_id
    )
