"""Tutor pay follows corrections: an outcome corrected after its session was paid is posted
by the next pay run as a new line (a clawback or a top-up, the paid line untouched), shown
with its reason on the tutor's statement; a clawback makes the next transfer smaller, or
reverses an earlier Connect transfer (seen at the HTTP client with its domain key).
Hypothesis: any sequence of outcomes, corrections, runs and payouts pays each tutor exactly
what the final outcomes say, and every posting balances."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import stripe
from django.db.models import Sum
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from tests.factories import UserFactory, district_admin
from tests.payments.factories import PaymentSettingsFactory
from tests.payments.test_payroll import MARCH, _payable, _session, pay_world
from tests.payments.test_stripe_http import Recording
from tutoring_core.payments import payroll
from tutoring_core.payments.models import (
    LedgerAccount,
    PayLine,
    PayReversal,
    PayRun,
    PayTransfer,
    Posting,
    PostingLine,
    TutorPayee,
)

pytestmark = pytest.mark.django_db
FEBRUARY = (dt.date(2027, 2, 1), dt.date(2027, 3, 1))
APRIL = (dt.date(2027, 4, 1), dt.date(2027, 5, 1))
__all__ = ["pay_world"]  # the fixture, shared with test_payroll


class Connect(Recording):
    """The hub's Stripe client answering Connect calls (no local peer has them) with
    numbered transfers and reversals."""

    def request(self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None,
                *, _usage: Any = None) -> Any:  # fmt: skip
        number = len(self.calls) + 1
        if "/reversals" in url:
            self.canned = {"id": f"trr_{number}", "object": "transfer_reversal"}
        else:
            self.canned = {"id": f"tr_{number}", "object": "transfer"}
        return super().request(method, url, headers, post_data)


@pytest.fixture
def connect(monkeypatch: Any) -> Iterator[Connect]:
    import tutoring_core.payments.providers as providers

    recording = Connect()
    monkeypatch.setattr(
        providers,
        "stripe_client",
        lambda: stripe.StripeClient(
            "sk_test_hub", base_addresses={"api": "http://127.0.0.1:9"}, http_client=recording
        ),
    )
    yield recording


def _correct(session: Any, outcome: str) -> None:
    session.participants.update(outcome=outcome)
    session.outcome = outcome
    session.save()


def _recoverable(tutor: Any) -> int:
    row = LedgerAccount.objects.filter(owner=f"tutor:{tutor.pk}", purpose="tutor_recoverable").first()
    return row.balance if row else 0


def _lines(session: Any) -> list[tuple[int, str, int, str]]:
    return [
        (line.number, line.outcome, line.amount_minor, line.reason)
        for line in PayLine.objects.filter(session=session).order_by("number")
    ]


def _posting_lines(reference: str) -> set[tuple[str, str, int]]:
    return {
        (line.account.owner, line.account.purpose, line.amount)
        for line in PostingLine.objects.filter(posting__reference=reference).select_related("account")
    }


def test_a_clawback_before_payout_makes_the_transfer_smaller(
    pay_world: dict[str, Any], connect: Connect
) -> None:
    admin, priya, attended = pay_world["admin"], pay_world["priya"], pay_world["attended"]
    run = payroll.payrun_execute(actor=admin, period_start=MARCH[0], period_end=MARCH[1]).run
    assert _payable(priya) == 5000
    _correct(attended, "no_show")  # the student did not come after all: half the 40.00 by policy

    again = payroll.payrun_execute(actor=admin, period_start=MARCH[0], period_end=MARCH[1])
    assert (again.run.pk, again.paid_sessions, again.corrected_sessions) == (run.pk, 0, 1)
    assert _lines(attended) == [
        (0, "attended", 4000, ""),
        (1, "no_show", -2000, "Corrected from attended to no show"),
    ]
    assert _posting_lines(f"payline:{attended.pk}:adjust:1") == {
        ("tenant", "tutor_cost", 2000),
        (f"tutor:{priya.pk}", "tutor_payable", -2000),
    }
    assert (_payable(priya), _recoverable(priya)) == (3000, 0)
    # Running again finds it corrected already: nothing is taken twice.
    assert (
        payroll.payrun_execute(actor=admin, period_start=MARCH[0], period_end=MARCH[1]).corrected_sessions
        == 0
    )
    assert PayLine.objects.filter(session=attended).count() == 2

    [transfer] = payroll.payrun_payout(actor=admin, run_id=run.pk)
    assert isinstance(transfer, PayTransfer) and (transfer.amount_minor, transfer.transfer_id) == (
        3000,
        "tr_1",
    )
    [(method, url, headers, form)] = connect.calls
    assert (method, url, form["amount"]) == ("post", "http://127.0.0.1:9/v1/transfers", "3000")
    assert headers["Idempotency-Key"] == f"payrun:{run.pk}:tutor:{priya.pk}:transfer"
    assert (_payable(priya), _recoverable(priya)) == (0, 0)


def test_a_clawback_after_payout_reverses_the_transfer_and_a_top_up_pays_again(
    pay_world: dict[str, Any], connect: Connect
) -> None:
    admin, priya, attended = pay_world["admin"], pay_world["priya"], pay_world["attended"]
    march = payroll.payrun_execute(actor=admin, period_start=MARCH[0], period_end=MARCH[1]).run
    payroll.payrun_payout(actor=admin, run_id=march.pk)  # tr_1: 50.00 to Priya
    assert (_payable(priya), connect.calls[0][3]["amount"]) == (0, "5000")

    # Corrected to the tutor's no-show after she was paid: a February run (no new sessions)
    # posts the clawback, which nothing owed can absorb: she owes it back.
    _correct(attended, "tutor_no_show")
    february = payroll.payrun_execute(actor=admin, period_start=FEBRUARY[0], period_end=FEBRUARY[1])
    assert (february.paid_sessions, february.corrected_sessions) == (0, 1)
    assert _posting_lines(f"payline:{attended.pk}:adjust:1") == {
        ("tenant", "tutor_cost", 4000),
        (f"tutor:{priya.pk}", "tutor_recoverable", -4000),
    }
    assert (_payable(priya), _recoverable(priya)) == (0, -4000)

    [reversal] = payroll.payrun_payout(actor=admin, run_id=february.run.pk)
    assert isinstance(reversal, PayReversal)
    assert (reversal.amount_minor, reversal.transfer.transfer_id, reversal.reversal_id) == (
        4000,
        "tr_1",
        "trr_2",
    )
    _m, url, headers, form = connect.calls[-1]
    assert (url, form) == ("http://127.0.0.1:9/v1/transfers/tr_1/reversals", {"amount": "4000"})
    assert headers["Idempotency-Key"] == f"payrun:{february.run.pk}:tutor:{priya.pk}:reversal:1"
    stripe_account = LedgerAccount.objects.get(owner="provider:stripe", unit="USD")
    assert (_payable(priya), _recoverable(priya), stripe_account.balance) == (0, 0, 1000)
    assert payroll.payrun_payout(actor=admin, run_id=february.run.pk) == []

    # Corrected back to attended: a top-up, paid by the next transfer.
    _correct(attended, "attended")
    assert (
        payroll.payrun_execute(
            actor=admin, period_start=FEBRUARY[0], period_end=FEBRUARY[1]
        ).corrected_sessions
        == 1
    )
    assert _lines(attended) == [
        (0, "attended", 4000, ""),
        (1, "tutor_no_show", -4000, "Corrected from attended to tutor no show"),
        (2, "attended", 4000, "Corrected from tutor no show to attended"),
    ]
    [top_up] = payroll.payrun_payout(actor=admin, run_id=february.run.pk)
    assert isinstance(top_up, PayTransfer) and (top_up.number, top_up.amount_minor) == (1, 4000)
    assert connect.calls[-1][2]["Idempotency-Key"] == f"payrun:{february.run.pk}:tutor:{priya.pk}:transfer"
    stripe_account.refresh_from_db()
    assert (_payable(priya), _recoverable(priya), stripe_account.balance) == (0, 0, 5000)
    assert len(connect.calls) == 3


def test_what_a_tutor_owes_back_is_netted_from_the_next_pay(
    pay_world: dict[str, Any], connect: Connect
) -> None:
    admin, priya = pay_world["admin"], pay_world["priya"]
    march = payroll.payrun_execute(actor=admin, period_start=MARCH[0], period_end=MARCH[1]).run
    payroll.payrun_payout(actor=admin, run_id=march.pk)  # tr_1: 50.00
    _correct(pay_world["no_show"], "tutor_no_show")  # 10.00 paid out, now owed back
    payroll.payrun_execute(actor=admin, period_start=FEBRUARY[0], period_end=FEBRUARY[1])
    assert _recoverable(priya) == -1000
    april = payroll.payrun_execute(
        actor=admin, period_start=APRIL[0], period_end=APRIL[1]
    ).run  # 40.00 earned
    assert _payable(priya) == 4000

    [transfer] = payroll.payrun_payout(actor=admin, run_id=april.pk)
    assert isinstance(transfer, PayTransfer) and transfer.amount_minor == 3000
    assert connect.calls[-1][3]["amount"] == "3000"
    offset = Posting.objects.get(kind="tutor_pay_offset")
    assert _posting_lines(offset.reference) == {
        (f"tutor:{priya.pk}", "tutor_payable", -1000),
        (f"tutor:{priya.pk}", "tutor_recoverable", 1000),
    }
    assert (_payable(priya), _recoverable(priya)) == (0, 0)
    assert not PayReversal.objects.exists()


def test_the_statement_shows_the_correction_with_its_reason(client: Any, pay_world: dict[str, Any]) -> None:
    admin, priya, attended = pay_world["admin"], pay_world["priya"], pay_world["attended"]
    payroll.payrun_execute(actor=admin, period_start=MARCH[0], period_end=MARCH[1])
    _correct(attended, "no_show")
    april = payroll.payrun_execute(actor=admin, period_start=APRIL[0], period_end=APRIL[1]).run
    client.force_login(priya)
    html = client.get(reverse("payments:my_pay")).content.decode()
    assert "2 Mar 2027, 16:00 UTC, 60 min, Corrected from attended to no show: USD -20.00" in html
    assert "1 Apr 2027 to 1 May 2027: USD 20.00" in html  # April's 40.00 less the correction
    url = reverse("payments:payrun_statement", kwargs={"payrun_id": april.pk, "tutor_id": priya.pk})
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(client.get(url).content)).pages)
    assert "2027-03-02 16:00 UTC, 60 min, Corrected from attended to no show USD -20.00" in text, text
    assert "Total USD 20.00" in text
    client.force_login(admin)
    page = client.get(reverse("payments:payrun", kwargs={"payrun_id": april.pk})).content.decode()
    assert "Corrected from attended to no show" in page and "Priya Shah: USD 20.00" in page


# --- property ------------------------------------------------------------------------------

OUTCOMES = ["attended", "no_show", "tutor_no_show", "late_cancel", "cancelled"]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("outcome"), st.integers(0, 3), st.sampled_from(OUTCOMES)),
        st.tuples(st.just("run"), st.sampled_from([0, 1]), st.just("")),
        st.tuples(st.just("payout"), st.sampled_from([0, 1]), st.just("")),
    ),
    max_size=16,
)
RATES = {"priya": 4000, "omar": 3100}


def _pay(outcome: str, rate: int, percent: int) -> int:
    return {"attended": rate, "no_show": rate * percent // 100}.get(outcome, 0)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS, percent=st.integers(0, 100))
# Always among the examples: paid out, corrected to nothing (a reversal), corrected back
# (a top-up), and a clawback netted against new pay.
@example(
    steps=[
        ("outcome", 0, "attended"),
        ("outcome", 1, "no_show"),
        ("run", 0, ""),
        ("payout", 0, ""),
        ("outcome", 0, "tutor_no_show"),
        ("run", 1, ""),
        ("payout", 0, ""),
        ("outcome", 0, "attended"),
        ("outcome", 1, "cancelled"),
        ("run", 0, ""),
        ("payout", 0, ""),
    ],
    percent=50,
)
def test_pay_always_follows_the_final_outcomes(
    django_db_blocker: Any, steps: list[Any], percent: int
) -> None:
    from django.db import transaction

    import tutoring_core.payments.providers as providers

    recording = Connect()
    original = providers.stripe_client
    providers.stripe_client = lambda: stripe.StripeClient(  # type: ignore[assignment]
        "sk_test_hub", base_addresses={"api": "http://127.0.0.1:9"}, http_client=recording
    )
    try:
        with django_db_blocker.unblock(), transaction.atomic():
            _run_steps(steps, percent)
            transaction.set_rollback(True)
    finally:
        providers.stripe_client = original


def _run_steps(steps: list[Any], percent: int) -> None:
    priya = UserFactory(username="prop-priya")
    omar = UserFactory(tenant=priya.tenant, username="prop-omar")
    tenant = priya.tenant
    PaymentSettingsFactory(tenant=tenant, provider="stripe", student_no_show_tutor_percent=percent)
    for tutor in (priya, omar):
        TutorPayee.objects.create(
            tenant=tenant,
            tutor=tutor,
            hourly_rate_minor=RATES[tutor.username[5:]],
            stripe_account_id=f"acct_{tutor.pk}",
        )
    admin = district_admin(tenant)
    sessions = [
        _session(tutor, day, status="booked") for tutor, day in ((priya, 2), (priya, 3), (omar, 4), (omar, 5))
    ]
    periods = [MARCH, (dt.date(2027, 3, 1), dt.date(2027, 3, 4))]  # a run of March, one of its first days
    final: dict[int, str] = {}
    for kind, value, outcome in steps:
        if kind == "outcome":
            session = sessions[value]
            session.participants.update(outcome="" if outcome == "cancelled" else outcome)
            session.outcome = "" if outcome == "cancelled" else outcome
            session.status = "cancelled" if outcome == "cancelled" else "completed"
            session.save()
            final[value] = outcome
        elif kind == "run":
            payroll.payrun_execute(actor=admin, period_start=periods[value][0], period_end=periods[value][1])
        else:
            for run in PayRun.objects.filter(tenant=tenant).order_by("period_start", "period_end")[value:]:
                payroll.payrun_payout(actor=admin, run_id=run.pk)
        _check_ledger()
    # A last run and payout settle everything the outcomes decided.
    payroll.payrun_execute(actor=admin, period_start=MARCH[0], period_end=MARCH[1])
    for run in PayRun.objects.filter(tenant=tenant):
        payroll.payrun_payout(actor=admin, run_id=run.pk)
    _check_ledger()
    for tutor in (priya, omar):
        expected = sum(
            _pay(final[index], RATES[tutor.username[5:]], percent)
            for index, session in enumerate(sessions)
            if session.tutor_id == tutor.pk and index in final
        )
        earned = PayLine.objects.filter(tutor=tutor).aggregate(total=Sum("amount_minor"))["total"] or 0
        sent = (
            PayTransfer.objects.filter(tutor=tutor)
            .exclude(transfer_id="")
            .aggregate(t=Sum("amount_minor"))["t"]
            or 0
        )
        back = (
            PayReversal.objects.filter(tutor=tutor)
            .exclude(reversal_id="")
            .aggregate(t=Sum("amount_minor"))["t"]
            or 0
        )
        assert (earned, sent - back) == (expected, expected), (tutor.username, steps)
        assert (_payable(tutor), _recoverable(tutor)) == (0, 0)
        for index, session in enumerate(sessions):
            if session.tutor_id == tutor.pk and index in final:
                assert PayLine.objects.filter(session=session).aggregate(t=Sum("amount_minor"))["t"] == _pay(
                    final[index], RATES[tutor.username[5:]], percent
                )
    cost = LedgerAccount.objects.filter(purpose="tutor_cost").aggregate(t=Sum("balance"))["t"] or 0
    assert -cost == (PayLine.objects.aggregate(t=Sum("amount_minor"))["t"] or 0)


def _check_ledger() -> None:
    for row in LedgerAccount.objects.all():
        total = PostingLine.objects.filter(account=row).aggregate(total=Sum("amount"))["total"] or 0
        assert row.balance == total, row
        if not row.may_go_negative:
            assert row.balance >= 0, row
    for posting in Posting.objects.all():
        assert sum(line.amount for line in posting.lines.all()) == 0, posting
    assert (LedgerAccount.objects.aggregate(t=Sum("balance"))["t"] or 0) == 0
