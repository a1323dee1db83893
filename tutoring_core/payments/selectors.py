"""Payments reads shared by the pages, the services and the door: who may act for a payer,
and a payer's statement (balances, postings, purchases, booking charges, refunds)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from tutoring_core.accounts.api import is_district_admin
from tutoring_core.accounts.models import User
from tutoring_core.payments.errors import NotFound
from tutoring_core.payments.models import (
    BookingCharge,
    LedgerAccount,
    PayerAccount,
    PayerMember,
    PostingLine,
    Purchase,
)
from tutoring_core.payments.protocol.ledger import format_amount

P = LedgerAccount.Purpose
# The balances a payer reads as theirs; the others are bookkeeping of the hub's side.
PAYER_PURPOSES = (P.CREDIT, P.RESERVED, P.RECEIVABLE)


def as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def payers_for_user(user: User) -> list[PayerAccount]:
    """The payer accounts this person pays through; a district admin sees every account of
    the tenant (schools and programs pay through them)."""
    if user.tenant_id is None:
        return []
    rows = PayerAccount.objects.filter(tenant_id=user.tenant_id)
    if not is_district_admin(user):
        rows = rows.filter(memberships__user=user)
    return list(rows.order_by("name", "id").distinct())


def payer_for_user(*, user: User, payer_id: Any) -> PayerAccount:
    """The payer account, if this person is one of its members or a district admin of its
    tenant; NotFound (404) otherwise, the same for another tenant's id as for none."""
    pk = as_uuid(payer_id)
    if user.tenant_id is None or pk is None:
        raise NotFound("No such payer account.", "payer_id")
    try:
        payer = PayerAccount.objects.get(tenant_id=user.tenant_id, pk=pk)
    except (PayerAccount.DoesNotExist, ValidationError):
        raise NotFound("No such payer account.", "payer_id") from None
    if is_district_admin(user) or PayerMember.objects.filter(payer=payer, user=user).exists():
        return payer
    raise NotFound("No such payer account.", "payer_id")


def purchase_for_user(*, user: User, purchase_id: Any) -> Purchase:
    """The purchase, if the person may act for its payer; NotFound otherwise."""
    pk = as_uuid(purchase_id)
    if user.tenant_id is None or pk is None:
        raise NotFound("No such purchase.", "purchase_id")
    purchase = (
        Purchase.objects.select_related("package", "payer").filter(tenant_id=user.tenant_id, pk=pk).first()
    )
    if purchase is None:
        raise NotFound("No such purchase.", "purchase_id")
    try:
        payer_for_user(user=user, payer_id=purchase.payer_id)
    except NotFound:
        raise NotFound("No such purchase.", "purchase_id") from None
    return purchase


# --- the statement ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    at: dt.datetime
    kind: str
    reference: str
    memo: str
    purpose: str
    unit: str
    amount: int
    balance_after: int

    @property
    def shown(self) -> str:
        return format_amount(self.amount, self.unit)

    @property
    def balance_shown(self) -> str:
        return format_amount(self.balance_after, self.unit)


@dataclass(frozen=True)
class Sparkline:
    """The balance of one account over time as an SVG polyline (integer coordinates)."""

    label: str
    unit: str
    points: str
    width: int
    height: int
    low: int
    high: int
    last: int
    count: int


@dataclass(frozen=True)
class Statement:
    payer: PayerAccount
    balances: list[tuple[str, str, int, str]]  # purpose label, unit, amount, shown
    entries: list[Entry]
    purchases: list[Purchase]
    charges: list[BookingCharge]
    refunds: list[Entry]
    sparklines: list[Sparkline]
    page: int = 1
    pages: int = 1
    total_entries: int = 0


def _sparkline(label: str, unit: str, series: list[int], width: int = 300, height: int = 60) -> Sparkline:
    values = [0, *series]  # every account starts at zero
    low, high = min(values), max(values)
    span = high - low or 1
    step = width / max(len(values) - 1, 1)
    pad = 4
    points = " ".join(
        f"{round(i * step)},{round(pad + (height - 2 * pad) * (high - v) / span)}"
        for i, v in enumerate(values)
    )
    return Sparkline(
        label=label,
        unit=unit,
        points=points,
        width=width,
        height=height,
        low=low,
        high=high,
        last=values[-1],
        count=len(series),
    )


STATEMENT_PAGE = 200


def statement(*, payer: PayerAccount, limit: int = STATEMENT_PAGE, page: int = 1) -> Statement:
    """Everything a payer's statement shows, newest first, with each line's running balance;
    ``page`` of the entries, ``limit`` a page (a page past the last is the last)."""
    lines = list(
        PostingLine.objects.filter(account__payer=payer, account__purpose__in=PAYER_PURPOSES)
        .select_related("posting", "account")
        .order_by("posting__created_at", "posting_id", "id")
    )
    running: dict[tuple[str, str], int] = defaultdict(int)
    series: dict[tuple[str, str], list[int]] = defaultdict(list)
    entries = []
    for line in lines:
        key = (line.account.purpose, line.unit)
        running[key] += line.amount
        series[key].append(running[key])
        entries.append(
            Entry(
                at=line.posting.created_at,
                kind=line.posting.kind,
                reference=line.posting.reference,
                memo=line.posting.memo,
                purpose=line.account.get_purpose_display(),
                unit=line.unit,
                amount=line.amount,
                balance_after=running[key],
            )
        )
    accounts = LedgerAccount.objects.filter(payer=payer, purpose__in=PAYER_PURPOSES).order_by(
        "purpose", "unit"
    )
    balances = [
        (row.get_purpose_display(), row.unit, row.balance, format_amount(row.balance, row.unit))
        for row in accounts
    ]
    sparklines = [
        _sparkline(f"{P(purpose).label} ({unit})", unit, values)
        for (purpose, unit), values in sorted(series.items())
        if purpose in (P.CREDIT, P.RECEIVABLE)
    ]
    entries.reverse()
    pages = max(1, -(-len(entries) // limit))
    page = min(max(page, 1), pages)
    return Statement(
        payer=payer,
        balances=balances,
        entries=entries[(page - 1) * limit : page * limit],
        page=page,
        pages=pages,
        total_entries=len(entries),
        purchases=list(
            Purchase.objects.filter(payer=payer).select_related("package").order_by("-created_at")
        ),
        charges=list(
            BookingCharge.objects.filter(payer=payer)
            .select_related("session", "student")
            .order_by("-session__start", "id")[:limit]
        ),
        refunds=[entry for entry in entries if entry.kind == "refund"],
        sparklines=sparklines,
    )


@dataclass(frozen=True)
class RefundQuote:
    unit: str
    held: int  # reserved credit or authorised card amount for the student's place
    refund: int  # what a cancellation now gives back
    late: bool
    notice_hours: int


def refund_quote(
    *,
    charge: BookingCharge | None,
    start: dt.datetime,
    now: dt.datetime,
    notice_hours: int,
    late_cancel_percent: int,
) -> RefundQuote:
    """What cancelling the place now would give back, by the tenant's policy."""
    from tutoring_core.payments.protocol.ledger import split_forfeit

    late = start - now < dt.timedelta(hours=notice_hours)
    if charge is None or charge.status not in (
        BookingCharge.Status.RESERVED,
        BookingCharge.Status.AUTHORISED,
    ):
        return RefundQuote(
            unit=charge.unit if charge else "", held=0, refund=0, late=late, notice_hours=notice_hours
        )
    _used, back = split_forfeit(charge.amount, late_cancel_percent if late else 0)
    return RefundQuote(
        unit=charge.unit, held=charge.amount, refund=back, late=late, notice_hours=notice_hours
    )
