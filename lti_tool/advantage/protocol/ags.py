"""AGS 2.0 payloads: scores, line items, results (spec sections 3.2-3.4)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lti_tool.advantage.protocol.errors import ProtocolError
from lti_tool.advantage.protocol.media import CANVAS_SUBMISSION_EXTENSION

ACTIVITY_PROGRESS = ("Initialized", "Started", "InProgress", "Submitted", "Completed")
GRADING_PROGRESS = ("FullyGraded", "Pending", "PendingManual", "Failed", "NotReady")


def iso_timestamp(moment: dt.datetime) -> str:
    """ISO 8601 with sub-second precision and an explicit offset, as the spec asks."""
    if moment.tzinfo is None:
        raise ProtocolError("Score timestamps must be timezone-aware.")
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _number(value: Decimal | float | int) -> float | int:
    number = Decimal(str(value))
    return int(number) if number == number.to_integral_value() else float(number)


@dataclass(frozen=True)
class Score:
    user_id: str
    timestamp: dt.datetime
    activity_progress: str
    grading_progress: str
    score_given: Decimal | None = None
    score_maximum: Decimal | None = None
    comment: str = ""


def score_payload(
    score: Score,
    *,
    canvas: bool = False,
    new_submission: bool = False,
    submitted_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The JSON body of a POST to ``{lineitem}/scores``.

    ``scoreGiven`` needs ``scoreMaximum`` (spec 3.4.3.1). With ``canvas=True`` the
    Canvas submission extension says whether this score is a new student
    submission (it then shows in SpeedGrader) or a grade on the existing one.
    """
    if not score.user_id:
        raise ProtocolError("A score needs the platform's userId.")
    if score.activity_progress not in ACTIVITY_PROGRESS:
        raise ProtocolError(f"activityProgress must be one of {', '.join(ACTIVITY_PROGRESS)}.")
    if score.grading_progress not in GRADING_PROGRESS:
        raise ProtocolError(f"gradingProgress must be one of {', '.join(GRADING_PROGRESS)}.")
    body: dict[str, Any] = {
        "userId": score.user_id,
        "timestamp": iso_timestamp(score.timestamp),
        "activityProgress": score.activity_progress,
        "gradingProgress": score.grading_progress,
    }
    if score.score_given is not None:
        if score.score_maximum is None or score.score_maximum <= 0:
            raise ProtocolError("scoreGiven needs a scoreMaximum greater than zero.")
        if score.score_given < 0:
            raise ProtocolError("scoreGiven cannot be negative.")
        body["scoreGiven"] = _number(score.score_given)
        body["scoreMaximum"] = _number(score.score_maximum)
    if score.comment:
        body["comment"] = score.comment
    if canvas:
        extension: dict[str, Any] = {"new_submission": new_submission}
        if new_submission:
            extension["submitted_at"] = iso_timestamp(submitted_at or score.timestamp)
        body[CANVAS_SUBMISSION_EXTENSION] = extension
    return body


@dataclass(frozen=True)
class LineItem:
    id: str  # the line item's URL on the platform
    label: str
    score_maximum: Decimal
    resource_id: str = ""
    resource_link_id: str = ""
    tag: str = ""


def lineitem_payload(
    *,
    label: str,
    score_maximum: Decimal | float | int,
    resource_id: str = "",
    resource_link_id: str = "",
    tag: str = "",
) -> dict[str, Any]:
    """Body for creating (POST to lineitems) or updating (PUT to the line item) one."""
    label = label.strip()
    if not label:
        raise ProtocolError("A line item needs a label.")
    maximum = Decimal(str(score_maximum))
    if maximum <= 0:
        raise ProtocolError("A line item's scoreMaximum must be greater than zero.")
    body: dict[str, Any] = {"label": label[:255], "scoreMaximum": _number(maximum)}
    if resource_id:
        body["resourceId"] = resource_id
    if resource_link_id:
        body["resourceLinkId"] = resource_link_id
    if tag:
        body["tag"] = tag
    return body


def parse_lineitem(data: Any) -> LineItem:
    if not isinstance(data, dict):
        raise ProtocolError("A line item must be a JSON object.")
    item_id = data.get("id")
    if not isinstance(item_id, str) or not item_id.startswith(("http://", "https://")):
        raise ProtocolError("A line item needs an id that is its URL.")
    label = data.get("label")
    if not isinstance(label, str) or not label:
        raise ProtocolError(f"Line item {item_id} has no label.")
    maximum = data.get("scoreMaximum")
    if isinstance(maximum, bool) or not isinstance(maximum, int | float) or maximum <= 0:
        raise ProtocolError(f"Line item {item_id} has no positive scoreMaximum.")
    return LineItem(
        id=item_id,
        label=label,
        score_maximum=Decimal(str(maximum)),
        resource_id=str(data.get("resourceId") or ""),
        resource_link_id=str(data.get("resourceLinkId") or ""),
        tag=str(data.get("tag") or ""),
    )


def parse_lineitem_container(data: Any) -> list[LineItem]:
    if not isinstance(data, list):
        raise ProtocolError("A line item container must be a JSON array.")
    return [parse_lineitem(item) for item in data]


@dataclass(frozen=True)
class ResultRecord:
    user_id: str
    result_score: Decimal | None
    result_maximum: Decimal | None
    comment: str


def parse_result_container(data: Any) -> list[ResultRecord]:
    if not isinstance(data, list):
        raise ProtocolError("A result container must be a JSON array.")
    records = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("userId"), str):
            raise ProtocolError("Every result needs a userId.")
        score = entry.get("resultScore")
        maximum = entry.get("resultMaximum")
        records.append(
            ResultRecord(
                user_id=entry["userId"],
                result_score=None if score is None else Decimal(str(score)),
                result_maximum=None if maximum is None else Decimal(str(maximum)),
                comment=str(entry.get("comment") or ""),
            )
        )
    return records


def results_url(lineitem_url: str) -> str:
    """The results service is the line item URL with ``/results`` appended to its
    path; any query string stays after it (spec 3.3)."""
    return _append_path(lineitem_url, "results")


def scores_url(lineitem_url: str) -> str:
    return _append_path(lineitem_url, "scores")


def _append_path(url: str, segment: str) -> str:
    base, sep, query = url.partition("?")
    return f"{base.rstrip('/')}/{segment}" + (f"?{query}" if sep else "")
