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
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Sum

from tutoring_core.accounts.api import audit_record, is_district_admin
from tutoring_core.accounts.models import User
from tutoring_core.payments import ledger
from tutoring_core.payments.errors import InvalidInput, NotAllowed, NotFound
from tutoring_core.payments.models import (
    BookingCharge,
    LedgerAccount,
    PayLine,
    PaymentSettings,
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
        if _pay_line(run, session, outcome, amount, currency, via):
            paid += 1
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="payments.payrun.execute",
        target=run,
        details={"paid": paid, "unpriced": unpriced, "awaiting_outcome": waiting},
    )
    return RunResult(run=run, paid_sessions=paid, unpriced_sessions=unpriced, awaiting_outcome=waiting)


def _pay_line(run: PayRun, session: Any, outcome: str, amount: int, currency: str, via: str) -> bool:
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


def payrun_payout(*, actor: User, run_id: Any) -> list[PayTransfer]:
    """Transfer each tutor's unpaid pay of the run to their Connect Express account.

    The transfer row is written before Stripe is called and keeps its key: a retry after a
    failure (or a crash) sends the same Idempotency-Key, so Stripe pays once. A tutor with
    no Connect account is left owed (their payable balance shows it)."""
    from tutoring_core.payments.providers import StripeProvider

    if not is_district_admin(actor):
        raise NotAllowed("Only a district admin may pay tutors.", "actor")
    run = PayRun.objects.filter(tenant_id=actor.tenant_id, pk=run_id).first() if actor.tenant_id else None
    if run is None:
        raise NotFound("No such pay run.", "run_id")
    owed = (
        PayLine.objects.filter(run=run, via="transfer", amount_minor__gt=0)
        .values("tutor_id", "currency")
        .annotate(total=Sum("amount_minor"))
        .order_by("tutor_id", "currency")
    )
    payees = {
        p.tutor_id: p
        for p in TutorPayee.objects.filter(tenant_id=run.tenant_id).exclude(stripe_account_id="")
    }
    provider: StripeProvider | None = None
    done = []
    for row in owed:
        payee = payees.get(row["tutor_id"])
        if payee is None:
            continue
        transfer = _transfer_row(
            run, row["tutor_id"], row["currency"], int(row["total"]), payee.stripe_account_id
        )
        if transfer is None:
            continue
        provider = provider or StripeProvider()
        key = _transfer_key(transfer)
        transfer_id = provider.transfer_create(
            key=key,
            amount=transfer.amount_minor,
            currency=transfer.currency,
            destination=transfer.destination,
            group=f"payrun:{run.pk}",
        )
        with transaction.atomic():
            save_changed(transfer, {"transfer_id": transfer_id})
            ledger.post(
                tenant_id=run.tenant_id,
                reference=key,
                kind="tutor_payout",
                lines=[
                    (
                        ledger.account(
                            tenant_id=run.tenant_id,
                            purpose=P.TUTOR_PAYABLE,
                            unit=transfer.currency,
                            owner=f"tutor:{transfer.tutor_id}",
                        ),
                        -transfer.amount_minor,
                    ),
                    (
                        ledger.account(
                            tenant_id=run.tenant_id,
                            purpose=P.EXTERNAL,
                            unit=transfer.currency,
                            owner="provider:stripe",
                        ),
                        transfer.amount_minor,
                    ),
                ],
                actor=actor,
            )
        done.append(transfer)
    if (
        done
        and not PayLine.objects.filter(run=run, via="transfer", amount_minor__gt=0)
        .exclude(tutor_id__in=PayTransfer.objects.filter(run=run).exclude(transfer_id="").values("tutor_id"))
        .exists()
    ):
        save_changed(run, {"status": PayRun.Status.PAID})
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="payments.payrun.payout",
        target=run,
        details={"transfers": [t.transfer_id for t in done]},
    )
    return done


def _transfer_key(transfer: PayTransfer) -> str:
    key = f"payrun:{transfer.run_id}:tutor:{transfer.tutor_id}:transfer"
    return key if transfer.number == 1 else f"{key}:{transfer.number}"


@transaction.atomic
def _transfer_row(
    run: PayRun, tutor_id: Any, currency: str, total: int, destination: str
) -> PayTransfer | None:
    """The transfer still to send for this tutor: an unsent one (a retry), or a new one for
    what the earlier transfers of this run did not cover; None when all is paid."""
    rows = list(PayTransfer.objects.select_for_update().filter(run=run, tutor_id=tutor_id).order_by("number"))
    unsent = next((row for row in rows if not row.transfer_id), None)
    if unsent is not None:
        return unsent
    left = total - sum(row.amount_minor for row in rows)
    if left <= 0:
        return None
    return PayTransfer.objects.create(
        tenant_id=run.tenant_id,
        run=run,
        tutor_id=tutor_id,
        number=len(rows) + 1,
        amount_minor=left,
        currency=currency,
        destination=destination,
    )


def tutor_lines(*, tenant_id: uuid.UUID, tutor_id: uuid.UUID, run: PayRun | None = None) -> list[PayLine]:
    rows = PayLine.objects.filter(tenant_id=tenant_id, tutor_id=tutor_id).select_related("run")
    if run is not None:
        rows = rows.filter(run=run)
    return list(rows.order_by("-run__period_start", "session_start", "id"))
