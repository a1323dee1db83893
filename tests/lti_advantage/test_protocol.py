"""AGS/NRPS shapes, Link paging and retry rules: no database, no network."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lti_tool.advantage.protocol import media
from lti_tool.advantage.protocol.ags import (
    Score,
    lineitem_payload,
    parse_lineitem,
    parse_lineitem_container,
    parse_result_container,
    results_url,
    score_payload,
    scores_url,
)
from lti_tool.advantage.protocol.errors import ProtocolError
from lti_tool.advantage.protocol.nrps import hub_role, parse_membership_container
from lti_tool.advantage.protocol.paging import next_page_url, parse_link_header
from lti_tool.advantage.protocol.retry import backoff_seconds, is_rate_limited, is_transient
from lti_tool.advantage.protocol.tokens import client_assertion, parse_token_response, token_request_form

WHEN = dt.datetime(2026, 3, 1, 8, 5, 0, 120000, tzinfo=dt.timezone(dt.timedelta(hours=-6)))


# --- paging ---------------------------------------------------------------------------


def test_next_link_keeps_the_urls_case() -> None:
    header = (
        '<https://LMS.example.edu/API/Courses/AbC/Members?Page=2&Token=XyZ>; rel="next", '
        '<https://LMS.example.edu/API/Courses/AbC/Members?Page=9&Token=XyZ>; rel="last"'
    )
    assert next_page_url(header) == "https://LMS.example.edu/API/Courses/AbC/Members?Page=2&Token=XyZ"
    assert parse_link_header(header)["last"].endswith("Page=9&Token=XyZ")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("<https://a.test/X?P=2>; REL=NEXT", "https://a.test/X?P=2"),
        ('<https://a.test/X?P=2>; title="a, b; c"; rel="next last"', "https://a.test/X?P=2"),
        (
            '<https://a.test/Diff?S=1>; rel="differences", <https://a.test/Next?S=2>;rel=next',
            "https://a.test/Next?S=2",
        ),
        ('<https://a.test/P1>; rel="prev"', None),
        ("", None),
        (None, None),
        ("garbage without brackets; rel=next", None),
    ],
)
def test_link_header_variants(header: str | None, expected: str | None) -> None:
    assert next_page_url(header) == expected


def test_only_the_first_rel_parameter_counts() -> None:
    assert parse_link_header('<https://a.test/A>; rel="prev"; rel="next"') == {"prev": "https://a.test/A"}


# --- retries --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "timed_out", "transient"),
    [
        (None, "", False, True),
        (200, "", True, True),
        (500, "", False, True),
        (503, "", False, True),
        (429, "", False, True),
        (403, "403 Forbidden (Rate Limit Exceeded)", False, True),
        (403, "user not authorized", False, False),
        (400, "bad score", False, False),
        (404, "", False, False),
        (422, "", False, False),
    ],
)
def test_transient_classification(status: int | None, body: str, timed_out: bool, transient: bool) -> None:
    assert is_transient(status, body, timed_out=timed_out) is transient


def test_canvas_throttle_counts_as_rate_limited() -> None:
    assert is_rate_limited(403, "403 Forbidden (Rate Limit Exceeded)")
    assert not is_rate_limited(403, "Forbidden")


def test_backoff_grows_is_capped_jittered_and_honours_retry_after() -> None:
    rng = random.Random(3)
    delays = [backoff_seconds(n, base=2.0, cap=60.0, rng=rng) for n in (1, 2, 3, 4, 10)]
    assert 1.0 <= delays[0] <= 2.0
    assert 2.0 <= delays[1] <= 4.0
    assert 4.0 <= delays[2] <= 8.0
    assert 8.0 <= delays[3] <= 16.0
    assert 30.0 <= delays[4] <= 60.0
    assert backoff_seconds(1, base=2.0, cap=60.0, retry_after=45.0, rng=rng) == 45.0
    spread = {round(backoff_seconds(5, base=2.0, cap=600.0, rng=rng), 6) for _ in range(20)}
    assert len(spread) == 20  # jitter: workers do not retry in lockstep


# --- scores and line items ------------------------------------------------------------


def test_score_payload_shape() -> None:
    body = score_payload(
        Score(
            user_id="Sub-1",
            timestamp=WHEN,
            activity_progress="Completed",
            grading_progress="FullyGraded",
            score_given=Decimal("8.5000"),
            score_maximum=Decimal("10.0000"),
            comment="Nice",
        )
    )
    assert body == {
        "userId": "Sub-1",
        "timestamp": "2026-03-01T14:05:00.120000Z",
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "scoreGiven": 8.5,
        "scoreMaximum": 10,
        "comment": "Nice",
    }


def test_score_without_a_grade_omits_score_fields() -> None:
    body = score_payload(
        Score(user_id="u", timestamp=WHEN, activity_progress="Started", grading_progress="NotReady")
    )
    assert body == {
        "userId": "u",
        "timestamp": "2026-03-01T14:05:00.120000Z",
        "activityProgress": "Started",
        "gradingProgress": "NotReady",
    }


@pytest.mark.parametrize(
    ("score", "message"),
    [
        (
            Score(user_id="", timestamp=WHEN, activity_progress="Completed", grading_progress="FullyGraded"),
            "userId",
        ),
        (
            Score(user_id="u", timestamp=WHEN, activity_progress="Done", grading_progress="FullyGraded"),
            "activityProgress",
        ),
        (
            Score(user_id="u", timestamp=WHEN, activity_progress="Completed", grading_progress="Graded"),
            "gradingProgress",
        ),
        (
            Score(
                user_id="u",
                timestamp=WHEN,
                activity_progress="Completed",
                grading_progress="FullyGraded",
                score_given=Decimal(1),
            ),
            "scoreMaximum",
        ),
        (
            Score(
                user_id="u",
                timestamp=WHEN.replace(tzinfo=None),
                activity_progress="Completed",
                grading_progress="FullyGraded",
            ),
            "timezone-aware",
        ),
    ],
)
def test_bad_scores_are_refused_with_the_field_named(score: Score, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        score_payload(score)


def test_lineitem_payload_and_parse() -> None:
    assert lineitem_payload(
        label=" Quiz ", score_maximum=Decimal("20.0000"), resource_id="r1", tag="grade"
    ) == {
        "label": "Quiz",
        "scoreMaximum": 20,
        "resourceId": "r1",
        "tag": "grade",
    }
    item = parse_lineitem(
        {"id": "https://lms.test/LI/1", "label": "Quiz", "scoreMaximum": 20, "resourceLinkId": "rl"}
    )
    assert (item.id, item.label, item.score_maximum, item.resource_link_id) == (
        "https://lms.test/LI/1",
        "Quiz",
        Decimal(20),
        "rl",
    )
    with pytest.raises(ProtocolError, match="positive scoreMaximum"):
        parse_lineitem({"id": "https://lms.test/LI/1", "label": "Quiz", "scoreMaximum": 0})
    with pytest.raises(ProtocolError, match="JSON array"):
        parse_lineitem_container({"id": "x"})


def test_results_parse() -> None:
    records = parse_result_container(
        [{"userId": "u1", "resultScore": 7, "resultMaximum": 10, "comment": "ok"}, {"userId": "u2"}]
    )
    assert [(r.user_id, r.result_score, r.result_maximum, r.comment) for r in records] == [
        ("u1", Decimal(7), Decimal(10), "ok"),
        ("u2", None, None, ""),
    ]


def test_service_urls_append_to_the_path_not_the_query() -> None:
    assert (
        scores_url("https://lms.test/Ctx/LineItems/7?type_id=A")
        == "https://lms.test/Ctx/LineItems/7/scores?type_id=A"
    )
    assert results_url("https://lms.test/Ctx/LineItems/7/") == "https://lms.test/Ctx/LineItems/7/results"


# --- NRPS -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"], "student"),
        (["Learner"], "student"),
        (["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor", "Learner"], "teacher"),
        (["http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"], "tutor"),
        (["http://purl.imsglobal.org/vocab/lis/v2/institution/person#Staff"], None),
        ([], None),
    ],
)
def test_roles_map_to_hub_roles(roles: list[str], expected: str | None) -> None:
    assert hub_role(roles) == expected


def test_membership_container_parse_and_errors() -> None:
    page = parse_membership_container(
        {
            "id": "https://lms.test/m",
            "context": {"id": "Ctx"},
            "members": [
                {"user_id": "U1", "roles": ["Learner"], "name": "Ana Diaz", "email": "ana@x.test"},
                {"user_id": "U2", "roles": ["Instructor"], "status": "Inactive"},
            ],
        }
    )
    assert page.context_id == "Ctx"
    assert [(m.user_id, m.status, m.name) for m in page.members] == [
        ("U1", "Active", "Ana Diaz"),
        ("U2", "Inactive", ""),
    ]
    with pytest.raises(ProtocolError, match="user_id"):
        parse_membership_container({"members": [{"roles": []}]})
    with pytest.raises(ProtocolError, match="unknown status"):
        parse_membership_container({"members": [{"user_id": "U", "roles": [], "status": "Gone"}]})


# --- tokens ---------------------------------------------------------------------------


def test_client_assertion_is_a_signed_rs256_jwt_naming_the_tool() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    token = client_assertion(
        client_id="c1", audience="https://lms.test/token", private_key_pem=pem, key_id="k1", now=1_700_000_000
    )
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(
        token,
        key.public_key(),
        algorithms=["RS256"],
        audience="https://lms.test/token",
        options={"verify_exp": False},
    )
    assert header == {"alg": "RS256", "kid": "k1", "typ": "JWT"}
    assert {k: claims[k] for k in ("iss", "sub", "aud", "iat", "exp")} == {
        "iss": "c1",
        "sub": "c1",
        "aud": "https://lms.test/token",
        "iat": 1_700_000_000,
        "exp": 1_700_000_300,
    }
    other = client_assertion(client_id="c1", audience="a", private_key_pem=pem, key_id="k1")
    assert jwt.decode(other, options={"verify_signature": False})["jti"] != claims["jti"]
    assert token_request_form(
        assertion="A", scopes=[media.SCOPE_SCORE, media.SCOPE_LINEITEM, media.SCOPE_SCORE]
    ) == {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": "A",
        "scope": f"{media.SCOPE_LINEITEM} {media.SCOPE_SCORE}",
    }


def test_token_response_parse() -> None:
    token = parse_token_response(
        {"access_token": "abc", "token_type": "Bearer", "expires_in": 3599, "scope": "s"}
    )
    assert (token.value, token.expires_in, token.scope) == ("abc", 3599, "s")
    with pytest.raises(ProtocolError, match="not Bearer"):
        parse_token_response({"access_token": "abc", "token_type": "mac"})
    with pytest.raises(ProtocolError, match="expires_in"):
        parse_token_response({"access_token": "abc", "token_type": "bearer", "expires_in": 0})
    with pytest.raises(ProtocolError, match="access_token"):
        parse_token_response({"error": "invalid_client"})
