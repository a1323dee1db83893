"""The nightly comparison of the ledger with Stripe (issue 16, point 4).

For each tenant paid through Stripe it reads a window, not every object ever: the
PaymentIntents and refunds Stripe lists as created in the last ``LOOKBACK`` days (sent as
``created[gte]`` and checked again on what comes back), and re-reads from Stripe (status,
captured, refunded) the card purchases and card bookings that are recent, still open in
the ledger (a purchase awaiting payment, an authorisation not captured or released), or
named by one of those intents or refunds. It stores each difference as a
``ReconciliationDifference`` (listed in the admin, counted in the audit log) and changes
nothing else: a person decides what a difference means (a webhook that never came, a
refund made in Stripe's dashboard).

Older Stripe-side changes to objects the ledger has closed (a dispute or a dashboard refund
months later) are caught by the webhooks (``views.stripe_webhook``: verified, deduplicated,
and ``services.webhook_process`` re-reads the object), and by this job while their refund
or intent is inside the window.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.db.models import Q, Sum
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
LOOKBACK = dt.timedelta(days=3)  # the window: Stripe objects created in the last days


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


def _purchases(
    tenant_id: uuid.UUID, provider: object, since: dt.datetime, active: set[str]
) -> tuple[list[Found], set[str], int]:
    found, known, checked = [], set(), 0
    rows = (
        Purchase.objects.filter(tenant_id=tenant_id, provider="stripe")
        .exclude(provider_ref="")
        .filter(
            Q(created_at__gte=since)
            | Q(updated_at__gte=since)
            | Q(status=Purchase.Status.PENDING)
            | Q(provider_ref__in=active)
        )
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


def _bookings(
    tenant_id: uuid.UUID, provider: object, since: dt.datetime, active: set[str]
) -> tuple[list[Found], set[str], int]:
    found, known, checked = [], set(), 0
    rows = (
        BookingCharge.objects.filter(tenant_id=tenant_id)
        .exclude(payment_intent_id="")
        .filter(
            Q(created_at__gte=since)
            | Q(updated_at__gte=since)
            | Q(status=BookingCharge.Status.AUTHORISED)
            | Q(payment_intent_id__in=active)
        )
        .order_by("pk")
    )
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
    since = moment - LOOKBACK
    recent = provider.intents_since(created_after=int(since.timestamp()))
    # Intents and refunds of the window name the older purchases and bookings they touch.
    active = {intent_id for intent_id, _s, _m in recent} | provider.refunded_intents_since(
        created_after=int(since.timestamp())
    )
    found, known, checked = _purchases(tenant_id, provider, since, active)
    more, known_too, checked_too = _bookings(tenant_id, provider, since, active)
    found += more
    known |= known_too
    checked += checked_too
    for intent_id, status, metadata in recent:
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
