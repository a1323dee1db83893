"""The CMI data model rules of SCORM 1.2 and SCORM 2004 (no Django).

The player's runtime (scorm-again, in the browser) already checks what a SCO sets;
the server checks again, because the browser is the learner's: a commit is a
flattened map ``{"cmi.core.lesson_status": "passed", ...}`` and every element in it
is checked against its data-model rule and limits before anything is stored
(:func:`validate_commit`). Completion, success and score are worked out here from
the stored values (:func:`outcome`), never taken from a client's summary.

References: SCORM 1.2 RTE chapter 3 (data model, "CMIString4096" etc.);
SCORM 2004 3rd/4th edition RTE chapter 4 and its smallest permitted maxima (SPM).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

SCORM_12 = "1.2"

# Smallest permitted maxima (2004) used as hard limits for both versions: a package
# that needs more than the standard guarantees is refused element by element.
MAX_INTERACTIONS = 250
MAX_OBJECTIVES = 100
MAX_COMMENTS = 250
MAX_CORRECT_RESPONSES = 250
MAX_INTERACTION_OBJECTIVES = 10
MAX_ELEMENTS_PER_COMMIT = 20_000


class CmiRejected(Exception):
    """A commit that breaks the data model; ``errors`` name each element and why."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{element}: {reason}" for element, reason in errors))


def is_2004(version: str) -> bool:
    return version != SCORM_12


# --- value checks: each returns None when the value is fine, else the reason ----------

Check = Callable[[str], "str | None"]


def _string(limit: int) -> Check:
    def check(value: str) -> str | None:
        if len(value) > limit:
            return f"longer than {limit} characters ({len(value)})"
        return None

    return check


def _vocabulary(*words: str) -> Check:
    allowed = frozenset(words)

    def check(value: str) -> str | None:
        if value not in allowed:
            shown = ", ".join(f'"{w}"' for w in words)
            return f'"{value[:40]}" is not one of {shown}'
        return None

    return check


_DECIMAL_RE = re.compile(r"^-?\d+(\.\d+)?$")
_REAL_RE = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")


def _number(
    *,
    low: Decimal | None = None,
    high: Decimal | None = None,
    blank: bool = False,
    pattern: re.Pattern[str] = _REAL_RE,
) -> Check:
    def check(value: str) -> str | None:
        if value == "" and blank:
            return None
        if not pattern.match(value):
            return f'"{value[:40]}" is not a number'
        number = Decimal(value)
        if low is not None and number < low:
            return f"{value} is below {low}"
        if high is not None and number > high:
            return f"{value} is above {high}"
        return None

    return check


def _integer(low: int, high: int) -> Check:
    def check(value: str) -> str | None:
        if not re.match(r"^-?\d+$", value):
            return f'"{value[:40]}" is not a whole number'
        if not low <= int(value) <= high:
            return f"{value} is not between {low} and {high}"
        return None

    return check


_TIMESPAN_12_RE = re.compile(r"^\d{2,4}:\d{2}:\d{2}(\.\d{1,2})?$")
_TIME_12_RE = re.compile(r"^\d{2}:\d{2}:\d{2}(\.\d{1,2})?$")
_DURATION_RE = re.compile(
    r"^P(?=\d|T\d)(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<d>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+(?:\.\d{1,2})?)S)?)?$"
)
_TIMESTAMP_RE = re.compile(
    r"^\d{4}(-\d{2}(-\d{2}(T\d{2}(:\d{2}(:\d{2}(\.\d{1,2})?)?)?(Z|[+-]\d{2}(:\d{2})?)?)?)?)?$"
)


def _timespan_12(value: str) -> str | None:
    if not _TIMESPAN_12_RE.match(value):
        return f'"{value[:40]}" is not a SCORM 1.2 time span (HHHH:MM:SS.SS)'
    _, minutes, seconds = value.split(":")
    if int(minutes) > 59 or float(seconds) >= 60:
        return f'"{value}" has minutes or seconds out of range'
    return None


def _time_12(value: str) -> str | None:
    if not _TIME_12_RE.match(value):
        return f'"{value[:40]}" is not a SCORM 1.2 time (HH:MM:SS)'
    hours, minutes, seconds = value.split(":")
    if int(hours) > 23 or int(minutes) > 59 or float(seconds) >= 60:
        return f'"{value}" is not a time of day'
    return None


def _duration(value: str) -> str | None:
    if not _DURATION_RE.match(value):
        return f'"{value[:40]}" is not an ISO 8601 duration (e.g. PT1H5M30S)'
    return None


def _timestamp(value: str) -> str | None:
    if not _TIMESTAMP_RE.match(value):
        return f'"{value[:40]}" is not an ISO 8601 time (e.g. 2024-05-01T10:20:30Z)'
    return None


_IDENTIFIER_12_RE = re.compile(r"^[^\s]{1,255}$")


def _identifier_12(value: str) -> str | None:
    if not _IDENTIFIER_12_RE.match(value):
        return "must be 1 to 255 characters without spaces"
    return None


def _long_identifier(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > 4000:
        return f"longer than 4000 characters ({len(value)})"
    if value.startswith("urn:") and not re.match(r"^urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:\S+$", value):
        return f'"{value[:40]}" is not a valid URN'
    return None


_NAV_REQUEST_RE = re.compile(
    r"^(continue|previous|exit|exitAll|abandon|abandonAll|suspendAll|_none_|"
    r"\{target=[^\s}]{1,4000}\}(choice|jump))$"
)


def _nav_request(value: str) -> str | None:
    if not _NAV_REQUEST_RE.match(value):
        return f'"{value[:40]}" is not a navigation request'
    return None


def _result_12(value: str) -> str | None:
    if value in ("correct", "wrong", "unanticipated", "neutral"):
        return None
    if _DECIMAL_RE.match(value):
        return None
    return f'"{value[:40]}" is not correct, wrong, unanticipated, neutral or a number'


def _result_2004(value: str) -> str | None:
    if value in ("correct", "incorrect", "unanticipated", "neutral"):
        return None
    if _REAL_RE.match(value):
        return None
    return f'"{value[:40]}" is not correct, incorrect, unanticipated, neutral or a number'


# --- the element tables ------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    writable: bool
    check: Check | None = None


def _rules(table: list[tuple[str, bool, Check | None]]) -> tuple[Rule, ...]:
    out = []
    for name, writable, check in table:
        regex = (
            "^"
            + re.escape(name).replace(r"\.n\.", r"\.(?P<n>\d+)\.").replace(r"\.m\.", r"\.(?P<m>\d+)\.")
            + "$"
        )
        out.append(Rule(re.compile(regex), writable, check))
    return tuple(out)


_STATUS_12 = ("passed", "completed", "failed", "incomplete", "browsed")
_SCORE_12 = _number(low=Decimal(0), high=Decimal(100), blank=True, pattern=_DECIMAL_RE)
_INTERACTION_TYPES_12 = (
    "true-false", "choice", "fill-in", "matching", "performance", "sequencing", "likert", "numeric"
)  # fmt: skip

RULES_12 = _rules(
    [
        ("cmi.core.student_id", False, None),
        ("cmi.core.student_name", False, None),
        ("cmi.core.lesson_location", True, _string(255)),
        ("cmi.core.credit", False, None),
        ("cmi.core.lesson_status", True, _vocabulary(*_STATUS_12)),
        ("cmi.core.entry", False, None),
        ("cmi.core.score.raw", True, _SCORE_12),
        ("cmi.core.score.min", True, _SCORE_12),
        ("cmi.core.score.max", True, _SCORE_12),
        ("cmi.core.total_time", False, None),
        ("cmi.core.lesson_mode", False, None),
        ("cmi.core.exit", True, _vocabulary("time-out", "suspend", "logout", "")),
        ("cmi.core.session_time", True, _timespan_12),
        ("cmi.suspend_data", True, _string(4096)),
        ("cmi.launch_data", False, None),
        ("cmi.comments", True, _string(4096)),
        ("cmi.comments_from_lms", False, None),
        ("cmi.objectives.n.id", True, _identifier_12),
        ("cmi.objectives.n.score.raw", True, _SCORE_12),
        ("cmi.objectives.n.score.min", True, _SCORE_12),
        ("cmi.objectives.n.score.max", True, _SCORE_12),
        ("cmi.objectives.n.status", True, _vocabulary(*_STATUS_12, "not attempted")),
        ("cmi.student_data.mastery_score", False, None),
        ("cmi.student_data.max_time_allowed", False, None),
        ("cmi.student_data.time_limit_action", False, None),
        ("cmi.student_preference.audio", True, _integer(-1, 100)),
        ("cmi.student_preference.language", True, _string(255)),
        ("cmi.student_preference.speed", True, _integer(-100, 100)),
        ("cmi.student_preference.text", True, _integer(-1, 1)),
        ("cmi.interactions.n.id", True, _identifier_12),
        ("cmi.interactions.n.objectives.m.id", True, _identifier_12),
        ("cmi.interactions.n.time", True, _time_12),
        ("cmi.interactions.n.type", True, _vocabulary(*_INTERACTION_TYPES_12)),
        ("cmi.interactions.n.correct_responses.m.pattern", True, _string(255)),
        ("cmi.interactions.n.weighting", True, _number(pattern=_DECIMAL_RE)),
        ("cmi.interactions.n.student_response", True, _string(255)),
        ("cmi.interactions.n.result", True, _result_12),
        ("cmi.interactions.n.latency", True, _timespan_12),
    ]
)

_SCORE_SCALED = _number(low=Decimal(-1), high=Decimal(1))
_REAL = _number()
_UNIT = _number(low=Decimal(0), high=Decimal(1))
_COMPLETION = _vocabulary("completed", "incomplete", "not attempted", "unknown")
_SUCCESS = _vocabulary("passed", "failed", "unknown")
_INTERACTION_TYPES_2004 = (
    "true-false", "choice", "fill-in", "long-fill-in", "matching", "performance",
    "sequencing", "likert", "numeric", "other",
)  # fmt: skip

RULES_2004 = _rules(
    [
        ("cmi._version", False, None),
        ("cmi.comments_from_learner.n.comment", True, _string(4000)),
        ("cmi.comments_from_learner.n.location", True, _string(250)),
        ("cmi.comments_from_learner.n.timestamp", True, _timestamp),
        ("cmi.comments_from_lms.n.comment", False, None),
        ("cmi.comments_from_lms.n.location", False, None),
        ("cmi.comments_from_lms.n.timestamp", False, None),
        ("cmi.completion_status", True, _COMPLETION),
        ("cmi.completion_threshold", False, None),
        ("cmi.credit", False, None),
        ("cmi.entry", False, None),
        ("cmi.exit", True, _vocabulary("time-out", "suspend", "logout", "normal", "")),
        ("cmi.interactions.n.id", True, _long_identifier),
        ("cmi.interactions.n.type", True, _vocabulary(*_INTERACTION_TYPES_2004)),
        ("cmi.interactions.n.objectives.m.id", True, _long_identifier),
        ("cmi.interactions.n.timestamp", True, _timestamp),
        ("cmi.interactions.n.correct_responses.m.pattern", True, _string(64000)),
        ("cmi.interactions.n.weighting", True, _REAL),
        ("cmi.interactions.n.learner_response", True, _string(64000)),
        ("cmi.interactions.n.result", True, _result_2004),
        ("cmi.interactions.n.latency", True, _duration),
        ("cmi.interactions.n.description", True, _string(250)),
        ("cmi.launch_data", False, None),
        ("cmi.learner_id", False, None),
        ("cmi.learner_name", False, None),
        ("cmi.learner_preference.audio_level", True, _number(low=Decimal(0))),
        ("cmi.learner_preference.language", True, _string(250)),
        ("cmi.learner_preference.delivery_speed", True, _number(low=Decimal(0))),
        ("cmi.learner_preference.audio_captioning", True, _vocabulary("-1", "0", "1")),
        ("cmi.location", True, _string(1000)),
        ("cmi.max_time_allowed", False, None),
        ("cmi.mode", False, None),
        ("cmi.objectives.n.id", True, _long_identifier),
        ("cmi.objectives.n.score.scaled", True, _SCORE_SCALED),
        ("cmi.objectives.n.score.raw", True, _REAL),
        ("cmi.objectives.n.score.min", True, _REAL),
        ("cmi.objectives.n.score.max", True, _REAL),
        ("cmi.objectives.n.success_status", True, _SUCCESS),
        ("cmi.objectives.n.completion_status", True, _COMPLETION),
        ("cmi.objectives.n.progress_measure", True, _UNIT),
        ("cmi.objectives.n.description", True, _string(250)),
        ("cmi.progress_measure", True, _UNIT),
        ("cmi.scaled_passing_score", False, None),
        ("cmi.score.scaled", True, _SCORE_SCALED),
        ("cmi.score.raw", True, _REAL),
        ("cmi.score.min", True, _REAL),
        ("cmi.score.max", True, _REAL),
        ("cmi.session_time", True, _duration),
        ("cmi.success_status", True, _SUCCESS),
        ("cmi.suspend_data", True, _string(64000)),
        ("cmi.time_limit_action", False, None),
        ("cmi.total_time", False, None),
        ("adl.nav.request", True, _nav_request),
    ]
)

# Placeholders a runtime reports for elements the SCO has not set, which the SCO itself
# may not write.
_UNSET = {"cmi.core.lesson_status": "not attempted"}

# Keys the runtime adds to a full commit that are the data model's bookkeeping,
# not values: "cmi.core._children", "cmi.interactions._count", "adl.nav.request_valid.*".
_BOOKKEEPING_RE = re.compile(r"(^|\.)_(children|count|version)$|^adl\.nav\.request_valid\.")


def _limit_for(element: str, n: int | None, m: int | None) -> str | None:
    if n is not None:
        if element.startswith("cmi.interactions.") and n >= MAX_INTERACTIONS:
            return f"more than {MAX_INTERACTIONS} interactions"
        if element.startswith("cmi.objectives.") and n >= MAX_OBJECTIVES:
            return f"more than {MAX_OBJECTIVES} objectives"
        if element.startswith("cmi.comments_from_learner.") and n >= MAX_COMMENTS:
            return f"more than {MAX_COMMENTS} comments"
    if m is not None:
        if ".correct_responses." in element and m >= MAX_CORRECT_RESPONSES:
            return f"more than {MAX_CORRECT_RESPONSES} correct responses"
        if ".objectives." in element and m >= MAX_INTERACTION_OBJECTIVES:
            return f"more than {MAX_INTERACTION_OBJECTIVES} objectives in one interaction"
    return None


def validate_commit(version: str, values: Mapping[str, object]) -> dict[str, str]:
    """The writable elements of a commit, checked; raises :class:`CmiRejected` naming
    every element that breaks a rule (nothing is taken from a rejected commit).

    Read-only elements (learner id, credit, total time...) are the server's own:
    a runtime that echoes them back in a full commit is not wrong, so they are
    dropped, never stored."""
    rules = RULES_2004 if is_2004(version) else RULES_12
    errors: list[tuple[str, str]] = []
    accepted: dict[str, str] = {}
    if len(values) > MAX_ELEMENTS_PER_COMMIT:
        raise CmiRejected([("commit", f"more than {MAX_ELEMENTS_PER_COMMIT} elements")])
    for element, raw in values.items():
        if not isinstance(element, str) or _BOOKKEEPING_RE.search(element):
            continue
        if isinstance(raw, (dict, list)) and not raw:
            continue  # an empty collection ("cmi.interactions": {}) in a full commit
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            errors.append((element, "must be a string"))
            continue
        value = raw if isinstance(raw, str) else str(raw)
        rule = next((r for r in rules if r.pattern.match(element)), None)
        if rule is None:
            errors.append((element, f"is not an element of the SCORM {version} data model"))
            continue
        if not rule.writable:
            continue
        match = rule.pattern.match(element)
        assert match is not None
        groups = match.groupdict()
        n = int(groups["n"]) if groups.get("n") is not None else None
        m = int(groups["m"]) if groups.get("m") is not None else None
        reason = _limit_for(element, n, m)
        if reason is None and rule.check is not None:
            reason = rule.check(value)
        if reason is not None and (value == "" or _UNSET.get(element) == value):
            # A full commit carries every element, the SCO's unset ones with the
            # runtime's placeholder ("" or 1.2's "not attempted"): not a value to store.
            continue
        if reason is not None:
            errors.append((element, reason))
            continue
        accepted[element] = value
    if errors:
        raise CmiRejected(errors)
    return accepted


# --- time ----------------------------------------------------------------------------


def timespan_seconds(version: str, value: str) -> Decimal:
    """Seconds in a session time (1.2 HHHH:MM:SS.SS, 2004 ISO 8601 duration); 0 when blank."""
    if not value:
        return Decimal(0)
    if not is_2004(version):
        if _timespan_12(value) is not None:
            return Decimal(0)
        hours, minutes, seconds = value.split(":")
        return Decimal(hours) * 3600 + Decimal(minutes) * 60 + Decimal(seconds)
    match = _DURATION_RE.match(value)
    if match is None:
        return Decimal(0)
    parts = {k: Decimal(v) if v else Decimal(0) for k, v in match.groupdict().items()}
    # Years and months as the RTE book does for totals: 365 and 30 days.
    days = parts["y"] * 365 + parts["mo"] * 30 + parts["d"]
    return days * 86400 + parts["h"] * 3600 + parts["mi"] * 60 + parts["s"]


def format_total_time(version: str, seconds: Decimal) -> str:
    """Total time as the data model shows it to the SCO."""
    whole = int(seconds)
    hundredths = int((seconds - whole) * 100)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if not is_2004(version):
        return f"{min(hours, 9999):04d}:{minutes:02d}:{secs:02d}.{hundredths:02d}"
    return f"PT{hours}H{minutes}M{secs}.{hundredths:02d}S"


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the stored CMI data says about an attempt, worked out on the server."""

    completion: str  # "completed" | "incomplete" | "not attempted" | "unknown"
    success: str  # "passed" | "failed" | "unknown"
    score_percent: Decimal | None  # 0..100, None when the SCO set no score
    suspended: bool  # the SCO left with exit "suspend": the next launch resumes

    @property
    def completed(self) -> bool:
        return self.completion == "completed" or self.success in ("passed", "failed")


def _decimal(value: str | None) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _percent(raw: Decimal, low: Decimal | None, high: Decimal | None) -> Decimal:
    if high is not None and low is None:
        low = Decimal(0)
    if high is not None and low is not None and high > low:
        value = (raw - low) * 100 / (high - low)
    else:
        value = raw
    return max(Decimal(0), min(Decimal(100), value)).quantize(Decimal("0.01"))


def outcome(version: str, cmi: Mapping[str, str], *, mastery_score: Decimal | None = None) -> Outcome:
    """Completion, success and score from the stored CMI values.

    SCORM 1.2 (RTE 3.4.4, cmi.core.lesson_status): with a mastery score in the manifest and
    a raw score set by the SCO, the LMS decides passed/failed from the score, whatever status
    the SCO set. SCORM 2004 (RTE 4.2.21): with a scaled passing score and a scaled score, the
    same; the score shown is scaled x 100, else raw within min/max.
    """
    if not is_2004(version):
        status = cmi.get("cmi.core.lesson_status", "not attempted") or "not attempted"
        raw = _decimal(cmi.get("cmi.core.score.raw"))
        score = (
            None
            if raw is None
            else _percent(
                raw, _decimal(cmi.get("cmi.core.score.min")), _decimal(cmi.get("cmi.core.score.max"))
            )
        )
        success = status if status in ("passed", "failed") else "unknown"
        if mastery_score is not None and raw is not None:
            success = "passed" if raw >= mastery_score else "failed"
        if status in ("completed", "passed", "failed") or success != "unknown":
            completion = "completed"
        elif status in ("incomplete", "browsed"):
            completion = "incomplete"
        else:
            completion = "not attempted"
        suspended = cmi.get("cmi.core.exit", "") == "suspend"
        return Outcome(completion=completion, success=success, score_percent=score, suspended=suspended)

    completion = cmi.get("cmi.completion_status", "unknown") or "unknown"
    success = cmi.get("cmi.success_status", "unknown") or "unknown"
    scaled = _decimal(cmi.get("cmi.score.scaled"))
    raw = _decimal(cmi.get("cmi.score.raw"))
    score = None
    if scaled is not None:
        score = max(Decimal(0), min(Decimal(100), scaled * 100)).quantize(Decimal("0.01"))
    elif raw is not None:
        score = _percent(raw, _decimal(cmi.get("cmi.score.min")), _decimal(cmi.get("cmi.score.max")))
    if mastery_score is not None and scaled is not None:
        success = "passed" if scaled >= mastery_score else "failed"
    suspended = cmi.get("cmi.exit", "") == "suspend"
    return Outcome(completion=completion, success=success, score_percent=score, suspended=suspended)


# --- what the runtime starts with ----------------------------------------------------


def _plain(number: Decimal) -> str:
    """80.0000 -> "80", 0.8000 -> "0.8" (never "8E+1")."""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def initial_values(
    version: str,
    stored: Mapping[str, str],
    *,
    learner_id: str,
    learner_name: str,
    entry: str,
    total_seconds: Decimal,
    mastery_score: Decimal | None,
    launch_data: str = "",
    max_time_allowed: str = "",
    time_limit_action: str = "",
    credit: bool = True,
) -> dict[str, str]:
    """The flattened values the runtime is loaded with before the SCO starts.

    A fresh attempt gives the SCO "not attempted" (1.2 lesson_status) / "unknown"
    (2004 completion) and an empty location, which golf-style SCOs read to decide
    whether to offer "resume"; a suspended one gives back the location and
    suspend_data (``entry`` "resume")."""
    values: dict[str, str] = {}
    if not is_2004(version):
        values.update(
            {
                "cmi.core.student_id": learner_id,
                "cmi.core.student_name": learner_name,
                "cmi.core.credit": "credit" if credit else "no-credit",
                "cmi.core.entry": entry,
                "cmi.core.total_time": format_total_time(version, total_seconds),
                "cmi.core.lesson_mode": "normal",
                "cmi.core.lesson_status": "not attempted",
                "cmi.launch_data": launch_data,
            }
        )
        if mastery_score is not None:
            values["cmi.student_data.mastery_score"] = _plain(mastery_score)
        if max_time_allowed:
            values["cmi.student_data.max_time_allowed"] = max_time_allowed
        if time_limit_action:
            values["cmi.student_data.time_limit_action"] = time_limit_action
    else:
        values.update(
            {
                "cmi.learner_id": learner_id,
                "cmi.learner_name": learner_name,
                "cmi.credit": "credit" if credit else "no-credit",
                "cmi.entry": entry,
                "cmi.mode": "normal",
                "cmi.launch_data": launch_data,
                "cmi.completion_status": "unknown",
                "cmi.success_status": "unknown",
            }
        )
        if mastery_score is not None:
            values["cmi.scaled_passing_score"] = _plain(mastery_score)
        if max_time_allowed:
            values["cmi.max_time_allowed"] = max_time_allowed
        if time_limit_action:
            values["cmi.time_limit_action"] = time_limit_action
    for element, value in stored.items():
        # The last session's exit and time belong to that session, not this one.
        if element in (
            "cmi.core.exit",
            "cmi.exit",
            "cmi.core.session_time",
            "cmi.session_time",
            "adl.nav.request",
        ):
            continue
        values[element] = value
    return {k: v for k, v in values.items() if v != "" or k in ("cmi.core.entry", "cmi.entry")}
