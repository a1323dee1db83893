"""CMI data model rules (scorm/protocol/cmi.py): no Django, no database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scorm.protocol import cmi

V12 = "1.2"
V2004 = "2004 3rd Edition"


def test_12_commit_keeps_writable_values_and_drops_read_only_ones() -> None:
    accepted = cmi.validate_commit(
        V12,
        {
            "cmi.core.student_id": "someone-else",  # read-only: the server's own
            "cmi.core._children": "student_id,student_name",
            "cmi.interactions._count": "1",
            "cmi.core.lesson_status": "incomplete",
            "cmi.core.lesson_location": "3",
            "cmi.core.score.raw": "",
            "cmi.core.session_time": "0000:01:02.50",
            "cmi.suspend_data": "x" * 4096,
            "cmi.interactions.0.id": "q1",
            "cmi.interactions.0.result": "wrong",
            "cmi.interactions.0.latency": "00:00:05",
            "cmi.interactions.0.time": "13:05:00",
        },
    )
    assert accepted == {
        "cmi.core.lesson_status": "incomplete",
        "cmi.core.lesson_location": "3",
        "cmi.core.score.raw": "",
        "cmi.core.session_time": "0000:01:02.50",
        "cmi.suspend_data": "x" * 4096,
        "cmi.interactions.0.id": "q1",
        "cmi.interactions.0.result": "wrong",
        "cmi.interactions.0.latency": "00:00:05",
        "cmi.interactions.0.time": "13:05:00",
    }


@pytest.mark.parametrize(
    ("version", "element", "value", "reason"),
    [
        (
            V12,
            "cmi.core.lesson_status",
            "done",
            '"done" is not one of "passed", "completed", "failed", "incomplete", "browsed"',
        ),
        (V12, "cmi.suspend_data", "x" * 4097, "longer than 4096 characters (4097)"),
        (V12, "cmi.core.lesson_location", "y" * 256, "longer than 255 characters (256)"),
        (V12, "cmi.core.score.raw", "101", "101 is above 100"),
        (V12, "cmi.core.score.raw", "-1", "-1 is below 0"),
        (V12, "cmi.core.score.raw", "1e2", '"1e2" is not a number'),
        (V12, "cmi.core.session_time", "PT1M", '"PT1M" is not a SCORM 1.2 time span (HHHH:MM:SS.SS)'),
        (V12, "cmi.core.session_time", "00:61:00", '"00:61:00" has minutes or seconds out of range'),
        (V12, "cmi.core.exit", "normal", '"normal" is not one of "time-out", "suspend", "logout", ""'),
        (V12, "cmi.student_preference.speed", "101", "101 is not between -100 and 100"),
        (V12, "cmi.interactions.250.id", "q", "more than 250 interactions"),
        (V12, "cmi.interactions.0.id", "has space", "must be 1 to 255 characters without spaces"),
        (V12, "cmi.core.lesson_statu", "passed", "is not an element of the SCORM 1.2 data model"),
        (V12, "cmi.location", "1", "is not an element of the SCORM 1.2 data model"),
        (V2004, "cmi.suspend_data", "z" * 64001, "longer than 64000 characters (64001)"),
        (V2004, "cmi.location", "l" * 1001, "longer than 1000 characters (1001)"),
        (V2004, "cmi.score.scaled", "1.5", "1.5 is above 1"),
        (V2004, "cmi.score.scaled", "-1.01", "-1.01 is below -1"),
        (V2004, "cmi.progress_measure", "2", "2 is above 1"),
        (
            V2004,
            "cmi.completion_status",
            "passed",
            '"passed" is not one of "completed", "incomplete", "not attempted", "unknown"',
        ),
        (V2004, "cmi.success_status", "completed", '"completed" is not one of "passed", "failed", "unknown"'),
        (V2004, "cmi.session_time", "00:01:00", '"00:01:00" is not an ISO 8601 duration (e.g. PT1H5M30S)'),
        (V2004, "cmi.session_time", "PT", '"PT" is not an ISO 8601 duration (e.g. PT1H5M30S)'),
        (V2004, "cmi.exit", "quit", '"quit" is not one of "time-out", "suspend", "logout", "normal", ""'),
        (
            V2004,
            "cmi.interactions.0.result",
            "wrong",
            '"wrong" is not correct, incorrect, unanticipated, neutral or a number',
        ),
        (V2004, "cmi.interactions.0.id", "urn:bad id", '"urn:bad id" is not a valid URN'),
        (V2004, "cmi.objectives.100.id", "o", "more than 100 objectives"),
        (V2004, "adl.nav.request", "jump", '"jump" is not a navigation request'),
        (
            V2004,
            "cmi.core.lesson_status",
            "passed",
            "is not an element of the SCORM 2004 3rd Edition data model",
        ),
    ],
)
def test_a_bad_element_rejects_the_whole_commit_naming_it(
    version: str, element: str, value: str, reason: str
) -> None:
    good = "cmi.core.lesson_location" if version == V12 else "cmi.location"
    with pytest.raises(cmi.CmiRejected) as caught:
        cmi.validate_commit(version, {good: "1", element: value})
    assert caught.value.errors == [(element, reason)]


def test_2004_commit_values() -> None:
    accepted = cmi.validate_commit(
        V2004,
        {
            "cmi.learner_id": "x",
            "cmi.completion_status": "completed",
            "cmi.success_status": "passed",
            "cmi.score.scaled": "0.85",
            "cmi.score.raw": "85",
            "cmi.session_time": "PT1H2M3.5S",
            "cmi.exit": "suspend",
            "cmi.suspend_data": "s" * 64000,
            "adl.nav.request": "{target=sco_2}choice",
            "adl.nav.request_valid.continue": "true",
        },
    )
    assert set(accepted) == {
        "cmi.completion_status",
        "cmi.success_status",
        "cmi.score.scaled",
        "cmi.score.raw",
        "cmi.session_time",
        "cmi.exit",
        "cmi.suspend_data",
        "adl.nav.request",
    }


def test_a_full_commit_s_placeholders_for_unset_elements_are_not_values() -> None:
    # scorm-again's full commit: every element, unset ones as "" (or 1.2's "not attempted").
    assert cmi.validate_commit(
        V12,
        {
            "cmi.core.lesson_status": "not attempted",
            "cmi.student_preference.audio": "",
            "cmi.objectives": {},
            "cmi.interactions": [],
            "cmi.core.lesson_location": "",
        },
    ) == {"cmi.core.lesson_location": ""}
    with pytest.raises(cmi.CmiRejected) as caught:
        cmi.validate_commit(V12, {"cmi.objectives": {"0": {"id": "x"}}})
    assert caught.value.errors == [("cmi.objectives", "must be a string")]


def test_non_string_values_are_refused() -> None:
    with pytest.raises(cmi.CmiRejected) as caught:
        cmi.validate_commit(V12, {"cmi.core.lesson_location": {"a": 1}, "cmi.suspend_data": True})
    assert caught.value.errors == [
        ("cmi.core.lesson_location", "must be a string"),
        ("cmi.suspend_data", "must be a string"),
    ]


def test_12_outcome_applies_the_mastery_score_when_the_sco_sets_a_score() -> None:
    stored = {"cmi.core.lesson_status": "completed", "cmi.core.score.raw": "75"}
    assert cmi.outcome(V12, stored, mastery_score=Decimal(80)) == cmi.Outcome(
        completion="completed", success="failed", score_percent=Decimal("75.00"), suspended=False
    )
    assert cmi.outcome(V12, stored, mastery_score=Decimal(70)).success == "passed"
    # No score: the SCO's own status counts.
    assert cmi.outcome(
        V12, {"cmi.core.lesson_status": "incomplete"}, mastery_score=Decimal(80)
    ) == cmi.Outcome(completion="incomplete", success="unknown", score_percent=None, suspended=False)
    assert cmi.outcome(V12, {}) == cmi.Outcome(
        completion="not attempted", success="unknown", score_percent=None, suspended=False
    )
    assert cmi.outcome(V12, {"cmi.core.lesson_status": "failed", "cmi.core.exit": "suspend"}) == cmi.Outcome(
        completion="completed", success="failed", score_percent=None, suspended=True
    )


def test_scores_are_scaled_to_percent() -> None:
    assert cmi.outcome(
        V12, {"cmi.core.score.raw": "15", "cmi.core.score.max": "20"}
    ).score_percent == Decimal("75.00")
    assert cmi.outcome(V2004, {"cmi.score.scaled": "0.834"}).score_percent == Decimal("83.40")
    assert cmi.outcome(
        V2004, {"cmi.score.raw": "8", "cmi.score.min": "0", "cmi.score.max": "10"}
    ).score_percent == Decimal("80.00")
    assert cmi.outcome(V2004, {"cmi.score.scaled": "-0.5"}).score_percent == Decimal("0.00")


def test_2004_outcome_with_scaled_passing_score() -> None:
    stored = {"cmi.completion_status": "completed", "cmi.success_status": "passed", "cmi.score.scaled": "0.6"}
    assert cmi.outcome(V2004, stored, mastery_score=Decimal("0.7")) == cmi.Outcome(
        completion="completed", success="failed", score_percent=Decimal("60.00"), suspended=False
    )
    assert cmi.outcome(V2004, stored) == cmi.Outcome(
        completion="completed", success="passed", score_percent=Decimal("60.00"), suspended=False
    )


def test_time_spans() -> None:
    assert cmi.timespan_seconds(V12, "0001:02:03.50") == Decimal("3723.50")
    assert cmi.timespan_seconds(V2004, "PT1H2M3.5S") == Decimal("3723.5")
    assert cmi.timespan_seconds(V2004, "P1DT1S") == Decimal(86401)
    assert cmi.format_total_time(V12, Decimal("3723.5")) == "0001:02:03.50"
    assert cmi.format_total_time(V2004, Decimal("3723.5")) == "PT1H2M3.50S"


def test_initial_values_fresh_and_resumed() -> None:
    fresh = cmi.initial_values(
        V12,
        {},
        learner_id="u1",
        learner_name="Doe, Ann",
        entry="ab-initio",
        total_seconds=Decimal(0),
        mastery_score=None,
    )
    assert fresh["cmi.core.lesson_status"] == "not attempted"
    assert "cmi.core.lesson_location" not in fresh
    assert fresh["cmi.core.entry"] == "ab-initio"
    resumed = cmi.initial_values(
        V12,
        {"cmi.core.lesson_status": "incomplete", "cmi.core.lesson_location": "7", "cmi.core.exit": "suspend"},
        learner_id="u1",
        learner_name="Doe, Ann",
        entry="resume",
        total_seconds=Decimal(62),
        mastery_score=Decimal(80),
    )
    assert resumed["cmi.core.lesson_location"] == "7"
    assert resumed["cmi.core.lesson_status"] == "incomplete"
    assert resumed["cmi.core.total_time"] == "0000:01:02.00"
    assert resumed["cmi.student_data.mastery_score"] == "80"
    assert "cmi.core.exit" not in resumed
    fresh04 = cmi.initial_values(
        V2004,
        {},
        learner_id="u1",
        learner_name="Ann",
        entry="ab-initio",
        total_seconds=Decimal(0),
        mastery_score=None,
    )
    assert fresh04["cmi.completion_status"] == "unknown"
    assert "cmi.location" not in fresh04


@given(st.text(max_size=5000))
def test_suspend_data_12_limit_holds_for_any_text(text: str) -> None:
    if len(text) <= 4096:
        assert cmi.validate_commit(V12, {"cmi.suspend_data": text}) == {"cmi.suspend_data": text}
    else:
        with pytest.raises(cmi.CmiRejected):
            cmi.validate_commit(V12, {"cmi.suspend_data": text})


@given(st.decimals(min_value=-5, max_value=5, places=3))
def test_scaled_score_range_for_any_number(number: Decimal) -> None:
    value = str(number)
    if Decimal(-1) <= number <= Decimal(1):
        assert cmi.validate_commit(V2004, {"cmi.score.scaled": value}) == {"cmi.score.scaled": value}
    else:
        with pytest.raises(cmi.CmiRejected):
            cmi.validate_commit(V2004, {"cmi.score.scaled": value})
