"""The door other apps use for payments (issue 16): booking hooks and read-only summaries.

The booking hooks run inside scheduling's own transaction: a refusal (InsufficientCredit,
402, with the reason) rolls the whole booking back, so nothing is written.
"""

from __future__ import annotations

import uuid

from tutoring_core.payments import services
from tutoring_core.payments.data import Balance, PayerSummary, PolicyInfo
from tutoring_core.payments.errors import InsufficientCredit, PaymentError, PaymentFailed
from tutoring_core.payments.models import LedgerAccount, PayerAccount
from tutoring_core.payments.protocol.ledger import policy_text

__all__ = [
    "Balance",
    "InsufficientCredit",
    "PayerSummary",
    "PaymentError",
    "PaymentFailed",
    "PolicyInfo",
    "booking_release",
    "booking_reserve",
    "booking_settle",
    "payer_summary",
    "policy_info",
]


def booking_reserve(
    *,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    student_id: uuid.UUID,
    tutor_id: uuid.UUID,
    subject: str,
    duration_min: int,
) -> None:
    """Reserve the student's credit (or authorise their card) for a new booking, as the
    tenant's payment settings require; nothing when bookings are grant-funded."""
    services.booking_reserve(
        tenant_id=tenant_id,
        session_id=session_id,
        student_id=student_id,
        tutor_id=tutor_id,
        subject=subject,
        duration_min=duration_min,
    )


def booking_release(*, session_id: uuid.UUID, late: bool, student_id: uuid.UUID | None = None) -> None:
    """A cancelled booking (or one student's place): all back in time, the policy's share back if late."""
    services.booking_finish(
        session_id=session_id, outcome="late_cancel" if late else "cancelled", student_id=student_id
    )


def booking_settle(*, session_id: uuid.UUID, outcome: str, student_id: uuid.UUID | None = None) -> None:
    """A session's recorded outcome: attended uses the credit, no-shows follow the policy."""
    services.booking_finish(session_id=session_id, outcome=outcome, student_id=student_id)


def policy_info(tenant_id: uuid.UUID, *, notice_hours: int = 24) -> PolicyInfo:
    """What booking needs here and the refund policy, in words, for showing before paying."""
    found = services.settings_for(tenant_id)
    return PolicyInfo(
        booking_requires=found.booking_requires,
        provider=found.provider,
        text=policy_text(
            requires=found.booking_requires,
            late_cancel_percent=found.late_cancel_forfeit_percent,
            no_show_percent=found.no_show_forfeit_percent,
            notice_hours=notice_hours,
        ),
    )


def payer_summary(*, tenant_id: uuid.UUID, payer_id: uuid.UUID) -> PayerSummary | None:
    payer = PayerAccount.objects.filter(tenant_id=tenant_id, pk=payer_id).first()
    if payer is None:
        return None
    rows = LedgerAccount.objects.filter(payer=payer).order_by("purpose", "unit")
    return PayerSummary(
        id=payer.pk,
        name=payer.name,
        kind=payer.kind,
        balances=tuple(Balance(purpose=row.purpose, unit=row.unit, amount=row.balance) for row in rows),
    )
