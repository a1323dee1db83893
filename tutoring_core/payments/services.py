"""Payments writes: purchases, booking reservations and settlement, refunds, webhooks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from tutoring_core.accounts.api import audit_record, is_district_admin
from tutoring_core.accounts.models import User
from tutoring_core.payments import ledger, selectors
from tutoring_core.payments.errors import (
    InsufficientCredit,
    InvalidInput,
    NotAllowed,
    NotFound,
    PaymentFailed,
)
from tutoring_core.payments.models import (
    BookingCharge,
    LedgerAccount,
    Package,
    PayerAccount,
    PayerMember,
    PaymentSettings,
    Price,
    Purchase,
    TutorPayee,
    WebhookEvent,
)
from tutoring_core.payments.protocol.ledger import forfeit_percent, platform_fee, split_forfeit
from tutoring_core.rows import save_changed

P = LedgerAccount.Purpose


def settings_for(tenant_id: uuid.UUID) -> PaymentSettings:
    found = PaymentSettings.objects.filter(tenant_id=tenant_id).first()
    if found is None:  # unsaved defaults: grant-funded unless the deployment says otherwise
        found = PaymentSettings(tenant_id=tenant_id, provider=settings.PAYMENTS_PROVIDER)
    return found


def payer_for_student(*, tenant_id: uuid.UUID, student_id: uuid.UUID) -> PayerAccount | None:
    member = (
        PayerMember.objects.select_related("payer")
        .filter(tenant_id=tenant_id, user_id=student_id)
        .order_by("payer__created_at", "id")
        .first()
    )
    return member.payer if member else None


def price_for(*, tenant_id: uuid.UUID, tutor_id: uuid.UUID, subject: str, duration_min: int) -> Price | None:
    """The most specific price: tutor and subject, tutor, subject, then any tutor and subject."""
    rows = list(Price.objects.filter(tenant_id=tenant_id, duration_min=duration_min))

    def rank(row: Price) -> int:
        if row.tutor_id not in (None, tutor_id) or row.subject not in ("", subject):
            return 99
        return (0 if row.tutor_id else 2) + (0 if row.subject else 1)

    ranked = sorted((rank(row), row.pk, row) for row in rows)
    return ranked[0][2] if ranked and ranked[0][0] < 99 else None


def _admin_only(actor: User, what: str) -> None:
    if not is_district_admin(actor):
        raise NotAllowed(f"Only a district admin may {what}.", "actor")


def _tenant_of(actor: User) -> uuid.UUID:
    if actor.tenant_id is None:
        raise NotFound("No such payer account.", "payer_id")
    return actor.tenant_id


# --- purchases ---------------------------------------------------------------------------------


def _grant_credits(purchase: Purchase, actor: User | None) -> None:
    package = purchase.package
    tenant_id = purchase.tenant_id
    credit = ledger.account(tenant_id=tenant_id, purpose=P.CREDIT, unit=package.unit, payer=purchase.payer)
    issued = ledger.account(tenant_id=tenant_id, purpose=P.ISSUED, unit=package.unit)
    ledger.post(
        tenant_id=tenant_id,
        reference=f"purchase:{purchase.pk}:credit",
        kind="purchase",
        lines=[(issued, -package.quantity), (credit, package.quantity)],
        memo=f"{package.name} for {purchase.payer.name}",
        actor=actor,
    )


def _money_in(purchase: Purchase, *, source: str, actor: User | None) -> None:
    """The money side of a paid or invoiced purchase."""
    if purchase.amount_minor == 0:
        return
    tenant_id = purchase.tenant_id
    income = ledger.account(tenant_id=tenant_id, purpose=P.INCOME, unit=purchase.currency)
    if source == "invoice":
        owed = ledger.account(
            tenant_id=tenant_id, purpose=P.RECEIVABLE, unit=purchase.currency, payer=purchase.payer
        )
        lines = [(owed, -purchase.amount_minor), (income, purchase.amount_minor)]
    else:
        provider = ledger.account(
            tenant_id=tenant_id, purpose=P.EXTERNAL, unit=purchase.currency, owner=f"provider:{source}"
        )
        lines = [(provider, -purchase.amount_minor), (income, purchase.amount_minor)]
    ledger.post(
        tenant_id=tenant_id,
        reference=f"purchase:{purchase.pk}:money",
        kind="purchase",
        lines=lines,
        actor=actor,
    )


@transaction.atomic
def purchase_start(*, actor: User, payer_id: Any, package_id: Any, purchase_order: str = "") -> Purchase:
    """Buy a package for a payer with the tenant's provider.

    none: credits are granted at once (a program's own grant); invoice: credits at once and an
    invoice owed; stripe: a PaymentIntent the browser confirms (Stripe Elements), credits once
    Stripe says it succeeded (``purchase_sync``)."""
    payer = selectors.payer_for_user(user=actor, payer_id=payer_id)
    package = (
        Package.objects.filter(tenant_id=_tenant_of(actor), pk=package_id, is_active=True).first()
        if selectors.as_uuid(package_id)
        else None
    )
    if package is None:
        raise NotFound("No such package.", "package_id")
    if not isinstance(purchase_order, str) or len(purchase_order) > 100:
        raise InvalidInput(
            "Give the purchase order number as text of at most 100 characters.", "purchase_order"
        )
    provider = settings_for(_tenant_of(actor)).provider
    purchase = Purchase.objects.create(
        tenant_id=_tenant_of(actor),
        payer=payer,
        package=package,
        amount_minor=package.amount_minor,
        currency=package.currency,
        provider=provider,
        purchase_order=purchase_order,
        created_by=actor,
    )
    if provider == PaymentSettings.Provider.STRIPE and package.amount_minor > 0:
        from tutoring_core.payments.providers import StripeProvider

        stripe_provider = StripeProvider()
        intent = stripe_provider.intent_create(
            key=f"purchase:{purchase.pk}:intent",
            amount=package.amount_minor,
            currency=package.currency,
            metadata={"purchase": str(purchase.pk), "tenant": str(purchase.tenant_id)},
            # The payer's Stripe customer, so a card saved while paying can pay again.
            customer=_customer(payer, stripe_provider),
        )
        save_changed(purchase, {"provider_ref": intent.id})
    elif provider == PaymentSettings.Provider.INVOICE:
        save_changed(
            purchase,
            {"status": Purchase.Status.INVOICED, "provider_ref": f"INV-{purchase.pk.hex[:10].upper()}"},
        )
        _money_in(purchase, source="invoice", actor=actor)
        _grant_credits(purchase, actor)
    else:
        save_changed(purchase, {"status": Purchase.Status.PAID})
        _money_in(purchase, source=provider, actor=actor)
        _grant_credits(purchase, actor)
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="payments.purchase.start",
        target=purchase,
        details={"package": str(package.pk), "provider": provider, "amount": package.amount_minor},
    )
    return purchase


@transaction.atomic
def invoice_mark_paid(*, actor: User, purchase_id: Any) -> Purchase:
    _admin_only(actor, "record an invoice as paid")
    purchase = (
        Purchase.objects.select_for_update().filter(tenant_id=_tenant_of(actor), pk=purchase_id).first()
        if selectors.as_uuid(purchase_id)
        else None
    )
    if purchase is None:
        raise NotFound("No such purchase.", "purchase_id")
    if purchase.status == Purchase.Status.PAID:
        return purchase
    if purchase.status != Purchase.Status.INVOICED:
        raise InvalidInput(
            f"The purchase is {purchase.get_status_display().lower()}, not invoiced.", "purchase_id"
        )
    owed = ledger.account(
        tenant_id=purchase.tenant_id, purpose=P.RECEIVABLE, unit=purchase.currency, payer=purchase.payer
    )
    bank = ledger.account(
        tenant_id=purchase.tenant_id, purpose=P.EXTERNAL, unit=purchase.currency, owner="provider:invoice"
    )
    if purchase.amount_minor:
        ledger.post(
            tenant_id=purchase.tenant_id,
            reference=f"purchase:{purchase.pk}:invoice-paid",
            kind="invoice_paid",
            lines=[(bank, -purchase.amount_minor), (owed, purchase.amount_minor)],
            actor=actor,
        )
    save_changed(purchase, {"status": Purchase.Status.PAID})
    audit_record(tenant=actor.tenant, actor=actor, action="payments.invoice.paid", target=purchase)
    return purchase


@transaction.atomic
def purchase_sync(*, purchase_id: uuid.UUID) -> Purchase:
    """Bring a Stripe purchase in line with Stripe's own state of its PaymentIntent.

    Webhooks only say "look again": the state is re-read from Stripe, so a replayed or
    out-of-order event cannot grant credit twice nor for a payment that did not succeed."""
    from tutoring_core.payments.providers import StripeProvider

    purchase = Purchase.objects.select_for_update().select_related("package", "payer").get(pk=purchase_id)
    if purchase.status != Purchase.Status.PENDING or not purchase.provider_ref:
        return purchase
    intent = StripeProvider().intent_retrieve(purchase.provider_ref)
    if intent.status == "succeeded" and intent.amount_received == purchase.amount_minor:
        _money_in(purchase, source="stripe", actor=None)
        _grant_credits(purchase, None)
        save_changed(purchase, {"status": Purchase.Status.PAID})
    elif intent.status == "canceled":
        save_changed(purchase, {"status": Purchase.Status.FAILED})
    return purchase


# --- cards through Stripe Elements (the card number never reaches the hub) ----------------------


def _customer(payer: PayerAccount, provider: Any) -> str:
    """The payer's Stripe customer, made on first use (the key makes a retry find the same one)."""
    if not payer.stripe_customer_id:
        customer = provider.customer_create(
            key=f"payer:{payer.pk}:customer",
            name=payer.name,
            metadata={"payer": str(payer.pk), "tenant": str(payer.tenant_id)},
        )
        save_changed(payer, {"stripe_customer_id": customer})
    return payer.stripe_customer_id


@dataclass(frozen=True)
class CardSetup:
    setup_intent_id: str
    client_secret: str


def card_setup_start(*, actor: User, payer_id: Any, purchase_id: Any = None) -> CardSetup:
    """A SetupIntent the browser confirms with Stripe Elements (confirmCardSetup): the card
    goes from the payer's browser to Stripe; the hub learns only the payment method's id.
    For a purchase the key is the purchase's (a reload finds the same intent)."""
    from tutoring_core.payments.providers import StripeProvider

    payer = selectors.payer_for_user(user=actor, payer_id=payer_id)
    provider = StripeProvider()
    customer = _customer(payer, provider)
    # A card saved apart from a purchase is a new action each time the page is opened.
    key = f"purchase:{purchase_id}:setup" if purchase_id else f"payer:{payer.pk}:setup:{uuid.uuid4()}"
    setup_id, secret = provider.setup_intent_create(key=key, customer=customer)
    return CardSetup(setup_intent_id=setup_id, client_secret=secret)


def card_setup_finish(*, actor: User, payer_id: Any, setup_intent_id: Any, save: bool) -> str:
    """The payment method of a SetupIntent the browser confirmed, re-read from Stripe (the
    browser's word is not taken); saved on the payer account for later when ``save``."""
    from tutoring_core.payments.providers import StripeProvider

    payer = selectors.payer_for_user(user=actor, payer_id=payer_id)
    if not isinstance(setup_intent_id, str) or not setup_intent_id.startswith("seti_"):
        raise InvalidInput("Give the card setup's id (seti_...).", "setup_intent")
    status, customer, method = StripeProvider().setup_intent_state(setup_intent_id)
    if not payer.stripe_customer_id or customer != payer.stripe_customer_id:
        raise InvalidInput("That card setup belongs to another payer.", "setup_intent")
    if status != "succeeded" or not method:
        raise PaymentFailed(f"The card was not set up (Stripe says {status or 'nothing'}); try again.")
    if save:
        save_changed(payer, {"stripe_payment_method_id": method})
        audit_record(tenant=actor.tenant, actor=actor, action="payments.card.saved", target=payer)
    return method


@dataclass(frozen=True)
class PayStep:
    """Where a card payment stands: ``requires_action`` hands the browser the client secret
    for Stripe.js confirmCardPayment (3-D Secure), then the page asks the hub to sync."""

    status: str
    client_secret: str
    purchase_status: str


def purchase_pay_card(
    *,
    actor: User,
    purchase_id: Any,
    setup_intent_id: str = "",
    use_saved: bool = False,
    save_card: bool = False,
) -> PayStep:
    """Pay a pending Stripe purchase with the card the browser just set up, or the saved one."""
    from tutoring_core.payments.providers import StripeProvider

    purchase = selectors.purchase_for_user(user=actor, purchase_id=purchase_id)
    if purchase.provider != "stripe" or not purchase.provider_ref:
        raise InvalidInput("This purchase is not paid by card.", "purchase_id")
    if purchase.status != Purchase.Status.PENDING:
        return PayStep(status="succeeded", client_secret="", purchase_status=purchase.status)
    payer = purchase.payer
    if use_saved:
        if not payer.stripe_payment_method_id:
            raise InvalidInput("No card is saved for this payer account.", "use_saved")
        method = payer.stripe_payment_method_id
    else:
        method = card_setup_finish(
            actor=actor, payer_id=payer.pk, setup_intent_id=setup_intent_id, save=save_card
        )
    intent = StripeProvider().intent_pay_with(
        key=f"purchase:{purchase.pk}:confirm:{method}", intent_id=purchase.provider_ref, payment_method=method
    )
    purchase = purchase_sync(purchase_id=purchase.pk)
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="payments.purchase.card",
        target=purchase,
        details={"status": intent.status},
    )
    secret = intent.client_secret if intent.status == "requires_action" else ""
    return PayStep(status=intent.status, client_secret=secret, purchase_status=purchase.status)


@transaction.atomic
def purchase_refund(*, actor: User, purchase_id: Any, amount_minor: int, credits: int) -> Purchase:
    """Refund part of a paid purchase and take back ``credits`` unused credits.

    Refused (nothing written, nothing sent) when the payer has spent more credit than it
    would take back, or the amount exceeds what is left to refund."""
    _admin_only(actor, "refund a purchase")
    purchase = (
        Purchase.objects.select_for_update()
        .select_related("package", "payer")
        .filter(tenant_id=_tenant_of(actor), pk=purchase_id)
        .first()
    )
    if purchase is None:
        raise NotFound("No such purchase.", "purchase_id")
    if type(amount_minor) is not int or type(credits) is not int or amount_minor < 0 or credits < 0:
        raise InvalidInput(
            "Give the refund and the credits to take back as whole numbers, 0 or more.", "amount_minor"
        )
    if amount_minor == 0 and credits == 0:
        raise InvalidInput("Give an amount to refund or credits to take back.", "amount_minor")
    if purchase.status not in (Purchase.Status.PAID, Purchase.Status.INVOICED):
        raise InvalidInput(
            f"The purchase is {purchase.get_status_display().lower()}; only a paid one is refunded.",
            "purchase_id",
        )
    left = purchase.amount_minor - purchase.refunded_minor
    if amount_minor > left:
        raise InvalidInput(
            f"At most {left} {purchase.currency} minor units are left to refund.", "amount_minor"
        )
    number = Purchase.objects.filter(pk=purchase.pk).values_list("refunded_minor", flat=True)[0]
    reference = f"purchase:{purchase.pk}:refund:{number}:{amount_minor}:{credits}"
    tenant_id = purchase.tenant_id
    if credits:
        credit = ledger.account(
            tenant_id=tenant_id, purpose=P.CREDIT, unit=purchase.package.unit, payer=purchase.payer
        )
        issued = ledger.account(tenant_id=tenant_id, purpose=P.ISSUED, unit=purchase.package.unit)
        ledger.post(
            tenant_id=tenant_id,
            reference=reference + ":credit",
            kind="refund",
            lines=[(credit, -credits), (issued, credits)],
            actor=actor,
        )
    if amount_minor:
        source = "invoice" if purchase.provider == "invoice" else purchase.provider
        if purchase.status == Purchase.Status.INVOICED:  # not paid yet: the invoice shrinks
            other = ledger.account(
                tenant_id=tenant_id, purpose=P.RECEIVABLE, unit=purchase.currency, payer=purchase.payer
            )
        else:
            other = ledger.account(
                tenant_id=tenant_id, purpose=P.EXTERNAL, unit=purchase.currency, owner=f"provider:{source}"
            )
        income = ledger.account(tenant_id=tenant_id, purpose=P.INCOME, unit=purchase.currency)
        ledger.post(
            tenant_id=tenant_id,
            reference=reference + ":money",
            kind="refund",
            lines=[(income, -amount_minor), (other, amount_minor)],
            actor=actor,
        )
        Purchase.objects.filter(pk=purchase.pk).update(refunded_minor=F("refunded_minor") + amount_minor)
        if purchase.provider == "stripe" and purchase.provider_ref:
            from tutoring_core.payments.providers import StripeProvider

            # Last: a refusal by Stripe rolls the postings back; the key makes a retry safe.
            StripeProvider().refund_create(
                key=reference, intent_id=purchase.provider_ref, amount=amount_minor
            )
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="payments.purchase.refund",
        target=purchase,
        details={"amount": amount_minor, "credits": credits},
    )
    purchase.refresh_from_db()
    return purchase


# --- bookings ------------------------------------------------------------------------------------


def booking_reserve(
    *,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    student_id: uuid.UUID,
    tutor_id: uuid.UUID,
    subject: str,
    duration_min: int,
) -> BookingCharge | None:
    """Reserve what the tenant's policy needs for one student's place (inside the booking's
    transaction). Raises InsufficientCredit (402) with the reason; the booking then rolls back."""
    policy = settings_for(tenant_id)
    if policy.booking_requires == PaymentSettings.Requires.NONE:
        return None
    existing = BookingCharge.objects.filter(session_id=session_id, student_id=student_id).first()
    if existing is not None:
        return existing
    payer = payer_for_student(tenant_id=tenant_id, student_id=student_id)
    if payer is None:
        raise InsufficientCredit(
            "Booking here needs prepaid credit, and this student has no payer account; ask the district to add one.",
            "student",
        )
    price = price_for(tenant_id=tenant_id, tutor_id=tutor_id, subject=subject, duration_min=duration_min)
    if policy.booking_requires == PaymentSettings.Requires.CARD:
        return _authorise_card(policy, payer, price, session_id, student_id, tutor_id, duration_min)
    unit, amount = _credit_needed(payer, price, duration_min)
    credit = ledger.account(tenant_id=tenant_id, purpose=P.CREDIT, unit=unit, payer=payer)
    reserved = ledger.account(tenant_id=tenant_id, purpose=P.RESERVED, unit=unit, payer=payer)
    ledger.post(
        tenant_id=tenant_id,
        reference=f"booking:{session_id}:{student_id}:reserve",
        kind="reserve",
        lines=[(credit, -amount), (reserved, amount)],
    )
    return BookingCharge.objects.create(
        tenant_id=tenant_id,
        session_id=session_id,
        student_id=student_id,
        tutor_id=tutor_id,
        payer=payer,
        unit=unit,
        amount=amount,
    )


def _credit_needed(payer: PayerAccount, price: Price | None, duration_min: int) -> tuple[str, int]:
    """Which credit pays for a session: a session credit, else minutes, else prepaid money."""
    balances = dict(
        LedgerAccount.objects.filter(payer=payer, purpose=P.CREDIT).values_list("unit", "balance")
    )
    if balances.get("session", 0) >= 1:
        return "session", 1
    if balances.get("minute", 0) >= duration_min:
        return "minute", duration_min
    if price is not None and balances.get(price.currency, 0) >= price.amount_minor and price.amount_minor > 0:
        return price.currency, price.amount_minor
    have = ", ".join(f"{amount} {unit}" for unit, amount in sorted(balances.items()) if amount) or "none"
    raise InsufficientCredit(
        f"Not enough credit for a {duration_min}-minute session: it needs 1 session or {duration_min} minutes"
        + (f" or {price.amount_minor} {price.currency} minor units" if price else "")
        + f"; {payer.name} has {have}. Buy a package first.",
        "student",
    )


def _authorise_card(
    policy: PaymentSettings,
    payer: PayerAccount,
    price: Price | None,
    session_id: uuid.UUID,
    student_id: uuid.UUID,
    tutor_id: uuid.UUID,
    duration_min: int,
) -> BookingCharge:
    from tutoring_core.payments.providers import StripeProvider

    if price is None:
        raise InsufficientCredit(
            f"No price is set for {duration_min}-minute sessions; ask the district.", "duration"
        )
    if not (payer.stripe_customer_id and payer.stripe_payment_method_id):
        raise InsufficientCredit("Save a card for this payer account before booking.", "student")
    # The call happens inside the booking's transaction so that a declined card refuses the
    # booking; if the transaction fails after it, the uncaptured authorisation lapses and
    # the nightly reconciliation cancels it.
    # A tutor with a Connect Express account is paid by the charge itself (a destination
    # charge); the platform keeps its share as the application fee.
    payee = TutorPayee.objects.filter(tenant_id=policy.tenant_id, tutor_id=tutor_id).first()
    destination = payee.stripe_account_id if payee else ""
    fee = platform_fee(price.amount_minor, policy.tutor_share_percent) if destination else 0
    intent = StripeProvider().intent_create(
        key=f"booking:{session_id}:{student_id}:authorize",
        amount=price.amount_minor,
        currency=price.currency,
        metadata={"session": str(session_id), "student": str(student_id), "tenant": str(policy.tenant_id)},
        customer=payer.stripe_customer_id,
        payment_method=payer.stripe_payment_method_id,
        manual_capture=True,
        confirm=True,
        destination=destination,
        application_fee=fee if destination else None,
    )
    if intent.status != "requires_capture":
        raise PaymentFailed(f"The card was not authorised (Stripe says {intent.status}); use another card.")
    return BookingCharge.objects.create(
        tenant_id=policy.tenant_id,
        session_id=session_id,
        student_id=student_id,
        tutor_id=tutor_id,
        payer=payer,
        unit=price.currency,
        amount=price.amount_minor,
        status=BookingCharge.Status.AUTHORISED,
        payment_intent_id=intent.id,
        destination=destination,
        application_fee_minor=fee,
    )


def booking_finish(
    *, session_id: uuid.UUID, outcome: str, student_id: uuid.UUID | None = None
) -> list[BookingCharge]:
    """Settle (attended), refund (cancel in time, tutor's no-show) or forfeit by policy (late
    cancel, student's no-show) the charges of a session, or of one student's place. Called
    inside scheduling's transaction. Running it again with the same outcome changes nothing;
    a different outcome posts a correction."""
    charges = BookingCharge.objects.select_for_update().filter(session_id=session_id).order_by("pk")
    if student_id is not None:
        charges = charges.filter(student_id=student_id)
    done = []
    for charge in charges:
        policy = settings_for(charge.tenant_id)
        percent = forfeit_percent(
            outcome=outcome,
            late_cancel_percent=policy.late_cancel_forfeit_percent,
            no_show_percent=policy.no_show_forfeit_percent,
        )
        if charge.status == BookingCharge.Status.AUTHORISED or charge.payment_intent_id:
            done.append(_finish_card(charge, outcome, percent))
        else:
            done.append(_finish_credit(charge, outcome, percent))
    return done


def _finish_credit(charge: BookingCharge, outcome: str, percent: int) -> BookingCharge:
    tenant_id = charge.tenant_id
    credit = ledger.account(tenant_id=tenant_id, purpose=P.CREDIT, unit=charge.unit, payer=charge.payer)
    reserved = ledger.account(tenant_id=tenant_id, purpose=P.RESERVED, unit=charge.unit, payer=charge.payer)
    consumed = ledger.account(tenant_id=tenant_id, purpose=P.CONSUMED, unit=charge.unit)
    used, back = split_forfeit(charge.amount, percent)
    base = f"booking:{charge.session_id}:{charge.student_id}"
    corrections = charge.corrections
    if charge.status == BookingCharge.Status.RESERVED:
        lines = [(reserved, -charge.amount)]
        if used:
            lines.append((consumed, used))
        if back:
            lines.append((credit, back))
        ledger.post(
            tenant_id=tenant_id, reference=f"{base}:finish", kind="settle" if used else "release", lines=lines
        )
    elif charge.outcome == outcome or used == charge.consumed:
        return charge
    else:
        # A corrected outcome: move the difference between used and given back.
        diff = used - charge.consumed
        lines = [(credit, -diff), (consumed, diff)]
        ledger.post(
            tenant_id=tenant_id,
            reference=f"{base}:correct:{corrections + 1}",
            kind="correction",
            lines=lines,
            memo=f"outcome {charge.outcome or 'none'} -> {outcome}",
        )
        corrections += 1
    save_changed(
        charge,
        {
            "corrections": corrections,
            "consumed": used,
            "outcome": outcome,
            "status": BookingCharge.Status.SETTLED if used else BookingCharge.Status.RELEASED,
        },
    )
    return charge


def _finish_card(charge: BookingCharge, outcome: str, percent: int) -> BookingCharge:
    if charge.status != BookingCharge.Status.AUTHORISED:
        return charge  # captured or cancelled already: Stripe cannot capture twice
    used, _back = split_forfeit(charge.amount, percent)
    save_changed(
        charge,
        {
            "consumed": used,
            "outcome": outcome,
            "status": BookingCharge.Status.SETTLED if used else BookingCharge.Status.RELEASED,
        },
    )
    from tutoring_core.payments.tasks import booking_capture

    transaction.on_commit(lambda: booking_capture.delay(charge.pk))
    return charge


def booking_capture(*, charge_id: int) -> BookingCharge:
    """Capture the used part of a card authorisation, or cancel it when nothing is used."""
    from tutoring_core.payments.providers import StripeProvider

    charge = BookingCharge.objects.get(pk=charge_id)
    provider = StripeProvider()
    base = f"booking:{charge.session_id}:{charge.student_id}"
    intent = provider.intent_retrieve(charge.payment_intent_id)
    if intent.status == "requires_capture":
        if charge.consumed:
            share = settings_for(charge.tenant_id).tutor_share_percent
            intent = provider.intent_capture(
                key=f"{base}:capture",
                intent_id=charge.payment_intent_id,
                amount=charge.consumed,
                # The platform's part of what is captured (a late cancel captures part).
                application_fee=platform_fee(charge.consumed, share) if charge.destination else None,
            )
        else:
            intent = provider.intent_cancel(key=f"{base}:cancel", intent_id=charge.payment_intent_id)
        intent = provider.intent_retrieve(charge.payment_intent_id)  # what Stripe holds now
    if intent.status == "succeeded" and intent.amount_received:
        tenant_id = charge.tenant_id
        ledger.post(
            tenant_id=tenant_id,
            reference=f"{base}:captured",
            kind="capture",
            lines=[
                (
                    ledger.account(
                        tenant_id=tenant_id, purpose=P.EXTERNAL, unit=intent.currency, owner="provider:stripe"
                    ),
                    -intent.amount_received,
                ),
                (
                    ledger.account(tenant_id=tenant_id, purpose=P.INCOME, unit=intent.currency),
                    intent.amount_received,
                ),
            ],
        )
    return charge


@transaction.atomic
def booking_refund(*, actor: User, session_id: Any, student_id: Any, amount_minor: int) -> BookingCharge:
    """Refund part of a captured card booking (a goodwill refund, a corrected outcome).

    For a destination charge the tutor's transfer is reversed in proportion and the
    application fee refunded (``reverse_transfer``), so the refund does not come from the
    platform alone. The key names what was refunded before and now
    (``booking:{session}:{student}:refund:{before}:{amount}``)."""
    from tutoring_core.payments.providers import StripeProvider

    _admin_only(actor, "refund a booking")
    session_pk, student_pk = selectors.as_uuid(session_id), selectors.as_uuid(student_id)
    charge = (
        BookingCharge.objects.select_for_update()
        .filter(tenant_id=_tenant_of(actor), session_id=session_pk, student_id=student_pk)
        .first()
        if session_pk and student_pk
        else None
    )
    if charge is None or not charge.payment_intent_id:
        raise NotFound("No card charge for that student in that session.", "session_id")
    if type(amount_minor) is not int or amount_minor <= 0:
        raise InvalidInput("Give the refund as a whole number of minor units, more than 0.", "amount_minor")
    left = charge.consumed - charge.refunded_minor
    if charge.status != BookingCharge.Status.SETTLED or amount_minor > left:
        raise InvalidInput(
            f"At most {max(left, 0)} {charge.unit} minor units are left to refund.", "amount_minor"
        )
    base = f"booking:{charge.session_id}:{charge.student_id}"
    reference = f"{base}:refund:{charge.refunded_minor}:{amount_minor}"
    tenant_id = charge.tenant_id
    ledger.post(
        tenant_id=tenant_id,
        reference=reference,
        kind="refund",
        lines=[
            (ledger.account(tenant_id=tenant_id, purpose=P.INCOME, unit=charge.unit), -amount_minor),
            (
                ledger.account(
                    tenant_id=tenant_id, purpose=P.EXTERNAL, unit=charge.unit, owner="provider:stripe"
                ),
                amount_minor,
            ),
        ],
        actor=actor,
    )
    save_changed(charge, {"refunded_minor": charge.refunded_minor + amount_minor})
    # Last: a refusal by Stripe rolls the posting back; the key makes a retry safe.
    StripeProvider().refund_create(
        key=reference,
        intent_id=charge.payment_intent_id,
        amount=amount_minor,
        reverse_transfer=bool(charge.destination),
    )
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="payments.booking.refund",
        target=charge.session,
        details={"student": str(charge.student_id), "amount": amount_minor},
    )
    return charge


# --- webhooks ----------------------------------------------------------------------------------


def webhook_record(*, provider: str, event_id: str, type: str, object_id: str) -> WebhookEvent | None:
    """The event's row, or None when this event id was seen before (a replay)."""
    try:
        with transaction.atomic():
            return WebhookEvent.objects.create(
                provider=provider, event_id=event_id, type=type, object_id=object_id
            )
    except IntegrityError:
        return None


def webhook_process(*, event_pk: int) -> str:
    """Act on a recorded Stripe event by re-reading its object from Stripe."""
    event = WebhookEvent.objects.get(pk=event_pk)
    result = "ignored"
    if event.type.startswith("payment_intent."):
        purchase = Purchase.objects.filter(provider="stripe", provider_ref=event.object_id).first()
        if purchase is not None:
            result = f"purchase {purchase_sync(purchase_id=purchase.pk).status}"
        else:
            result = "no purchase for this payment"
    WebhookEvent.objects.filter(pk=event.pk).update(processed_at=timezone.now(), result=result[:300])
    return result
