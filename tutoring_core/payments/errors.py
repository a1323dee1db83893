"""Errors of the payments door. They are scheduling errors too, so a refused booking
shows its reason (and 402 for missing credit) wherever scheduling shows its own."""

from __future__ import annotations

from tutoring_core.scheduling.errors import (
    BookingRefused,
    InvalidInput,
    NotAllowed,
    NotFound,
    SchedulingError,
)

__all__ = ["InsufficientCredit", "InvalidInput", "NotAllowed", "NotFound", "PaymentError", "PaymentFailed"]


class PaymentError(SchedulingError):
    http_status = 400


class InsufficientCredit(BookingRefused):
    """The payer's balance cannot cover this: nothing was written."""

    http_status = 402


class PaymentFailed(PaymentError):
    """The payment provider refused (card declined, needs authentication, unreachable)."""

    http_status = 402
