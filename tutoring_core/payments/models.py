"""Payer accounts, a double-entry ledger, packages, prices and provider records (issue 16).

The ledger is append-only: ``Posting`` and ``PostingLine`` rows are inserted and never
updated or deleted (the model and queryset refuse it; a correction is a new posting).
``LedgerAccount.balance`` is the running sum of its lines, moved in the same transaction
as the lines with ``UPDATE ... SET balance = balance + x``; a CHECK constraint
(``balance >= 0`` unless the account may go negative) makes the database refuse any
posting that would overdraw a payer, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import uuid
from typing import Any, NoReturn

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from tutoring_core.accounts.models import Tenant, TimeStamped, User


class PaymentSettings(TimeStamped):
    """A tenant's payment rules; a tenant without a row is grant-funded (nothing to pay)."""

    class Requires(models.TextChoices):
        NONE = "none", "Nothing (grant-funded)"
        CREDIT = "credit", "Prepaid credit"
        CARD = "card", "A card authorised at booking"

    class Provider(models.TextChoices):
        NONE = "none", "None"
        INVOICE = "invoice", "Invoice or purchase order"
        STRIPE = "stripe", "Stripe"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="payment_settings")
    booking_requires = models.CharField(max_length=10, choices=Requires.choices, default=Requires.NONE)
    provider = models.CharField(max_length=10, choices=Provider.choices, default=Provider.NONE)
    currency = models.CharField(max_length=3, default="USD")
    late_cancel_forfeit_percent = models.PositiveSmallIntegerField(
        default=100, validators=[MaxValueValidator(100)]
    )
    no_show_forfeit_percent = models.PositiveSmallIntegerField(
        default=100, validators=[MaxValueValidator(100)]
    )
    # Share of a session's price that goes to the tutor (the rest is the platform's fee).
    tutor_share_percent = models.PositiveSmallIntegerField(default=80, validators=[MaxValueValidator(100)])
    # Printed on invoices: the district's legal name, address and tax id.
    invoice_details = models.TextField(blank=True)
    tax_id = models.CharField(max_length=64, blank=True)
    tax_rate_basis_points = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(10000)])
    # Tutor pay when the student does not come (the tutor was there): this share of the session's pay.
    student_no_show_tutor_percent = models.PositiveSmallIntegerField(
        default=100, validators=[MaxValueValidator(100)]
    )

    class Meta:
        ordering = ["tenant"]
        verbose_name_plural = "payment settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    late_cancel_forfeit_percent__lte=100,
                    no_show_forfeit_percent__lte=100,
                    student_no_show_tutor_percent__lte=100,
                ),
                name="payment_settings_percent",
            ),
            models.CheckConstraint(
                condition=Q(booking_requires__in=["none", "credit", "card"]), name="payment_settings_requires"
            ),
        ]

    def __str__(self) -> str:
        return f"Payment settings of {self.tenant}"


class PayerAccount(TimeStamped):
    """Who pays: a family, a school or a program; its members' bookings draw on its credit."""

    class Kind(models.TextChoices):
        FAMILY = "family", "Family"
        SCHOOL = "school", "School"
        PROGRAM = "program", "Program"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FAMILY)
    name = models.CharField(max_length=200)
    members = models.ManyToManyField(User, through="PayerMember", related_name="payer_accounts")
    stripe_customer_id = models.CharField(max_length=100, blank=True)
    stripe_payment_method_id = models.CharField(max_length=100, blank=True)
    billing_details = models.TextField(blank=True)

    class Meta:
        ordering = ["tenant", "name", "id"]

    def __str__(self) -> str:
        return self.name


class PayerMember(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    payer = models.ForeignKey(PayerAccount, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["payer", "id"]
        constraints = [models.UniqueConstraint(fields=["payer", "user"], name="payer_member_once")]

    def __str__(self) -> str:
        return f"{self.user} pays through {self.payer}"


class LedgerAccount(models.Model):
    class Purpose(models.TextChoices):
        CREDIT = "credit", "Spendable credit"
        RESERVED = "reserved", "Reserved for booked sessions"
        RECEIVABLE = "receivable", "Owed on invoices"
        PREPAID = "prepaid", "Paid in advance"
        ISSUED = "issued", "Credit issued"
        CONSUMED = "consumed", "Credit used"
        INCOME = "income", "Income"
        EXTERNAL = "external", "Payment provider"
        TUTOR_PAYABLE = "tutor_payable", "Owed to tutors"
        TUTOR_COST = "tutor_cost", "Tutor pay earned"
        # Paid out to a tutor beyond what their sessions earned (a correction after payout):
        # minus what the tutor owes back, recovered from their next pay or a transfer reversal.
        TUTOR_RECOVERABLE = "tutor_recoverable", "Owed back by tutors (negative)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    # "tenant", "payer:<uuid>" or "tutor:<uuid>": whose account this is.
    owner = models.CharField(max_length=60)
    payer = models.ForeignKey(
        PayerAccount, on_delete=models.PROTECT, null=True, blank=True, related_name="accounts"
    )
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    unit = models.CharField(max_length=10)
    balance = models.BigIntegerField(default=0)
    may_go_negative = models.BooleanField(default=False)

    class Meta:
        ordering = ["tenant", "owner", "purpose", "unit"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "owner", "purpose", "unit"], name="ledger_account_once"
            ),
            models.CheckConstraint(
                condition=Q(may_go_negative=True) | Q(balance__gte=0), name="ledger_account_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.owner} {self.purpose} ({self.unit})"


class AppendOnlyQuerySet(models.QuerySet[Any]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise TypeError("Ledger rows are append-only: post a correction instead.")

    def delete(self) -> NoReturn:  # type: ignore[override]
        raise TypeError("Ledger rows are append-only: post a correction instead.")


class AppendOnly(models.Model):
    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError("Ledger rows are append-only: post a correction instead.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("Ledger rows are append-only: post a correction instead.")


class Posting(AppendOnly):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    # The domain's name for this movement ("booking:<id>:<student>:reserve"): posting it twice posts once.
    reference = models.CharField(max_length=200)
    kind = models.CharField(max_length=30)
    memo = models.CharField(max_length=300, blank=True)
    corrects = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "reference"], name="posting_reference_once")]

    def __str__(self) -> str:
        return self.reference


class PostingLine(AppendOnly):
    posting = models.ForeignKey(Posting, on_delete=models.PROTECT, related_name="lines")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="lines")
    unit = models.CharField(max_length=10)
    amount = models.BigIntegerField()

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["posting", "id"]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="posting_line_not_zero")]

    def __str__(self) -> str:
        return f"{self.account} {self.amount}"


class Package(TimeStamped):
    """N sessions or N minutes of credit, sold at a price."""

    class Unit(models.TextChoices):
        SESSION = "session", "Sessions"
        MINUTE = "minute", "Minutes"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=10, choices=Unit.choices)
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    amount_minor = models.BigIntegerField(validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3, default="USD")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["tenant", "amount_minor", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="package_quantity_positive"),
            models.CheckConstraint(condition=Q(amount_minor__gte=0), name="package_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class Price(TimeStamped):
    """A session's price; the most specific row wins (tutor and subject, tutor, subject, any)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    tutor = models.ForeignKey(User, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    subject = models.CharField(max_length=200, blank=True)
    duration_min = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    amount_minor = models.BigIntegerField(validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3, default="USD")

    class Meta:
        ordering = ["tenant", "duration_min", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "tutor", "subject", "duration_min"],
                condition=Q(tutor__isnull=False),
                name="price_once_per_tutor",
            ),
            models.UniqueConstraint(
                fields=["tenant", "subject", "duration_min"],
                condition=Q(tutor__isnull=True),
                name="price_once_any_tutor",
            ),
            models.CheckConstraint(condition=Q(amount_minor__gte=0), name="price_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.duration_min} min {self.subject or 'any subject'}: {self.amount_minor} {self.currency}"


class Purchase(TimeStamped):
    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting payment"
        PAID = "paid", "Paid"
        INVOICED = "invoiced", "Invoiced"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    payer = models.ForeignKey(PayerAccount, on_delete=models.PROTECT, related_name="purchases")
    package = models.ForeignKey(Package, on_delete=models.PROTECT, related_name="+")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    provider = models.CharField(max_length=10)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    provider_ref = models.CharField(max_length=100, blank=True)  # PaymentIntent id, invoice number
    purchase_order = models.CharField(max_length=100, blank=True)
    refunded_minor = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(refunded_minor__gte=0, refunded_minor__lte=models.F("amount_minor")),
                name="purchase_refund_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.package} for {self.payer} ({self.status})"


class BookingCharge(TimeStamped):
    """What one student's place in a session holds: reserved credit or an authorised card."""

    class Status(models.TextChoices):
        RESERVED = "reserved", "Reserved"
        AUTHORISED = "authorised", "Card authorised"
        SETTLED = "settled", "Settled"
        RELEASED = "released", "Released"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    session = models.ForeignKey("scheduling.Session", on_delete=models.PROTECT, related_name="+")
    student = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    payer = models.ForeignKey(PayerAccount, on_delete=models.PROTECT, related_name="charges")
    tutor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    unit = models.CharField(max_length=10)
    amount = models.BigIntegerField()
    # What was used up so far (after settling or a late cancel); the rest went back.
    consumed = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RESERVED)
    outcome = models.CharField(max_length=20, blank=True)
    payment_intent_id = models.CharField(max_length=100, blank=True)
    # The tutor's Connect account when the card charge went to them (a destination charge,
    # less the platform's application fee): their pay for this session is settled by Stripe.
    destination = models.CharField(max_length=100, blank=True)
    application_fee_minor = models.BigIntegerField(default=0)
    refunded_minor = models.BigIntegerField(default=0)
    corrections = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["session", "student"], name="booking_charge_once"),
            models.CheckConstraint(
                condition=Q(consumed__gte=0, consumed__lte=models.F("amount")), name="booking_charge_consumed"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.unit} for {self.session_id} ({self.status})"


class WebhookEvent(models.Model):
    """An inbound provider event, once per sender's id (replays are recognised here)."""

    provider = models.CharField(max_length=10)
    event_id = models.CharField(max_length=100)
    type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-received_at", "id"]
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="webhook_event_once")]

    def __str__(self) -> str:
        return f"{self.provider} {self.type} {self.event_id}"


# --- tutor pay -------------------------------------------------------------------------------


class TutorPayee(TimeStamped):
    """How a tutor is paid: an hourly rate (else the tenant's share of the session price) and,
    for Stripe, their Connect Express account."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    tutor = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    hourly_rate_minor = models.BigIntegerField(null=True, blank=True, validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3, default="USD")
    stripe_account_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["tenant", "tutor"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "tutor"], name="tutor_payee_once"),
            models.CheckConstraint(
                condition=Q(hourly_rate_minor__isnull=True) | Q(hourly_rate_minor__gte=0),
                name="tutor_payee_rate_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"Pay of {self.tutor}"


class PayRun(TimeStamped):
    """Tutor pay for sessions that started in [period_start, period_end) (dates, UTC)."""

    class Status(models.TextChoices):
        OPEN = "open", "Calculated"
        PAID = "paid", "Paid out"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    period_start = models.DateField()
    period_end = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["tenant", "-period_start", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "period_start", "period_end"], name="pay_run_once"),
            models.CheckConstraint(condition=Q(period_end__gt=F("period_start")), name="pay_run_period"),
        ]

    def __str__(self) -> str:
        return f"Pay run {self.period_start} to {self.period_end}"


class PayLine(models.Model):
    """One session's pay to its tutor; a session is paid once, whichever run finds it.

    ``number`` 0 is the session's first pay. A later correction of the session's outcome is a
    new line (``number`` 1, 2, ...) carrying the difference (negative: a clawback, positive: a
    top-up) and its ``reason``; the paid line is never edited."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(PayRun, on_delete=models.PROTECT, related_name="lines")
    tutor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    session = models.ForeignKey("scheduling.Session", on_delete=models.PROTECT, related_name="+")
    session_start = models.DateTimeField()
    duration_min = models.PositiveIntegerField()
    outcome = models.CharField(max_length=20)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    # "transfer": paid by the run's Connect transfer; "destination": Stripe paid the tutor at
    # capture (a destination charge), recorded here for the statement only.
    via = models.CharField(max_length=12, default="transfer")
    number = models.PositiveIntegerField(default=0)
    # The session's full pay for attendance when first paid (a correction prices with it, so a
    # rate changed since does not move an old session's pay); null on lines paid before.
    rate_minor = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "tutor", "session_start", "number", "id"]
        constraints = [
            models.UniqueConstraint(fields=["session", "number"], name="pay_line_number_once"),
            models.CheckConstraint(
                condition=Q(number=0, amount_minor__gte=0) | (Q(number__gt=0) & ~Q(amount_minor=0)),
                name="pay_line_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount_minor} {self.currency} for session {self.session_id}"


class PayTransfer(TimeStamped):
    """A Stripe Connect transfer of a tutor's pay from one run (``number`` counts later top-ups)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(PayRun, on_delete=models.PROTECT, related_name="transfers")
    tutor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    number = models.PositiveIntegerField(default=1)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    destination = models.CharField(max_length=100)
    transfer_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["run", "tutor", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "tutor", "number"], name="pay_transfer_once"),
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="pay_transfer_positive"),
        ]

    def __str__(self) -> str:
        return f"Transfer {self.transfer_id or '(pending)'} of {self.amount_minor} {self.currency}"


class PayReversal(TimeStamped):
    """A Stripe Connect transfer reversal taking back what a correction found overpaid."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(PayRun, on_delete=models.PROTECT, related_name="reversals")
    tutor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    number = models.PositiveIntegerField()
    transfer = models.ForeignKey(PayTransfer, on_delete=models.PROTECT, related_name="reversals")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reversal_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["run", "tutor", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "tutor", "number"], name="pay_reversal_once"),
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="pay_reversal_positive"),
        ]

    def __str__(self) -> str:
        return f"Reversal {self.reversal_id or '(pending)'} of {self.amount_minor} {self.currency}"


# --- reconciliation ----------------------------------------------------------------------------


class Reconciliation(models.Model):
    """One nightly comparison of a tenant's ledger with Stripe."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    checked = models.PositiveIntegerField(default=0)
    differences = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "id"]

    def __str__(self) -> str:
        return f"Reconciliation {self.started_at:%Y-%m-%d %H:%M}: {self.differences} differences"


class ReconciliationDifference(models.Model):
    """A difference between the ledger and Stripe; reported, never acted on automatically."""

    class Kind(models.TextChoices):
        MISSING_IN_LEDGER = "missing_in_ledger", "Paid at Stripe, not in the ledger"
        MISSING_AT_PROVIDER = "missing_at_provider", "In the ledger, not paid at Stripe"
        AMOUNT = "amount", "Amounts differ"
        REFUND = "refund", "Refunds differ"
        UNCAPTURED = "uncaptured", "Authorisation left uncaptured"

    reconciliation = models.ForeignKey(Reconciliation, on_delete=models.CASCADE, related_name="rows")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    subject = models.CharField(max_length=200)  # "purchase:<id>", "booking:<session>:<student>"
    provider_ref = models.CharField(max_length=100, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    ledger_minor = models.BigIntegerField(default=0)
    provider_minor = models.BigIntegerField(default=0)
    detail = models.CharField(max_length=300)

    class Meta:
        ordering = ["reconciliation", "subject", "kind", "id"]

    def __str__(self) -> str:
        return f"{self.subject}: {self.detail}"
