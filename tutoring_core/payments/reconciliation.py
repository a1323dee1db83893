"""The nightly comparison of the ledger with Stripe (issue 16, point 4).

For each tenant paid through Stripe it re-reads every card purchase and card booking from
Stripe (status, captured, refunded) and every PaymentIntent of the last days that names
the tenant, and stores each difference as a ``ReconciliationDifference`` (listed in the
admin, counted in the audit log). It changes nothing else: a person decides what a
difference means (a webhook that never came, a refund made in Stripe's dashboard).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.db.models import Sum
from django.utils import timezone

from tutoring_core.accounts.api import audit_record, tenant_by_id
from tutoring_core.payments.models import (
    BookingCharge,
    LedgerAccount,
    PaymentSettings,
    PostingLine,
    Purchase,
    Reconciliation,
    ReconciliationDifference,
)

K = ReconciliationDifference.Kind
LOOKBACK = dt.timedelta(days=3)  # intents the ledger may not know: those of the last days


@dataclass(frozen=True)
class Found:
    kind: str
    subject: str
    provider_ref: str
    currency: str
    ledger_minor: int
    provider_minor: int
    detail: str


def _captured_in_ledger(tenant_id: uuid.UUID, reference: str) -> int:
    total = PostingLine.objects.filter(
        posting__tenant_id=tenant_id,
        posting__reference=reference,
        account__purpose=LedgerAccount.Purpose.INCOME,
    ).aggregate(total=Sum("amount"))["total"]
    return int(total or 0)


def _purchases(tenant_id: uuid.UUID, provider: object) -> tuple[list[Found], set[str], int]:
    found, known, checked = [], set(), 0
    rows = (
        Purchase.objects.filter(tenant_id=tenant_id, provider="stripe")
        .exclude(provider_ref="")
        .order_by("pk")
    )
    for purchase in rows:
        checked += 1
        known.add(purchase.provider_ref)
        status, captured, refunded = provider.payment_totals(purchase.provider_ref)  # type: ignore[attr-defined]
        subject = f"purchase:{purchase.pk}"
        cur = purchase.currency
        paid_here = purchase.status == Purchase.Status.PAID
        ledger_net = purchase.amount_minor - purchase.refunded_minor if paid_here else 0
        stripe_net = captured - refunded if status == "succeeded" else 0
        if paid_here and status != "succeeded":
            found.append(
                Found(
                    K.MISSING_AT_PROVIDER,
                    subject,
                    purchase.provider_ref,
                    cur,
                    ledger_net,
                    0,
                    f"Paid in the ledger; Stripe says {status}.",
                )
            )
        elif status == "succeeded" and not paid_here:
            found.append(
                Found(
                    K.MISSING_IN_LEDGER,
                    subject,
                    purchase.provider_ref,
                    cur,
                    0,
                    stripe_net,
                    f"Stripe took the payment; the purchase is {purchase.status}.",
                )
            )
        elif paid_here and refunded != purchase.refunded_minor:
            found.append(
                Found(
                    K.REFUND,
                    subject,
                    purchase.provider_ref,
                    cur,
                    purchase.refunded_minor,
                    refunded,
                    f"Refunded {purchase.refunded_minor} in the ledger, {refunded} at Stripe.",
                )
            )
        elif paid_here and captured != purchase.amount_minor:
            found.append(
                Found(
                    K.AMOUNT,
                    subject,
                    purchase.provider_ref,
                    cur,
                    purchase.amount_minor,
                    captured,
                    f"Charged {purchase.amount_minor} in the ledger, {captured} at Stripe.",
                )
            )
    return found, known, checked


def _bookings(tenant_id: uuid.UUID, provider: object) -> tuple[list[Found], set[str], int]:
    found, known, checked = [], set(), 0
    rows = BookingCharge.objects.filter(tenant_id=tenant_id).exclude(payment_intent_id="").order_by("pk")
    for charge in rows:
        checked += 1
        known.add(charge.payment_intent_id)
        status, captured, refunded = provider.payment_totals(charge.payment_intent_id)  # type: ignore[attr-defined]
        base = f"booking:{charge.session_id}:{charge.student_id}"
        ledger_net = _captured_in_ledger(tenant_id, f"{base}:captured") - charge.refunded_minor
        stripe_net = captured - refunded if status == "succeeded" else 0
        finished = charge.status in (BookingCharge.Status.SETTLED, BookingCharge.Status.RELEASED)
        if finished and status == "requires_capture":
            found.append(
                Found(
                    K.UNCAPTURED,
                    base,
                    charge.payment_intent_id,
                    charge.unit,
                    charge.consumed,
                    0,
                    "The session is settled but the card authorisation is still open.",
                )
            )
        elif ledger_net != stripe_net:
            found.append(
                Found(
                    K.AMOUNT,
                    base,
                    charge.payment_intent_id,
                    charge.unit,
                    ledger_net,
                    stripe_net,
                    f"Kept {ledger_net} in the ledger, {stripe_net} at Stripe ({status}).",
                )
            )
    return found, known, checked


def reconcile_tenant(*, tenant_id: uuid.UUID, now: dt.datetime | None = None) -> Reconciliation:
    """Compare one tenant's ledger with Stripe; store and return what differs."""
    from tutoring_core.payments.providers import StripeProvider

    moment = now or timezone.now()
    provider = StripeProvider()
    run = Reconciliation.objects.create(tenant_id=tenant_id, started_at=moment)
    found, known, checked = _purchases(tenant_id, provider)
    more, known_too, checked_too = _bookings(tenant_id, provider)
    found += more
    known |= known_too
    checked += checked_too
    since = int((moment - LOOKBACK).timestamp())
    for intent_id, status, metadata in provider.intents_since(created_after=since):
        if metadata.get("tenant") == str(tenant_id) and intent_id not in known and status == "succeeded":
            _s, captured, refunded = provider.payment_totals(intent_id)
            found.append(
                Found(
                    K.MISSING_IN_LEDGER,
                    f"intent:{intent_id}",
                    intent_id,
                    "",
                    0,
                    captured - refunded,
                    "Stripe took a payment no purchase or booking of the ledger knows.",
                )
            )
    ReconciliationDifference.objects.bulk_create(
        [
            ReconciliationDifference(
                reconciliation=run,
                tenant_id=tenant_id,
                kind=item.kind,
                subject=item.subject,
                provider_ref=item.provider_ref,
                currency=item.currency,
                ledger_minor=item.ledger_minor,
                provider_minor=item.provider_minor,
                detail=item.detail[:300],
            )
            for item in found
        ]
    )
    Reconciliation.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(), checked=checked, differences=len(found)
    )
    run.refresh_from_db()
    audit_record(
        tenant=tenant_by_id(tenant_id),
        actor=None,
        action="payments.reconcile",
        target=run,
        details={"checked": checked, "differences": len(found)},
    )
    return run


def reconcile_all() -> list[Reconciliation]:
    """Every tenant whose payments go through Stripe, one after another."""
    tenants = PaymentSettings.objects.filter(provider=PaymentSettings.Provider.STRIPE).values_list(
        "tenant_id", flat=True
    )
    return [reconcile_tenant(tenant_id=tenant_id) for tenant_id in tenants.order_by("tenant_id")]
