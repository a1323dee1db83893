"""The commit's database work, pinned (issue 14: batched commits made cheap): one
transaction holding the attempt's row lock, and in it one read and one UPDATE of the
changed columns; a commit that changes the outcome adds the progress result's
writes. On PostgreSQL only the attempt row is locked (FOR UPDATE OF), so learners
of the same course never wait for each other's commits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from scorm import content
from scorm.models import ScormAttempt
from scorm.player_services import activity_for_class, attempt_for_launch
from tests.conftest import Personas
from tests.factories import EnrollmentFactory, UserFactory
from tests.scorm.isolation import make_package
from tutoring_core.accounts.models import Role
from tutoring_core.progress.models import Result

pytestmark = pytest.mark.django_db

CONTENT = "http://127.0.0.2:8001"


@pytest.fixture
def attempt(personas: Personas, settings: Any) -> ScormAttempt:
    settings.PUBLIC_BASE_URL = "http://testserver"
    settings.SCORM_CONTENT_ORIGIN = CONTENT
    package = make_package(personas.tenant)
    for _ in range(30):  # a full class: the outcome check must not read the class list
        EnrollmentFactory(klass=personas.klass, user=UserFactory(tenant=personas.tenant), role=Role.STUDENT)
    learner = UserFactory(tenant=personas.tenant)
    EnrollmentFactory(klass=personas.klass, user=learner, role=Role.STUDENT)
    activity = activity_for_class(tenant=personas.tenant, class_id=personas.klass.pk, package=package)
    return attempt_for_launch(activity=activity, sco=package.scos.get(), learner=learner)


def _commit(client: Any, attempt: ScormAttempt, sequence: int, cmi: dict[str, str]) -> list[str]:
    body = {
        "token": content.commit_token(attempt_id=attempt.pk),
        "session": "sitting",
        "sequence": sequence,
        "cmi": cmi,
    }
    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            reverse("scorm:commit"), json.dumps(body), content_type="application/json", HTTP_ORIGIN=CONTENT
        )
    assert response.status_code == 200, response.content
    # The test's own transaction turns the commit's BEGIN/COMMIT into a savepoint pair.
    sql = [query["sql"] for query in captured.captured_queries]
    assert sql[0].startswith("SAVEPOINT") and sql[-1].startswith("RELEASE SAVEPOINT")
    return [statement for statement in sql if "SAVEPOINT" not in statement]


def test_a_commit_is_one_locked_read_and_one_update_of_what_changed(
    client: Any, attempt: ScormAttempt
) -> None:
    _commit(client, attempt, 0, {"cmi.core.lesson_status": "incomplete"})  # records "incomplete"
    statements = _commit(
        client,
        attempt,
        1,
        {
            "cmi.core.lesson_location": "p2",
            "cmi.suspend_data": "x" * 2048,
            "cmi.core.session_time": "00:01:00",
        },
    )
    assert len(statements) == 2
    read, update = statements
    assert read.startswith('SELECT "scorm_scormattempt"."created_at"')
    if connection.vendor == "postgresql":
        assert read.endswith('FOR UPDATE OF "scorm_scormattempt"')
    assert update.startswith('UPDATE "scorm_scormattempt" SET "updated_at" = ')
    columns = update.split(" WHERE ")[0]
    for unchanged in (
        '"completion"',
        '"success"',
        '"score"',
        '"state"',
        '"recorded"',
        '"tenant_id"',
        '"learner_id"',
    ):
        assert unchanged not in columns
    attempt.refresh_from_db()
    assert (attempt.commits, attempt.last_sequence, attempt.cmi["cmi.core.lesson_location"]) == (2, 1, "p2")


def test_a_commit_that_changes_the_outcome_records_it_in_the_same_transaction(
    client: Any, attempt: ScormAttempt
) -> None:
    _commit(client, attempt, 0, {"cmi.core.lesson_status": "incomplete"})
    statements = _commit(client, attempt, 1, {"cmi.core.lesson_status": "passed", "cmi.core.score.raw": "85"})
    # The attempt (locked), the learner's roles in the class, then progress.result_record:
    # the activity (locked), the student check, the result, its destinations (none
    # here: no LMS column), and the attempt's UPDATE.
    assert len(statements) == 7
    assert statements[1].startswith('SELECT "classes_enrollment"."role"')
    assert statements[4].startswith('INSERT INTO "progress_result"')
    assert statements[-1].startswith('UPDATE "scorm_scormattempt"')
    assert list(
        Result.objects.filter(user=attempt.learner)
        .values_list("score_given", flat=True)
        .order_by("recorded_at")
    ) == [
        None,
        85,
    ]
