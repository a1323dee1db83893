"""Tutor pay: pay runs per period, driven by attendance, paid through Stripe Connect.

A session pays its tutor once, whichever run finds it (``PayLine`` is unique per session):
running a period twice, or two overlapping periods, pays nothing twice. What a session
pays follows its recorded outcome (the video room's attendance arrives here through
scheduling, where "late" and "left early" are recorded as attended):

* attended (by any of its students): the tutor's rate;
* the student did not come (the tutor did): the tenant's ``student_no_show_tutor_percent``;
* the tutor did not come, a cancellation (in time or late): nothing.

The rate is the tutor's hourly rate (``TutorPayee``), else the tenant's tutor share of the
session's price. Earned pay is posted to the tutor's payable account; a payout moves it to
Stripe with a Connect transfer whose Idempotency-Key is ``payrun:{run}:tutor:{tutor}:transfer``.
Sessions charged to a card as destination charges were paid by Stripe at capture: they are
listed (``via="destination"``) but neither accrued nor transferred again.

Corrections: every run also re-reads the outcome of each session already paid by transfer.
When it now decides a different outcome (attended corrected to a no-show, a no-show to
attended), the run adds a line for the difference (``PayLine.number`` 1, 2, ...; the paid
line is never edited) with its reason, and posts it: a top-up to the tutor's payable
account, a clawback out of it, or, past what is still owed (already paid out), into
``tutor_recoverable``. A payout then nets what a tutor owes back against what they are
owed (a smaller next transfer) and reverses earlier Connect transfers for the rest.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, Sum
from django.db.models.functions import Coalesce

from tutoring_core.accounts.api import audit_record, is_district_admin
from tutoring_core.accounts.models import User
from tutoring_core.payments import ledger
from tutoring_core.payments.errors import InvalidInput, NotAllowed, NotFound
from tutoring_core.payments.models import (
    BookingCharge,
    LedgerAccount,
    PayLine,
    PaymentSettings,
    PayReversal,
    PayRun,
    PayTransfer,
    TutorPayee,
)
from tutoring_core.payments.services import price_for, settings_for
from tutoring_core.rows import save_changed

P = LedgerAccount.Purpose
MAX_PERIOD_DAYS = 366


@dataclass(frozen=True)
class RunResult:
    run: PayRun
    paid_sessions: int
    unpriced_sessions: int  # outcome recorded, but no rate or price for the tutor: left for a later run
    awaiting_outcome: int  # held, not cancelled, no outcome recorded yet: left for a later run
    corrected_sessions: int = 0  # paid earlier, outcome corrected since: the difference posted


def session_pay(
    *, outcomes: list[str], cancelled: bool, rate_minor: int, no_show_percent: int
) -> tuple[str, int] | None:
    """(outcome, amount) for one session, or None while its outcome is not recorded."""
    if cancelled:
        return "cancelled", 0
    if "attended" in outcomes:
        return "attended", rate_minor
    if "no_show" in outcomes:
        return "no_show", rate_minor * no_show_percent // 100
    for outcome in ("tutor_no_show", "late_cancel"):
        if outcome in outcomes:
            return outcome, 0
    return None


def _rate(policy: PaymentSettings, payee: TutorPayee | None, session: Any) -> tuple[int, str] | None:
    minutes = int((session.end - session.start).total_seconds() // 60)
    if payee is not None and payee.hourly_rate_minor is not None:
        return payee.hourly_rate_minor * minutes // 60, payee.currency
    price = price_for(
        tenant_id=session.tenant_id, tutor_id=session.tutor_id, subject=session.subject, duration_min=minutes
    )
    if price is None:
        return None
    return price.amount_minor * policy.tutor_share_percent // 100, price.currency


def _check_period(period_start: Any, period_end: Any) -> tuple[dt.date, dt.date]:
    if not isinstance(period_start, dt.date) or isinstance(period_start, dt.datetime):
        raise InvalidInput("Give the period's first day as a date (YYYY-MM-DD).", "period_start")
    if not isinstance(period_end, dt.date) or isinstance(period_end, dt.datetime):
        raise InvalidInput("Give the day after the period as a date (YYYY-MM-DD).", "period_end")
    if period_end <= period_start:
        raise InvalidInput("The period must end after it starts.", "period_end")
    if (period_end - period_start).days > MAX_PERIOD_DAYS:
        raise InvalidInput(f"A pay run covers at most {MAX_PERIOD_DAYS} days.", "period_end")
    return period_start, period_end


def payrun_execute(*, actor: User, period_start: dt.date, period_end: dt.date) -> RunResult:
    """Pay the sessions that started in [period_start, period_end) (UTC days) and are not paid yet."""
    from tutoring_core.scheduling.models import Session, SessionParticipant

    if not is_district_admin(actor) or actor.tenant_id is None:
        raise NotAllowed("Only a district admin may run tutor pay.", "actor")
    start_day, end_day = _check_period(period_start, period_end)
    tenant_id = actor.tenant_id
    run, _ = PayRun.objects.get_or_create(
        tenant_id=tenant_id, period_start=start_day, period_end=end_day, defaults={"created_by": actor}
    )
    policy = settings_for(tenant_id)
    payees = {p.tutor_id: p for p in TutorPayee.objects.filter(tenant_id=tenant_id)}
    begin = dt.datetime.combine(start_day, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(end_day, dt.time(), tzinfo=dt.UTC)
    sessions = list(
        Session.objects.filter(tenant_id=tenant_id, start__gte=begin, start__lt=end)
        .exclude(status__in=[Session.Status.HELD, Session.Status.EXPIRED])
        .exclude(pk__in=PayLine.objects.filter(tenant_id=tenant_id).values("session_id"))
        .order_by("start", "pk")
    )
    outcomes: dict[uuid.UUID, list[str]] = defaultdict(list)
    for session_id, outcome in SessionParticipant.objects.filter(
        session__in=sessions, status=SessionParticipant.Status.BOOKED
    ).values_list("session_id", "outcome"):
        outcomes[session_id].append(outcome)
    destination_paid = set(
        BookingCharge.objects.filter(session__in=sessions)
        .exclude(destination="")
        .values_list("session_id", flat=True)
    )
    paid = unpriced = waiting = 0
    for session in sessions:
        found = [*outcomes.get(session.pk, []), session.outcome]
        rate = _rate(policy, payees.get(session.tutor_id), session)
        decided = session_pay(
            outcomes=found,
            cancelled=session.status == Session.Status.CANCELLED,
            rate_minor=rate[0] if rate else 0,
            no_show_percent=policy.student_no_show_tutor_percent,
        )
        if decided is None:
            waiting += 1
            continue
        outcome, amount = decided
        if rate is None and outcome in ("attended", "no_show"):
            unpriced += 1
            continue
        currency = rate[1] if rate else policy.currency
        via = "destination" if session.pk in destination_paid else "transfer"
        if _pay_line(run, session, outcome, amount, currency, via, rate[0] if rate else None):
            paid += 1
    corrected = _corrections(run, policy, payees)
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="payments.payrun.execute",
        target=run,
        details={"paid": paid, "unpriced": unpriced, "awaiting_outcome": waiting, "corrected": corrected},
    )
    return RunResult(
        run=run,
        paid_sessions=paid,
        unpriced_sessions=unpriced,
        awaiting_outcome=waiting,
        corrected_sessions=corrected,
    )


def _label(outcome: str) -> str:
    return outcome.replace("_", " ")


def _corrections(run: PayRun, policy: PaymentSettings, payees: dict[Any, TutorPayee]) -> int:
    """Post the difference for each session paid by transfer whose outcome was corrected since.

    Every paid session of the tenant is re-read (three queries, whatever their number): a
    correction may come months later and must not be lost, and outcome writes do not all
    touch ``updated_at`` (queryset updates), so there is no cheaper mark to go by."""
    from tutoring_core.scheduling.models import Session, SessionParticipant

    paid_lines = PayLine.objects.filter(tenant_id=run.tenant_id, via="transfer")
    first: dict[uuid.UUID, PayLine] = {}
    last: dict[uuid.UUID, PayLine] = {}
    total: dict[uuid.UUID, int] = defaultdict(int)
    for line in paid_lines.order_by("session_id", "number"):
        first.setdefault(line.session_id, line)
        last[line.session_id] = line
        total[line.session_id] += line.amount_minor
    if not first:
        return 0
    paid_ids = paid_lines.filter(number=0).values("session_id")
    outcomes: dict[uuid.UUID, list[str]] = defaultdict(list)
    for session_id, outcome in SessionParticipant.objects.filter(
        session_id__in=paid_ids, status=SessionParticipant.Status.BOOKED
    ).values_list("session_id", "outcome"):
        outcomes[session_id].append(outcome)
    corrected = 0
    for session in Session.objects.filter(pk__in=paid_ids).order_by("start", "pk"):
        line0 = first[session.pk]
        rate: int | None = line0.rate_minor
        if rate is None:  # paid before rates were kept: an attended line's amount is the rate
            found = _rate(policy, payees.get(session.tutor_id), session)
            rate = line0.amount_minor if line0.outcome == "attended" else (found[0] if found else None)
        decided = session_pay(
            outcomes=[*outcomes.get(session.pk, []), session.outcome],
            cancelled=session.status == Session.Status.CANCELLED,
            rate_minor=rate or 0,
            no_show_percent=policy.student_no_show_tutor_percent,
        )
        previous = last[session.pk]
        if decided is None or decided[0] == previous.outcome:
            continue  # not decided any more, or still what was paid: nothing to correct
        outcome, amount = decided
        if rate is None and outcome in ("attended", "no_show"):
            continue  # no rate to price it with yet: a later run, once there is one
        difference = amount - total[session.pk]
        reason = f"Corrected from {_label(previous.outcome)} to {_label(outcome)}"
        if _adjust_line(run, session, line0, previous.number + 1, outcome, difference, reason):
            corrected += 1
    return corrected


def _adjust_line(
    run: PayRun, session: Any, line0: PayLine, number: int, outcome: str, difference: int, reason: str
) -> bool:
    """A correction's line and its posting together; False when another run posted it first.

    A correction that changes no money (a tutor's no-show corrected to a cancellation) adds
    no line: a line moves money."""
    if difference == 0:
        return False
    tenant_id = run.tenant_id
    currency = line0.currency
    payable = ledger.account(
        tenant_id=tenant_id, purpose=P.TUTOR_PAYABLE, unit=currency, owner=f"tutor:{session.tutor_id}"
    )
    cost = ledger.account(tenant_id=tenant_id, purpose=P.TUTOR_COST, unit=currency)
    try:
        with transaction.atomic():
            PayLine.objects.create(
                tenant_id=tenant_id,
                run=run,
                tutor_id=session.tutor_id,
                session=session,
                session_start=session.start,
                duration_min=line0.duration_min,
                outcome=outcome,
                amount_minor=difference,
                currency=currency,
                via="transfer",
                number=number,
                rate_minor=line0.rate_minor,
                reason=reason,
            )
            lines: list[tuple[LedgerAccount, int]]
            if difference > 0:
                lines = [(cost, -difference), (payable, difference)]
            else:
                clawback = -difference
                owed = LedgerAccount.objects.select_for_update().get(pk=payable.pk).balance
                from_owed = min(clawback, max(owed, 0))
                lines = [(cost, clawback)]
                if from_owed:
                    lines.append((payable, -from_owed))
                if clawback - from_owed:
                    # Already paid out: the tutor owes it back (netted or reversed at payout).
                    recoverable = ledger.account(
                        tenant_id=tenant_id,
                        purpose=P.TUTOR_RECOVERABLE,
                        unit=currency,
                        owner=f"tutor:{session.tutor_id}",
                    )
                    lines.append((recoverable, -(clawback - from_owed)))
            ledger.post(
                tenant_id=tenant_id,
                reference=f"payline:{session.pk}:adjust:{number}",
                kind="tutor_pay_correction",
                memo=f"{reason}: session {session.start:%Y-%m-%d %H:%M} UTC",
                lines=lines,
            )
    except IntegrityError:
        return False
    return True


def _pay_line(
    run: PayRun, session: Any, outcome: str, amount: int, currency: str, via: str, rate: int | None
) -> bool:
    """One session's line and its posting, together; False when another run paid it first."""
    try:
        with transaction.atomic():
            line = PayLine.objects.create(
                tenant_id=run.tenant_id,
                run=run,
                tutor_id=session.tutor_id,
                session=session,
                session_start=session.start,
                duration_min=int((session.end - session.start).total_seconds() // 60),
                outcome=outcome,
                amount_minor=amount,
                currency=currency,
                via=via,
                rate_minor=rate,
            )
            if amount and via == "transfer":
                ledger.post(
                    tenant_id=run.tenant_id,
                    reference=f"payline:{session.pk}:earned",
                    kind="tutor_pay",
                    memo=f"{outcome.replace('_', ' ')} session {session.start:%Y-%m-%d %H:%M} UTC",
                    lines=[
                        (
                            ledger.account(tenant_id=run.tenant_id, purpose=P.TUTOR_COST, unit=currency),
                            -amount,
                        ),
                        (
                            ledger.account(
                                tenant_id=run.tenant_id,
                                purpose=P.TUTOR_PAYABLE,
                                unit=currency,
                                owner=f"tutor:{session.tutor_id}",
                            ),
                            amount,
                        ),
                    ],
                )
    except IntegrityError:
        return False
    return bool(line.pk)


def payrun_payout(*, actor: User, run_id: Any) -> list[PayTransfer | PayReversal]:
    """Settle with each tutor of the run through their Connect Express account.

    What a tutor is owed (their payable balance, across runs) less what corrections found
    they owe back is one transfer; when they owe back more than they are owed, earlier
    transfers are reversed for the rest. Each transfer or reversal row is written before
    Stripe is called and keeps its key: a retry after a failure (or a crash) sends the same
    Idempotency-Key, so Stripe moves the money once. A tutor with no Connect account is left
    owed (their payable balance shows it)."""
    from tutoring_core.payments.providers import StripeProvider

    if not is_district_admin(actor):
        raise NotAllowed("Only a district admin may pay tutors.", "actor")
    run = PayRun.objects.filter(tenant_id=actor.tenant_id, pk=run_id).first() if actor.tenant_id else None
    if run is None:
        raise NotFound("No such pay run.", "run_id")
    tutors = list(
        PayLine.objects.filter(run=run, via="transfer")
        .exclude(amount_minor=0)
        .values_list("tutor_id", "currency")
        .distinct()
        .order_by("tutor_id", "currency")
    )
    payees = {
        p.tutor_id: p
        for p in TutorPayee.objects.filter(tenant_id=run.tenant_id).exclude(stripe_account_id="")
    }
    provider: StripeProvider | None = None
    done: list[PayTransfer | PayReversal] = []
    for tutor_id, currency in tutors:
        payee = payees.get(tutor_id)
        if payee is None:
            continue
        # Rows a failure left unsent go first, with their keys; then what the balances say now.
        unsent: list[PayTransfer | PayReversal] = [
            *PayTransfer.objects.filter(run=run, tutor_id=tutor_id, currency=currency, transfer_id=""),
            *PayReversal.objects.filter(run=run, tutor_id=tutor_id, currency=currency, reversal_id=""),
        ]
        rows = unsent or _settlement_rows(run, tutor_id, currency, payee.stripe_account_id, actor)
        for row in rows:
            provider = provider or StripeProvider()
            if isinstance(row, PayTransfer):
                _send_transfer(provider, run, row, actor)
            else:
                _send_reversal(provider, run, row, actor)
            done.append(row)
    settled = (
        not LedgerAccount.objects.filter(
            tenant_id=run.tenant_id,
            owner__in=[f"tutor:{tutor_id}" for tutor_id, _ in tutors],
            purpose__in=[P.TUTOR_PAYABLE, P.TUTOR_RECOVERABLE],
        )
        .exclude(balance=0)
        .exists()
    )
    # Paid when no tutor of the run is owed or owes (an earlier payout may have settled them).
    if tutors and settled:
        save_changed(run, {"status": PayRun.Status.PAID})
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="payments.payrun.payout",
        target=run,
        details={
            "transfers": [t.transfer_id for t in done if isinstance(t, PayTransfer)],
            "reversals": [t.reversal_id for t in done if isinstance(t, PayReversal)],
        },
    )
    return done


def _tutor_accounts(run: PayRun, tutor_id: Any, currency: str) -> tuple[LedgerAccount, LedgerAccount]:
    """The tutor's payable and recoverable accounts, locked, balances fresh (primary-key order)."""
    owner = f"tutor:{tutor_id}"
    payable = ledger.account(tenant_id=run.tenant_id, purpose=P.TUTOR_PAYABLE, unit=currency, owner=owner)
    recoverable = ledger.account(
        tenant_id=run.tenant_id, purpose=P.TUTOR_RECOVERABLE, unit=currency, owner=owner
    )
    locked = {
        row.pk: row
        for row in LedgerAccount.objects.select_for_update()
        .filter(pk__in=[payable.pk, recoverable.pk])
        .order_by("pk")
    }
    return locked[payable.pk], locked[recoverable.pk]


@transaction.atomic
def _settlement_rows(
    run: PayRun, tutor_id: Any, currency: str, destination: str, actor: User
) -> list[PayTransfer | PayReversal]:
    """Net what the tutor owes back against what they are owed, then the transfer (owed) or
    the reversals (owing) still to send; nothing when both are zero."""
    payable, recoverable = _tutor_accounts(run, tutor_id, currency)
    owed, owes = payable.balance, -recoverable.balance
    offset = min(owed, owes)
    if offset > 0:
        # Derived from balances read under lock: a repeat finds nothing left to net, so the
        # reference need only be unique.
        ledger.post(
            tenant_id=run.tenant_id,
            reference=f"payrun:{run.pk}:tutor:{tutor_id}:offset:{uuid.uuid4().hex}",
            kind="tutor_pay_offset",
            memo="Overpaid tutor pay recovered from pay owed",
            lines=[(payable, -offset), (recoverable, offset)],
            actor=actor,
        )
        owed, owes = owed - offset, owes - offset
    if owed > 0:
        number = PayTransfer.objects.filter(run=run, tutor_id=tutor_id).aggregate(n=Max("number"))["n"] or 0
        transfer = PayTransfer.objects.create(
            tenant_id=run.tenant_id,
            run=run,
            tutor_id=tutor_id,
            number=number + 1,
            amount_minor=owed,
            currency=currency,
            destination=destination,
        )
        return [transfer]
    reversals: list[PayTransfer | PayReversal] = []
    number = PayReversal.objects.filter(run=run, tutor_id=tutor_id).aggregate(n=Max("number"))["n"] or 0
    earlier = (
        PayTransfer.objects.filter(tenant_id=run.tenant_id, tutor_id=tutor_id, currency=currency)
        .exclude(transfer_id="")
        .annotate(reversed=Coalesce(Sum("reversals__amount_minor"), 0))
        .order_by("-created_at", "-number")
    )
    for transfer in earlier:  # newest first
        if owes <= 0:
            break
        room = transfer.amount_minor - transfer.reversed  # type: ignore[attr-defined]
        if room <= 0:
            continue
        number += 1
        take = min(room, owes)
        reversals.append(
            PayReversal.objects.create(
                tenant_id=run.tenant_id,
                run=run,
                tutor_id=tutor_id,
                number=number,
                transfer=transfer,
                amount_minor=take,
                currency=currency,
            )
        )
        owes -= take
    return reversals


def _external(run: PayRun, currency: str) -> LedgerAccount:
    return ledger.account(tenant_id=run.tenant_id, purpose=P.EXTERNAL, unit=currency, owner="provider:stripe")


def _send_transfer(provider: Any, run: PayRun, transfer: PayTransfer, actor: User) -> None:
    key = _transfer_key(transfer)
    transfer_id = provider.transfer_create(
        key=key,
        amount=transfer.amount_minor,
        currency=transfer.currency,
        destination=transfer.destination,
        group=f"payrun:{run.pk}",
    )
    with transaction.atomic():
        payable, recoverable = _tutor_accounts(run, transfer.tutor_id, transfer.currency)
        # A clawback between a failed send and its retry leaves less owed than the row pays:
        # the rest is overpaid, owed back by the tutor.
        from_owed = min(transfer.amount_minor, max(payable.balance, 0))
        lines = [(_external(run, transfer.currency), transfer.amount_minor)]
        if from_owed:
            lines.append((payable, -from_owed))
        if transfer.amount_minor - from_owed:
            lines.append((recoverable, -(transfer.amount_minor - from_owed)))
        ledger.post(tenant_id=run.tenant_id, reference=key, kind="tutor_payout", lines=lines, actor=actor)
        save_changed(transfer, {"transfer_id": transfer_id})


def _send_reversal(provider: Any, run: PayRun, reversal: PayReversal, actor: User) -> None:
    key = f"payrun:{run.pk}:tutor:{reversal.tutor_id}:reversal:{reversal.number}"
    reversal_id = provider.transfer_reverse(
        key=key, transfer_id=reversal.transfer.transfer_id, amount=reversal.amount_minor
    )
    with transaction.atomic():
        payable, recoverable = _tutor_accounts(run, reversal.tutor_id, reversal.currency)
        recovered = min(reversal.amount_minor, max(-recoverable.balance, 0))
        lines = [(_external(run, reversal.currency), -reversal.amount_minor)]
        if recovered:
            lines.append((recoverable, recovered))
        if reversal.amount_minor - recovered:
            # Taken back beyond what the tutor owed (a top-up since): owed to them again.
            lines.append((payable, reversal.amount_minor - recovered))
        ledger.post(
            tenant_id=run.tenant_id, reference=key, kind="tutor_payout_reversal", lines=lines, actor=actor
        )
        save_changed(reversal, {"reversal_id": reversal_id})


def _transfer_key(transfer: PayTransfer) -> str:
    key = f"payrun:{transfer.run_id}:tutor:{transfer.tutor_id}:transfer"
    return key if transfer.number == 1 else f"{key}:{transfer.number}"


def tutor_lines(*, tenant_id: uuid.UUID, tutor_id: uuid.UUID, run: PayRun | None = None) -> list[PayLine]:
    rows = PayLine.objects.filter(tenant_id=tenant_id, tutor_id=tutor_id).select_related("run")
    if run is not None:
        rows = rows.filter(run=run)
    return list(rows.order_by("-run__period_start", "session_start", "number", "id"))
