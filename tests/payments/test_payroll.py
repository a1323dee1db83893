"""Tutor pay: attendance drives pay runs, a session is paid once whatever runs find it, the
tutor's statement (page and PDF), ledger postings to the tutor's payable account, and Connect
payouts (transfers, destination charges with application fees, refunds reversing transfers)
seen at the HTTP client with their domain Idempotency-Keys."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
import stripe
from django.urls import reverse
from pypdf import PdfReader

from tests.factories import UserFactory, district_admin
from tests.payments.factories import PaymentSettingsFactory, PriceFactory
from tests.payments.test_stripe_http import Recording
from tests.scheduling.factories import SessionFactory, SessionParticipantFactory
from tutoring_core.payments import payroll, services
from tutoring_core.payments.errors import InvalidInput, NotAllowed
from tutoring_core.payments.models import (
    BookingCharge,
    LedgerAccount,
    PayerAccount,
    PayLine,
    PayTransfer,
    TutorPayee,
)

pytestmark = pytest.mark.django_db
UTC = dt.UTC
MARCH = (dt.date(2027, 3, 1), dt.date(2027, 4, 1))


def _session(tutor: Any, day: int, *, minutes: int = 60, outcome: str = "", status: str = "completed") -> Any:
    start = dt.datetime(2027, 3, day, 16, tzinfo=UTC) if day > 0 else dt.datetime(2027, 4, 2, 16, tzinfo=UTC)
    session = SessionFactory(
        tutor=tutor, start=start, end=start + dt.timedelta(minutes=minutes), status=status, outcome=outcome
    )
    SessionParticipantFactory(session=session, outcome=outcome)
    return session


@pytest.fixture
def pay_world(db: Any) -> dict[str, Any]:
    priya = UserFactory(username="priya", first_name="Priya", last_name="Shah")
    tenant = priya.tenant
    tenant.name = "North District"
    tenant.save()
    omar = UserFactory(tenant=tenant, username="omar", first_name="Omar", last_name="Diaz")
    PaymentSettingsFactory(
        tenant=tenant, provider="stripe", tutor_share_percent=70, student_no_show_tutor_percent=50
    )
    TutorPayee.objects.create(
        tenant=tenant, tutor=priya, hourly_rate_minor=4000, stripe_account_id="acct_priya"
    )
    PriceFactory(tenant=tenant, duration_min=60, amount_minor=5000)  # Omar: 70% of the price
    sessions = {
        "attended": _session(priya, 2, outcome="attended"),
        "no_show": _session(priya, 3, minutes=30, outcome="no_show"),
        "cancelled": _session(priya, 4, status="cancelled"),
        "tutor_no_show": _session(priya, 5, outcome="tutor_no_show"),
        "omar_attended": _session(omar, 6, outcome="attended"),
        "waiting": _session(priya, 8, status="booked"),
        "april": _session(priya, 0, outcome="attended"),
        "unpriced": _session(omar, 9, minutes=45, outcome="attended"),
    }
    return {"tenant": tenant, "admin": district_admin(tenant), "priya": priya, "omar": omar, **sessions}


def _payable(tutor: Any) -> int:
    row = LedgerAccount.objects.filter(owner=f"tutor:{tutor.pk}", purpose="tutor_payable").first()
    return row.balance if row else 0


def test_attendance_drives_pay_and_running_twice_pays_nothing_twice(pay_world: dict[str, Any]) -> None:
    admin = pay_world["admin"]
    result = payroll.payrun_execute(actor=admin, period_start=MARCH[0], period_end=MARCH[1])
    assert (result.paid_sessions, result.awaiting_outcome, result.unpriced_sessions) == (5, 1, 1)
    lines = {line.session_id: (line.outcome, line.amount_minor) for line in PayLine.objects.all()}
    assert lines == {
        pay_world["attended"].pk: ("attended", 4000),
        pay_world["no_show"].pk: ("no_show", 1000),  # 30 min at 40.00/h, half by policy
        pay_world["cancelled"].pk: ("cancelled", 0),
        pay_world["tutor_no_show"].pk: ("tutor_no_show", 0),
        pay_world["omar_attended"].pk: ("attended", 3500),  # 70% of 50.00
    }
    assert (_payable(pay_world["priya"]), _payable(pay_world["omar"])) == (5000, 3500)
    cost = LedgerAccount.objects.get(owner="tenant", purpose="tutor_cost", unit="USD")
    assert cost.balance == -8500

    again = payroll.payrun_execute(actor=admin, period_start=MARCH[0], period_end=MARCH[1])
    assert (again.run.pk, again.paid_sessions) == (result.run.pk, 0)
    # An overlapping period finds the same sessions paid already.
    overlap = payroll.payrun_execute(
        actor=admin, period_start=dt.date(2027, 2, 15), period_end=dt.date(2027, 3, 15)
    )
    assert overlap.paid_sessions == 0
    assert (PayLine.objects.count(), _payable(pay_world["priya"])) == (5, 5000)

    # The waiting session's outcome arrives: the next run of the period pays it, once.
    waiting = pay_world["waiting"]
    waiting.participants.update(outcome="attended")
    waiting.status = "completed"
    waiting.save()
    assert payroll.payrun_execute(actor=admin, period_start=MARCH[0], period_end=MARCH[1]).paid_sessions == 1
    assert _payable(pay_world["priya"]) == 9000


def test_pay_runs_refuse_bad_periods_and_non_admins(pay_world: dict[str, Any]) -> None:
    admin = pay_world["admin"]
    for start, end, field in (
        (MARCH[1], MARCH[0], "period_end"),
        ("2027-03-01", MARCH[1], "period_start"),
        (dt.date(2027, 1, 1), dt.date(2028, 3, 1), "period_end"),
    ):
        with pytest.raises(InvalidInput) as caught:
            payroll.payrun_execute(actor=admin, period_start=start, period_end=end)  # type: ignore[arg-type]
        assert caught.value.field == field
    with pytest.raises(NotAllowed):
        payroll.payrun_execute(actor=pay_world["priya"], period_start=MARCH[0], period_end=MARCH[1])
    assert PayLine.objects.count() == 0


def test_payout_transfers_once_with_the_domain_key(pay_world: dict[str, Any], monkeypatch: Any) -> None:
    admin = pay_world["admin"]
    run = payroll.payrun_execute(actor=admin, period_start=MARCH[0], period_end=MARCH[1]).run
    recording = Recording(canned={"id": "tr_1", "object": "transfer"})
    import tutoring_core.payments.providers as providers

    monkeypatch.setattr(
        providers,
        "stripe_client",
        lambda: stripe.StripeClient(
            "sk_test_hub", base_addresses={"api": "http://127.0.0.1:9"}, http_client=recording
        ),
    )
    done = payroll.payrun_payout(actor=admin, run_id=run.pk)
    assert [(t.tutor_id, t.amount_minor, t.transfer_id) for t in done] == [
        (pay_world["priya"].pk, 5000, "tr_1")
    ]
    [(method, url, headers, form)] = recording.calls
    assert (method, url) == ("post", "http://127.0.0.1:9/v1/transfers")
    assert headers["Idempotency-Key"] == f"payrun:{run.pk}:tutor:{pay_world['priya'].pk}:transfer"
    assert form == {
        "amount": "5000",
        "currency": "usd",
        "destination": "acct_priya",
        "transfer_group": f"payrun:{run.pk}",
    }
    # Priya is paid out; Omar has no Connect account yet and stays owed.
    assert (_payable(pay_world["priya"]), _payable(pay_world["omar"])) == (0, 3500)
    assert payroll.payrun_payout(actor=admin, run_id=run.pk) == []
    assert len(recording.calls) == 1
    # A session paid later in the same run is a second transfer with its own key.
    waiting = pay_world["waiting"]
    waiting.participants.update(outcome="attended")
    payroll.payrun_execute(actor=admin, period_start=MARCH[0], period_end=MARCH[1])
    recording.canned = {"id": "tr_2", "object": "transfer"}
    [second] = payroll.payrun_payout(actor=admin, run_id=run.pk)
    assert (second.number, second.amount_minor) == (2, 4000)
    assert recording.calls[-1][2]["Idempotency-Key"] == (
        f"payrun:{run.pk}:tutor:{pay_world['priya'].pk}:transfer:2"
    )
    assert PayTransfer.objects.count() == 2


def test_an_unsent_transfer_is_retried_with_the_same_key(pay_world: dict[str, Any], monkeypatch: Any) -> None:
    admin = pay_world["admin"]
    run = payroll.payrun_execute(actor=admin, period_start=MARCH[0], period_end=MARCH[1]).run
    import tutoring_core.payments.providers as providers

    failing = Recording()  # no canned answer: its request goes to a closed port and fails
    monkeypatch.setattr(
        providers,
        "stripe_client",
        lambda: stripe.StripeClient(
            "sk_test_hub",
            base_addresses={"api": "http://127.0.0.1:9"},
            http_client=failing,
            max_network_retries=0,
        ),
    )
    with pytest.raises(services.PaymentFailed):
        payroll.payrun_payout(actor=admin, run_id=run.pk)
    row = PayTransfer.objects.get()
    assert (row.transfer_id, _payable(pay_world["priya"])) == ("", 5000)
    working = Recording(canned={"id": "tr_9", "object": "transfer"})
    monkeypatch.setattr(
        providers,
        "stripe_client",
        lambda: stripe.StripeClient(
            "sk_test_hub", base_addresses={"api": "http://127.0.0.1:9"}, http_client=working
        ),
    )
    payroll.payrun_payout(actor=admin, run_id=run.pk)
    key = f"payrun:{run.pk}:tutor:{pay_world['priya'].pk}:transfer"
    assert [c[2]["Idempotency-Key"] for c in failing.calls + working.calls] == [key, key]
    assert (PayTransfer.objects.get().transfer_id, _payable(pay_world["priya"])) == ("tr_9", 0)


def test_tutor_statement_page_and_pdf(client: Any, pay_world: dict[str, Any]) -> None:
    run = payroll.payrun_execute(actor=pay_world["admin"], period_start=MARCH[0], period_end=MARCH[1]).run
    client.force_login(pay_world["priya"])
    html = client.get(reverse("payments:my_pay")).content.decode()
    assert "Owed to you and not paid out yet: USD 50.00." in html
    assert "1 Mar 2027 to 1 Apr 2027: USD 50.00" in html
    url = reverse(
        "payments:payrun_statement", kwargs={"payrun_id": run.pk, "tutor_id": pay_world["priya"].pk}
    )
    assert url in html
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(client.get(url).content)).pages)
    for expected in (
        "Pay statement 2027-03-01 to 2027-04-01",
        "Tutor\nPriya Shah",
        "2027-03-02 16:00 UTC, 60 min, attended USD 40.00",
        "2027-03-03 16:00 UTC, 30 min, no show USD 10.00",
        "2027-03-04 16:00 UTC, 60 min, cancelled USD 0.00",
        "Total USD 50.00",
    ):
        assert expected in text, (expected, text)
    # Another tutor's statement, and the run page for a tutor not in it: 404.
    other = reverse(
        "payments:payrun_statement", kwargs={"payrun_id": run.pk, "tutor_id": pay_world["omar"].pk}
    )
    assert client.get(other).status_code == 404
    client.force_login(UserFactory(tenant=pay_world["tenant"], username="nobody"))
    assert client.get(reverse("payments:payrun", kwargs={"payrun_id": run.pk})).status_code == 404


def test_admin_runs_a_period_from_the_page(client: Any, pay_world: dict[str, Any]) -> None:
    client.force_login(pay_world["admin"])
    bad = client.post(reverse("payments:payruns"), {"period_start": "2027-04-01", "period_end": "2027-03-01"})
    assert bad.status_code == 400 and "The period must end after it starts." in bad.content.decode()
    response = client.post(
        reverse("payments:payruns"), {"period_start": "2027-03-01", "period_end": "2027-04-01"}
    )
    page = client.get(response["Location"]).content.decode()
    assert "5 session(s) paid; 1 await an outcome; 1 have no rate or price." in page
    assert "Priya Shah: USD 50.00" in page and "Omar Diaz: USD 35.00" in page


def test_destination_charge_fee_and_refund_reversing_the_transfer(
    pay_world: dict[str, Any], monkeypatch: Any
) -> None:
    """A card booking with a tutor on Connect: the charge goes to them less the platform's fee;
    a refund reverses their transfer and the fee; the pay run does not pay them again."""
    import tutoring_core.payments.providers as providers

    recording = Recording(
        canned={"id": "pi_7", "object": "payment_intent", "status": "requires_capture", "amount": 4000,
                "currency": "usd", "client_secret": "s", "metadata": {}}
    )  # fmt: skip
    monkeypatch.setattr(
        providers,
        "stripe_client",
        lambda: stripe.StripeClient(
            "sk_test_hub", base_addresses={"api": "http://127.0.0.1:9"}, http_client=recording
        ),
    )
    tenant = pay_world["tenant"]
    from tutoring_core.payments.models import PaymentSettings, Price

    PaymentSettings.objects.filter(tenant=tenant).update(booking_requires="card")
    Price.objects.filter(tenant=tenant).update(amount_minor=4000)
    session = pay_world["waiting"]
    student = session.participants.get().student
    payer = PayerAccount.objects.create(
        tenant=tenant, name="Nguyen family", stripe_customer_id="cus_1", stripe_payment_method_id="pm_1"
    )
    payer.memberships.create(tenant=tenant, user=student)
    charge = services.booking_reserve(
        tenant_id=tenant.pk,
        session_id=session.pk,
        student_id=student.pk,
        tutor_id=pay_world["priya"].pk,
        subject="",
        duration_min=60,
    )
    assert charge is not None and (charge.destination, charge.application_fee_minor) == ("acct_priya", 1200)
    _m, _url, headers, form = recording.calls[-1]
    assert headers["Idempotency-Key"] == f"booking:{session.pk}:{student.pk}:authorize"
    assert (form["transfer_data[destination]"], form["application_fee_amount"]) == ("acct_priya", "1200")

    # Attended and captured (the capture carries the fee of what is captured).
    BookingCharge.objects.filter(pk=charge.pk).update(status="settled", consumed=4000, outcome="attended")
    recording.canned = {"id": "re_1", "object": "refund", "amount": 1500, "status": "succeeded"}
    services.booking_refund(
        actor=pay_world["admin"], session_id=session.pk, student_id=student.pk, amount_minor=1500
    )
    _m, url, headers, form = recording.calls[-1]
    assert url.endswith("/v1/refunds")
    assert headers["Idempotency-Key"] == f"booking:{session.pk}:{student.pk}:refund:0:1500"
    assert form == {
        "payment_intent": "pi_7",
        "amount": "1500",
        "reverse_transfer": "true",
        "refund_application_fee": "true",
    }
    with pytest.raises(InvalidInput) as caught:
        services.booking_refund(
            actor=pay_world["admin"], session_id=session.pk, student_id=student.pk, amount_minor=2501
        )
    assert caught.value.reason == "At most 2500 USD minor units are left to refund."

    # The pay run lists the session as paid by the card charge and accrues nothing for it.
    session.participants.update(outcome="attended")
    payroll.payrun_execute(actor=pay_world["admin"], period_start=MARCH[0], period_end=MARCH[1])
    line = PayLine.objects.get(session=session)
    assert (line.via, line.amount_minor) == ("destination", 4000)
    assert _payable(pay_world["priya"]) == 5000  # the other sessions only
