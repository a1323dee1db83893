"""Hypothesis: no sequence of purchases, bookings, cancellations, refunds, outcomes and
corrections makes a balance negative or loses a unit; every posting balances."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.payments.factories import (
    PackageFactory,
    PayerAccountFactory,
    PayerMemberFactory,
    PaymentSettingsFactory,
)
from tests.scheduling.factories import NOW, WED_10, make_world
from tutoring_core.payments import services
from tutoring_core.payments.models import LedgerAccount, Posting, PostingLine, Purchase
from tutoring_core.scheduling import services as scheduling
from tutoring_core.scheduling.errors import SchedulingError
from tutoring_core.scheduling.models import Session

pytestmark = pytest.mark.django_db(transaction=False)

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(1, 3)),
        st.tuples(st.just("book"), st.integers(0, 15)),
        st.tuples(st.just("cancel"), st.integers(0, 15)),
        st.tuples(st.just("outcome"), st.sampled_from(["attended", "no_show", "tutor_no_show"])),
        st.tuples(st.just("refund"), st.integers(0, 3)),
    ),
    max_size=14,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS, late_percent=st.integers(0, 100), no_show_percent=st.integers(0, 100))
def test_ledger_invariants(
    django_db_blocker: Any, steps: list[tuple[str, Any]], late_percent: int, no_show_percent: int
) -> None:
    from django.db import transaction

    with django_db_blocker.unblock(), transaction.atomic():
        _run(steps, late_percent, no_show_percent)
        transaction.set_rollback(True)


def _run(steps: list[tuple[str, Any]], late_percent: int, no_show_percent: int) -> None:
    world = make_world(slug="prop")
    PaymentSettingsFactory(
        tenant=world.tenant,
        booking_requires="credit",
        provider="invoice",
        late_cancel_forfeit_percent=late_percent,
        no_show_forfeit_percent=no_show_percent,
    )
    payer = PayerAccountFactory(tenant=world.tenant)
    PayerMemberFactory(payer=payer, user=world.student)
    package = PackageFactory(tenant=world.tenant, quantity=2, amount_minor=7001)
    with time_machine.travel(NOW, tick=False) as clock:
        for kind, value in steps:
            try:
                if kind == "buy":
                    for _ in range(value):
                        services.purchase_start(actor=world.admin, payer_id=payer.pk, package_id=package.pk)
                elif kind == "book":
                    # Slots two hours apart over Wednesday and the next days' working hours.
                    start = WED_10 + dt.timedelta(days=value // 4 * 7, hours=2 * (value % 4))
                    scheduling.booking_create(
                        actor=world.student,
                        tutor=world.tutor,
                        student=world.student,
                        start=start,
                        duration_min=60,
                    )
                elif kind == "cancel":
                    booked = list(Session.objects.filter(status="booked", start__gt=NOW))
                    if booked:
                        target = booked[value % len(booked)]
                        clock.move_to(target.start - dt.timedelta(hours=value % 30))
                        scheduling.booking_cancel(actor=world.student, session_id=target.pk)
                        clock.move_to(NOW)
                elif kind == "outcome":
                    session = Session.objects.filter(status__in=["booked", "completed"]).first()
                    if session is not None:
                        clock.move_to(session.end + dt.timedelta(minutes=5))
                        scheduling.session_outcome_set(
                            actor=world.tutor, session_id=session.pk, outcome=value
                        )
                        clock.move_to(NOW)
                elif kind == "refund":
                    purchase = Purchase.objects.filter(payer=payer).first()
                    if purchase is not None:
                        services.purchase_refund(
                            actor=world.admin,
                            purchase_id=purchase.pk,
                            amount_minor=1001 * (value + 1),
                            credits=value,
                        )
            except SchedulingError:
                clock.move_to(NOW)  # a refusal must leave everything as it was: checked below
            _check(payer)


def _check(payer: Any) -> None:
    for row in LedgerAccount.objects.all():
        total = PostingLine.objects.filter(account=row).aggregate(total=Sum("amount"))["total"] or 0
        assert row.balance == total, row
        if not row.may_go_negative:
            assert row.balance >= 0, row
    for posting in Posting.objects.all():
        per_unit: dict[str, int] = {}
        for line in posting.lines.all():
            per_unit[line.unit] = per_unit.get(line.unit, 0) + line.amount
        assert set(per_unit.values()) <= {0}, posting
    # Nothing is lost: every session credit issued is spendable, reserved or consumed.
    issued = (
        -LedgerAccount.objects.get(owner="tenant", purpose="issued", unit="session").balance
        if LedgerAccount.objects.filter(purpose="issued").exists()
        else 0
    )
    held = (
        LedgerAccount.objects.filter(
            unit="session", purpose__in=["credit", "reserved", "consumed"]
        ).aggregate(total=Sum("balance"))["total"]
        or 0
    )
    assert issued == held
    money = LedgerAccount.objects.filter(unit="USD").aggregate(total=Sum("balance"))["total"] or 0
    assert money == 0
