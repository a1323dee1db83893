"""Booking with prepaid credit: reserved at booking, settled or refunded by the policy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine

from tests.payments.factories import (
    PackageFactory,
    PayerAccountFactory,
    PayerMemberFactory,
    PaymentSettingsFactory,
)
from tests.scheduling.factories import NOW, WED_10, World, make_world
from tutoring_core.payments import api as payments_api
from tutoring_core.payments import services
from tutoring_core.payments.models import BookingCharge, LedgerAccount, Posting
from tutoring_core.scheduling import services as scheduling
from tutoring_core.scheduling.data import SessionInfo
from tutoring_core.scheduling.errors import SchedulingError
from tutoring_core.scheduling.models import Session, SessionParticipant

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


@pytest.fixture(autouse=True)
def frozen() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _credit_world(world: World, sessions: int = 2, **policy: Any) -> Any:
    PaymentSettingsFactory(tenant=world.tenant, booking_requires="credit", provider="invoice", **policy)
    payer = PayerAccountFactory(tenant=world.tenant, name="Nguyen family")
    PayerMemberFactory(payer=payer, user=world.student)
    PayerMemberFactory(payer=payer, user=world.guardian)
    package = PackageFactory(tenant=world.tenant, quantity=sessions, amount_minor=sessions * 4000)
    services.purchase_start(
        actor=world.admin, payer_id=payer.pk, package_id=package.pk, purchase_order="PO-77"
    )
    return payer


def _balances(payer: Any) -> dict[str, int]:
    return {f"{row.purpose}:{row.unit}": row.balance for row in LedgerAccount.objects.filter(payer=payer)}


def _book(world: World, start: dt.datetime = WED_10) -> SessionInfo:
    return scheduling.booking_create(
        actor=world.guardian, tutor=world.tutor, student=world.student, start=start, duration_min=60
    )


def test_grant_funded_by_default_books_without_a_payer(world: World) -> None:
    session = _book(world)
    assert session.status == "booked"
    assert (BookingCharge.objects.count(), Posting.objects.count()) == (0, 0)
    assert payments_api.policy_info(world.tenant.pk).text == (
        "Sessions are funded by your program; there is nothing to pay."
    )


def test_invoice_purchase_grants_credit_and_owes_the_money(world: World) -> None:
    payer = _credit_world(world)
    assert _balances(payer) == {"credit:session": 2, "receivable:USD": -8000}


def test_booking_reserves_and_attending_uses_the_credit(world: World, frozen: Any) -> None:
    payer = _credit_world(world)
    session = _book(world)
    assert _balances(payer) == {"credit:session": 1, "reserved:session": 1, "receivable:USD": -8000}
    frozen.move_to(WED_10 + dt.timedelta(minutes=70))
    scheduling.session_outcome_set(actor=world.tutor, session_id=session.id, outcome="attended")
    assert _balances(payer) == {"credit:session": 1, "reserved:session": 0, "receivable:USD": -8000}
    consumed = LedgerAccount.objects.get(owner="tenant", purpose="consumed", unit="session")
    assert consumed.balance == 1
    # Recording the same outcome again changes nothing; a correction to tutor_no_show gives it back.
    scheduling.session_outcome_set(actor=world.tutor, session_id=session.id, outcome="attended")
    scheduling.session_outcome_set(actor=world.tutor, session_id=session.id, outcome="tutor_no_show")
    assert _balances(payer)["credit:session"] == 2
    charge = BookingCharge.objects.get()
    assert (charge.status, charge.consumed, charge.corrections) == ("released", 0, 1)


def test_no_credit_refuses_the_booking_with_402_and_writes_nothing(world: World) -> None:
    payer = _credit_world(world, sessions=1)
    _book(world)
    before = (Session.objects.count(), SessionParticipant.objects.count(), Posting.objects.count())
    with pytest.raises(SchedulingError) as caught:
        _book(world, start=WED_10 + dt.timedelta(hours=2))
    assert caught.value.http_status == 402
    assert caught.value.reason == (
        "Not enough credit for a 60-minute session: it needs 1 session or 60 minutes; "
        "Nguyen family has none. Buy a package first."
    )
    assert (Session.objects.count(), SessionParticipant.objects.count(), Posting.objects.count()) == before
    assert _balances(payer) == {"credit:session": 0, "reserved:session": 1, "receivable:USD": -4000}


def test_student_without_payer_is_refused(world: World) -> None:
    PaymentSettingsFactory(tenant=world.tenant, booking_requires="credit")
    with pytest.raises(SchedulingError) as caught:
        _book(world)
    assert caught.value.http_status == 402
    assert "has no payer account" in caught.value.reason
    assert Session.objects.count() == 0


def test_cancel_in_time_gives_all_back(world: World) -> None:
    payer = _credit_world(world)
    session = _book(world)
    scheduling.booking_cancel(actor=world.guardian, session_id=session.id)
    assert _balances(payer)["credit:session"] == 2
    assert _balances(payer)["reserved:session"] == 0


def test_late_cancel_and_no_show_follow_the_policy(world: World, frozen: Any) -> None:
    payer = _credit_world(world, sessions=60, late_cancel_forfeit_percent=50, no_show_forfeit_percent=100)
    assert payments_api.policy_info(world.tenant.pk).text == (
        "Booking reserves the session's credit. Cancel at least 24 hours before the start and you get all of "
        "it back. Cancel later and 50% of it is used up and the rest comes back to you. If the student does "
        "not attend, it is used up. If the tutor does not attend, you get all of it back."
    )
    session = _book(world)
    frozen.move_to(WED_10 - dt.timedelta(hours=2))
    scheduling.booking_cancel(actor=world.guardian, session_id=session.id)
    charge = BookingCharge.objects.get(session=session)
    # One session credit, half forfeited: rounds down, the payer keeps the indivisible unit.
    assert (charge.consumed, charge.outcome, charge.status) == (0, "late_cancel", "released")
    assert _balances(payer)["credit:session"] == 60
    second = _book(world, start=WED_10 + dt.timedelta(hours=2))
    frozen.move_to(WED_10 + dt.timedelta(hours=3, minutes=10))
    scheduling.session_outcome_set(actor=world.tutor, session_id=second.id, outcome="no_show")
    assert _balances(payer)["credit:session"] == 59
    assert BookingCharge.objects.get(session=second).consumed == 1
