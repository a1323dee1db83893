"""The player's pages and its commit endpoint, request by request (no browser):
who may open the player and the attempts page, the commit endpoint's refusals
(token, sequence, finished attempt, bad CMI data, origin) and the attempts policy."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.urls import reverse

from scorm import content
from scorm.models import ScormActivity, ScormAttempt, ScormPackage
from scorm.player_services import activity_for_class, activity_key, attempt_for_launch
from tests.conftest import Personas
from tests.factories import ClassFactory, EnrollmentFactory, UserFactory, district_admin
from tests.scorm.isolation import make_package
from tutoring_core.accounts.models import AuditLog, Role, User
from tutoring_core.progress.models import Activity, Result

pytestmark = pytest.mark.django_db

CONTENT = "http://127.0.0.2:8001"


@pytest.fixture(autouse=True)
def origins(settings: Any) -> None:
    settings.PUBLIC_BASE_URL = "http://testserver"
    settings.SCORM_CONTENT_ORIGIN = CONTENT


@pytest.fixture
def student(personas: Personas) -> User:
    learner = UserFactory(tenant=personas.tenant, username="ann", first_name="Ann", last_name="Lee")
    EnrollmentFactory(klass=personas.klass, user=learner, role=Role.STUDENT)
    return learner


@pytest.fixture
def package(personas: Personas) -> ScormPackage:
    return make_package(personas.tenant)


def _attempt(personas: Personas, package: ScormPackage, learner: User) -> ScormAttempt:
    activity = activity_for_class(tenant=personas.tenant, class_id=personas.klass.pk, package=package)
    return attempt_for_launch(activity=activity, sco=package.scos.get(), learner=learner)


def _commit(client: Any, body: dict[str, Any], *, origin: str | None = CONTENT) -> Any:
    extra = {"HTTP_ORIGIN": origin} if origin else {}
    return client.post(reverse("scorm:commit"), json.dumps(body), content_type="application/json", **extra)


def _body(attempt: ScormAttempt, cmi: dict[str, Any], *, sequence: int = 0, **more: Any) -> dict[str, Any]:
    return {
        "token": content.commit_token(attempt_id=attempt.pk),
        "session": "sitting-1",
        "sequence": sequence,
        "cmi": cmi,
        **more,
    }


# --- the commit endpoint ------------------------------------------------------------


def test_a_commit_is_stored_and_the_result_worked_out(
    client: Any, personas: Personas, package: ScormPackage, student: User
) -> None:
    attempt = _attempt(personas, package, student)
    response = _commit(
        client,
        _body(
            attempt,
            {
                "cmi.core.lesson_status": "passed",
                "cmi.core.score.raw": "85",
                "cmi.core.lesson_location": "p3",
            },
        ),
    )
    assert response.status_code == 200
    assert response.json() == {
        "result": True,
        "errorCode": 0,
        "applied": True,
        "state": "open",
        "completion": "completed",
        "success": "passed",
        "score": "85.00",
    }
    attempt.refresh_from_db()
    assert attempt.cmi == {
        "cmi.core.lesson_status": "passed",
        "cmi.core.score.raw": "85",
        "cmi.core.lesson_location": "p3",
    }
    assert (attempt.commits, attempt.last_sequence, attempt.session_key) == (1, 0, "sitting-1")
    # A student of the class: recorded in progress under the package's activity key.
    activity = Activity.objects.get(key=activity_key(class_id=personas.klass.pk, package_id=package.pk))
    result = Result.objects.get(activity=activity, user=student)
    assert result.score_given == Decimal("85.00")


def test_a_bad_token_is_refused_and_changes_nothing(
    client: Any, personas: Personas, package: ScormPackage, student: User
) -> None:
    attempt = _attempt(personas, package, student)
    body = _body(attempt, {"cmi.core.lesson_location": "p3"})
    for token in ("", "not-a-token", content.player_token(attempt_id=attempt.pk), body["token"][:-2] + "xx"):
        response = _commit(client, {**body, "token": token})
        assert response.status_code == 403
        assert response.json() == {
            "result": False,
            "error": "The player's link has expired; reopen the activity to keep going.",
        }
    attempt.refresh_from_db()
    assert (attempt.cmi, attempt.commits) == ({}, 0)


def test_an_expired_token_is_refused(
    client: Any, personas: Personas, package: ScormPackage, student: User, settings: Any
) -> None:
    attempt = _attempt(personas, package, student)
    with time_machine.travel(dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC), tick=False) as clock:
        body = _body(attempt, {"cmi.core.lesson_location": "p3"})
        clock.shift(dt.timedelta(seconds=settings.SCORM_COMMIT_TOKEN_TTL - 1))
        assert _commit(client, body).status_code == 200
        clock.shift(dt.timedelta(seconds=2))
        late = _commit(client, {**body, "sequence": 1, "cmi": {"cmi.core.lesson_location": "p4"}})
    assert late.status_code == 403
    attempt.refresh_from_db()
    assert attempt.cmi == {"cmi.core.lesson_location": "p3"}


def test_a_stale_sequence_is_ignored(
    client: Any, personas: Personas, package: ScormPackage, student: User
) -> None:
    attempt = _attempt(personas, package, student)
    assert _commit(client, _body(attempt, {"cmi.core.lesson_location": "p5"}, sequence=5)).status_code == 200
    for stale in (5, 4, 0):
        response = _commit(client, _body(attempt, {"cmi.core.lesson_location": "p1"}, sequence=stale))
        assert response.status_code == 200
        assert response.json()["applied"] is False
    attempt.refresh_from_db()
    assert (attempt.cmi, attempt.commits, attempt.last_sequence) == ({"cmi.core.lesson_location": "p5"}, 1, 5)
    # A new sitting of the runtime numbers its commits from 0 again.
    fresh = _commit(client, _body(attempt, {"cmi.core.lesson_location": "p6"}, session="sitting-2"))
    assert fresh.json()["applied"] is True
    attempt.refresh_from_db()
    assert (attempt.cmi, attempt.last_sequence, attempt.session_key) == (
        {"cmi.core.lesson_location": "p6"},
        0,
        "sitting-2",
    )


def test_a_finished_attempt_refuses_commits(
    client: Any, personas: Personas, package: ScormPackage, student: User
) -> None:
    attempt = _attempt(personas, package, student)
    done = _commit(client, _body(attempt, {"cmi.core.lesson_status": "completed"}, terminate=True))
    assert done.json()["state"] == "finished"
    again = _commit(client, _body(attempt, {"cmi.core.lesson_location": "p9"}, sequence=1))
    assert again.status_code == 409
    assert again.json() == {
        "result": False,
        "error": "This attempt is finished; open the activity again to start a new one.",
        "errors": [],
    }
    attempt.refresh_from_db()
    assert attempt.cmi == {"cmi.core.lesson_status": "completed"}


def test_an_invalid_element_is_refused_by_name_and_nothing_is_kept(
    client: Any, personas: Personas, package: ScormPackage, student: User
) -> None:
    attempt = _attempt(personas, package, student)
    assert _commit(client, _body(attempt, {"cmi.core.lesson_location": "p1"})).status_code == 200
    response = _commit(
        client,
        _body(
            attempt,
            {
                "cmi.core.lesson_location": "p2",
                "cmi.core.lesson_status": "brilliant",
                "cmi.core.favourite_colour": "blue",
            },
            sequence=1,
        ),
    )
    assert response.status_code == 400
    payload = response.json()
    assert payload["result"] is False
    assert [element for element, _reason in payload["errors"]] == [
        "cmi.core.lesson_status",
        "cmi.core.favourite_colour",
    ]
    assert payload["errors"][1] == [
        "cmi.core.favourite_colour",
        "is not an element of the SCORM 1.2 data model",
    ]
    assert payload["error"].startswith("The course sent data the SCORM 1.2 data model does not allow: ")
    assert "cmi.core.lesson_status" in payload["error"]
    attempt.refresh_from_db()
    assert (attempt.cmi, attempt.commits, attempt.last_sequence) == ({"cmi.core.lesson_location": "p1"}, 1, 0)


def test_malformed_commits_get_a_reason(
    client: Any, personas: Personas, package: ScormPackage, student: User
) -> None:
    attempt = _attempt(personas, package, student)
    url = reverse("scorm:commit")
    not_json = client.post(url, "{", content_type="application/json", HTTP_ORIGIN=CONTENT)
    assert (not_json.status_code, not_json.json()["error"]) == (400, "The commit is not JSON.")
    listed = client.post(url, "[1]", content_type="application/json", HTTP_ORIGIN=CONTENT)
    assert (listed.status_code, listed.json()["error"]) == (400, "The commit is not a JSON object.")
    bad_sequence = _commit(client, {**_body(attempt, {}), "sequence": "7"})
    assert (bad_sequence.status_code, bad_sequence.json()["error"]) == (
        400,
        "sequence must be a whole number.",
    )
    no_cmi = _commit(client, {**_body(attempt, {}), "cmi": "x"})
    assert (no_cmi.status_code, no_cmi.json()["error"]) == (400, "The commit carries no CMI data.")
    no_session = _commit(client, {**_body(attempt, {}), "session": ""})
    assert (no_session.status_code, no_session.json()["error"]) == (
        400,
        "The commit names no runtime session.",
    )
    get = client.get(url)
    assert get.status_code == 405
    attempt.refresh_from_db()
    assert attempt.commits == 0


def test_cors_is_for_the_content_origin_only_and_never_with_credentials(
    client: Any, personas: Personas, package: ScormPackage, student: User
) -> None:
    attempt = _attempt(personas, package, student)
    url = reverse("scorm:commit")
    preflight = client.options(url, HTTP_ORIGIN=CONTENT, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == CONTENT
    assert preflight["Access-Control-Allow-Methods"] == "POST"
    assert preflight["Access-Control-Allow-Headers"] == "Content-Type"
    assert "Access-Control-Allow-Credentials" not in preflight
    # Another origin is never allowed to read, nor to commit.
    foreign = _commit(
        client, _body(attempt, {"cmi.core.lesson_location": "p1"}), origin="https://evil.example"
    )
    assert foreign.status_code == 403
    assert foreign.json()["error"] == "Commits come from the course player only."
    assert foreign["Access-Control-Allow-Origin"] == CONTENT
    ok = _commit(client, _body(attempt, {"cmi.core.lesson_location": "p1"}))
    assert ok["Access-Control-Allow-Origin"] == CONTENT
    assert "Access-Control-Allow-Credentials" not in ok
    # Nothing the commit answers sets a cookie: the token is the only authority.
    assert not ok.cookies
    attempt.refresh_from_db()
    assert attempt.cmi == {"cmi.core.lesson_location": "p1"}


# --- the player and attempts pages, three personas ------------------------------------


def test_player_page_personas(client: Any, personas: Personas, package: ScormPackage, student: User) -> None:
    url = reverse("scorm:play", kwargs={"class_id": personas.klass.pk, "package_id": package.pk})
    # The owner (the class's teacher) may try the course out; the student plays it.
    for person in (personas.owner, student):
        client.force_login(person)
        response = client.get(url)
        assert response.status_code == 200
        text = response.content.decode()
        assert f'src="{CONTENT}/p/' in text
        attempt = ScormAttempt.objects.get(learner=person)
        assert (attempt.number, attempt.state, attempt.activity.klass_id) == (1, "open", personas.klass.pk)
    # Someone of the tenant who is not in the class.
    client.force_login(personas.same_tenant_other)
    assert client.get(url).status_code == 403
    # A district admin of another tenant: nothing there at all.
    client.force_login(personas.other_tenant)
    assert client.get(url).status_code == 404
    assert not ScormAttempt.objects.filter(
        learner__in=[personas.same_tenant_other, personas.other_tenant]
    ).exists()
    # Another tenant's package in this tenant's class is not found either.
    client.force_login(personas.owner)
    foreign = make_package(personas.other_tenant_obj)
    other = reverse("scorm:play", kwargs={"class_id": personas.klass.pk, "package_id": foreign.pk})
    assert client.get(other).status_code == 404


def test_attempts_page_personas(
    client: Any, personas: Personas, package: ScormPackage, student: User
) -> None:
    classmate = UserFactory(tenant=personas.tenant, username="bo", first_name="Bo", last_name="Diaz")
    EnrollmentFactory(klass=personas.klass, user=classmate, role=Role.STUDENT)
    mine = _attempt(personas, package, student)
    theirs = _attempt(personas, package, classmate)
    url = reverse("scorm:class_attempts", kwargs={"class_id": personas.klass.pk})

    client.force_login(personas.owner)
    teacher_view = client.get(url)
    assert teacher_view.status_code == 200
    text = teacher_view.content.decode()
    assert f'data-attempt="{mine.pk}"' in text and f'data-attempt="{theirs.pk}"' in text

    client.force_login(student)
    student_view = client.get(url)
    assert student_view.status_code == 200
    text = student_view.content.decode()
    assert f'data-attempt="{mine.pk}"' in text
    assert f'data-attempt="{theirs.pk}"' not in text
    assert "My SCORM attempts" in text

    admin = district_admin(personas.tenant, username="north-admin")
    client.force_login(admin)
    assert client.get(url).status_code == 200

    client.force_login(personas.same_tenant_other)
    assert client.get(url).status_code == 403
    client.force_login(personas.other_tenant)
    assert client.get(url).status_code == 404


def test_attempts_policy_refuses_a_new_attempt_with_the_reason(
    client: Any, personas: Personas, package: ScormPackage, student: User
) -> None:
    activity = activity_for_class(tenant=personas.tenant, class_id=personas.klass.pk, package=package)
    ScormActivity.objects.filter(pk=activity.pk).update(max_attempts=1)
    url = reverse("scorm:play", kwargs={"class_id": personas.klass.pk, "package_id": package.pk})
    client.force_login(student)
    assert client.get(url).status_code == 200
    first = ScormAttempt.objects.get(learner=student)
    # Reopening an unfinished attempt resumes it: no new attempt is used up.
    assert client.get(url).status_code == 200
    assert ScormAttempt.objects.filter(learner=student).count() == 1
    _commit(client, _body(first, {"cmi.core.lesson_status": "failed"}, terminate=True))
    first.refresh_from_db()
    assert first.state == "finished"
    refused = client.get(url)
    assert refused.status_code == 409
    assert (
        "You have used all 1 attempts at this activity; your teacher can allow more."
        in refused.content.decode()
    )
    assert ScormAttempt.objects.filter(learner=student).count() == 1
    # The teacher allows one more.
    ScormActivity.objects.filter(pk=activity.pk).update(max_attempts=2)
    assert client.get(url).status_code == 200
    assert list(ScormAttempt.objects.filter(learner=student).values_list("number", "state")) == [
        (1, "finished"),
        (2, "open"),
    ]


def test_unknown_ids_are_404(client: Any, personas: Personas, student: User) -> None:
    client.force_login(student)
    url = reverse("scorm:play", kwargs={"class_id": personas.klass.pk, "package_id": uuid.uuid4()})
    assert client.get(url).status_code == 404
    url = reverse("scorm:class_attempts", kwargs={"class_id": uuid.uuid4()})
    assert client.get(url).status_code == 404


def _policy(client: Any, personas: Personas, **data: Any) -> Any:
    url = reverse("scorm:class_attempts", kwargs={"class_id": personas.klass.pk})
    return client.post(url, data)


def test_a_teacher_sets_the_attempts_policy_on_the_attempts_page(
    client: Any, personas: Personas, package: ScormPackage
) -> None:
    activity = activity_for_class(tenant=personas.tenant, class_id=personas.klass.pk, package=package)
    client.force_login(personas.owner)
    page = client.get(reverse("scorm:class_attempts", kwargs={"class_id": personas.klass.pk}))
    assert f'<input type="hidden" name="activity" value="{activity.pk}">' in page.content.decode()
    response = _policy(client, personas, activity=activity.pk, max_attempts="2")
    assert response.status_code == 302
    activity.refresh_from_db()
    assert activity.max_attempts == 2
    entry = AuditLog.objects.get(action="scorm.attempts_policy")
    assert (entry.actor_id, entry.target_id, entry.details) == (
        personas.owner.pk,
        str(activity.pk),
        {"max_attempts": 2, "was": 0},
    )
    # The same number again changes nothing and writes no audit row.
    assert _policy(client, personas, activity=activity.pk, max_attempts="2").status_code == 302
    assert AuditLog.objects.filter(action="scorm.attempts_policy").count() == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"activity": None, "max_attempts": "2"}, "Choose a course placed in this class."),
        ({"activity": "not-a-uuid", "max_attempts": "2"}, "Choose a course placed in this class."),
        ({"activity": str(uuid.uuid4()), "max_attempts": "2"}, "Choose a course placed in this class."),
        ({"max_attempts": "-1"}, "Attempts allowed must be a whole number from 0 (no limit) to 100."),
        ({"max_attempts": "1.5"}, "Attempts allowed must be a whole number from 0 (no limit) to 100."),
        ({"max_attempts": ""}, "Attempts allowed must be a whole number from 0 (no limit) to 100."),
        ({"max_attempts": "101"}, "Attempts allowed must be a whole number from 0 (no limit) to 100."),
    ],
)
def test_a_bad_attempts_policy_is_refused_with_the_reason_and_changes_nothing(
    client: Any, personas: Personas, package: ScormPackage, data: dict[str, str | None], reason: str
) -> None:
    activity = activity_for_class(tenant=personas.tenant, class_id=personas.klass.pk, package=package)
    client.force_login(personas.owner)
    payload = {
        key: value for key, value in {"activity": str(activity.pk), **data}.items() if value is not None
    }
    response = _policy(client, personas, **payload)
    assert response.status_code == 400
    assert f'<p class="errors" id="policy-error" role="alert">{reason}</p>' in response.content.decode()
    activity.refresh_from_db()
    assert activity.max_attempts == 0
    assert not AuditLog.objects.filter(action="scorm.attempts_policy").exists()


def test_only_the_class_staff_set_the_attempts_policy(
    client: Any, personas: Personas, package: ScormPackage, student: User
) -> None:
    activity = activity_for_class(tenant=personas.tenant, class_id=personas.klass.pk, package=package)
    other_class = ClassFactory(tenant=personas.tenant)
    elsewhere = activity_for_class(tenant=personas.tenant, class_id=other_class.pk, package=package)
    client.force_login(student)
    assert _policy(client, personas, activity=activity.pk, max_attempts="1").status_code == 403
    client.force_login(personas.same_tenant_other)
    assert _policy(client, personas, activity=activity.pk, max_attempts="1").status_code == 403
    client.force_login(personas.other_tenant)
    assert _policy(client, personas, activity=activity.pk, max_attempts="1").status_code == 404
    # A teacher of this class cannot reach another class's course through it.
    client.force_login(personas.owner)
    assert _policy(client, personas, activity=elsewhere.pk, max_attempts="1").status_code == 400
    assert list(
        ScormActivity.objects.filter(pk__in=[activity.pk, elsewhere.pk]).values_list(
            "max_attempts", flat=True
        )
    ) == [0, 0]
    assert (
        client.put(reverse("scorm:class_attempts", kwargs={"class_id": personas.klass.pk})).status_code == 405
    )
