"""Shapes every API operation shares: the error body and the responses that carry it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ninja import Schema


class ErrorOut(Schema):
    """Every refusal: a reason a person can act on, and the input at fault (or null)."""

    error: str
    field: str | None = None


def errors(*codes: int) -> dict[int, Any]:
    """The error responses an operation documents (401 always: every operation needs a token)."""
    return {code: ErrorOut for code in sorted({400, 401, *codes})}


def utc_text(moment: dt.datetime) -> str:
    """An instant as the API writes it: ISO 8601 in UTC with a trailing Z."""
    text = moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    return f"{text}Z"
