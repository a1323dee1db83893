"""JSON API for payments: packages on sale with the policy, buying one (idempotent with an
Idempotency-Key), a payer's balances and paged statement, the refund a cancellation would
give now. Another district's ids answer 404 in tests/api/test_isolation.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.api.conftest import client_for
from tests.payments.factories import (
    PackageFactory,
    PayerAccountFactory,
    PayerMemberFactory,
    PaymentSettingsFactory,
)
from tests.scheduling.factories import WED_10, World
from tutoring_core.payments.models import LedgerAccount, Purchase
from tutoring_core.scheduling import services as scheduling

pytestmark = pytest.mark.django_db


@pytest.fixture
def family(world: World) -> dict[str, Any]:
    PaymentSettingsFactory(
        tenant=world.tenant, provider="invoice", booking_requires="credit", late_cancel_forfeit_percent=50
    )
    payer = PayerAccountFactory(tenant=world.tenant, name="Nguyen family")
    PayerMemberFactory(payer=payer, user=world.guardian)
    PayerMemberFactory(payer=payer, user=world.student)
    minutes = PackageFactory(
        tenant=world.tenant, name="Ten hours", unit="minute", quantity=600, amount_minor=40000
    )
    PackageFactory(tenant=world.tenant, name="Retired", is_active=False)
    PackageFactory(tenant=world.other_tenant, name="Elsewhere")
    return {"payer": payer, "minutes": minutes}


def test_packages_on_sale_with_the_policy(world: World, family: dict[str, Any]) -> None:
    answer = client_for(world.guardian).get("/api/v1/packages")
    assert answer.status_code == 200
    assert answer.json() == {
        "packages": [
            {
                "id": str(family["minutes"].pk),
                "name": "Ten hours",
                "unit": "minute",
                "quantity": 600,
                "amount_minor": 40000,
                "currency": "USD",
            }
        ],
        "policy": answer.json()["policy"],
    }
    assert "50%" in answer.json()["policy"]


def test_buying_is_idempotent_and_the_statement_pages(world: World, family: dict[str, Any]) -> None:
    payer, guardian = family["payer"], client_for(world.guardian)
    url = f"/api/v1/payers/{payer.pk}/purchases"
    body = {"package_id": str(family["minutes"].pk), "purchase_order": "PO-7"}
    first = guardian.post(url, body, headers={"Idempotency-Key": "buy-1"})
    assert first.status_code == 201, first.content
    purchase = Purchase.objects.get()
    assert first.json() == {
        "id": str(purchase.pk),
        "status": "invoiced",
        "provider": "invoice",
        "amount_minor": 40000,
        "currency": "USD",
        "invoice": purchase.provider_ref,
        "pay_url": "",
    }
    again = guardian.post(url, body, headers={"Idempotency-Key": "buy-1"})
    assert (again.status_code, again.json(), again["Idempotent-Replayed"]) == (201, first.json(), "true")
    assert Purchase.objects.count() == 1
    # A second key buys again; an unknown package is refused and writes nothing.
    assert guardian.post(url, body, headers={"Idempotency-Key": "buy-2"}).status_code == 201
    missing = guardian.post(url, {"package_id": str(PackageFactory(tenant=world.other_tenant).pk)})
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "No such package.", "field": "package_id"},
    )
    assert Purchase.objects.count() == 2

    balances = guardian.get(f"/api/v1/payers/{payer.pk}").json()
    assert balances == {
        "id": str(payer.pk),
        "name": "Nguyen family",
        "kind": "family",
        "balances": [
            {"purpose": "Spendable credit", "unit": "minute", "amount": 1200},
            {"purpose": "Owed on invoices", "unit": "USD", "amount": -80000},
        ],
    }
    whole = guardian.get(f"/api/v1/payers/{payer.pk}/statement").json()
    assert (whole["page"], whole["pages"], whole["total"]) == (1, 1, 4)
    assert [(e["account"], e["amount"], e["balance_after"]) for e in whole["entries"]] == [
        ("Spendable credit", 600, 1200),
        ("Owed on invoices", -40000, -80000),
        ("Spendable credit", 600, 600),
        ("Owed on invoices", -40000, -40000),
    ]
    second = guardian.get(f"/api/v1/payers/{payer.pk}/statement", {"page": 2, "per_page": 3}).json()
    assert (second["page"], second["pages"], second["total"]) == (2, 2, 4)
    assert second["entries"] == whole["entries"][3:]
    bad = guardian.get(f"/api/v1/payers/{payer.pk}/statement", {"per_page": 501})
    assert (bad.status_code, bad.json()["field"]) == (400, "per_page")
    # Someone of the district who is not a member: 404, as for another district.
    assert client_for(world.teacher).get(f"/api/v1/payers/{payer.pk}").status_code == 404


def test_refund_quote_follows_the_policy(world: World, family: dict[str, Any], frozen: Any) -> None:
    payer = family["payer"]
    client_for(world.guardian).post(
        f"/api/v1/payers/{payer.pk}/purchases", {"package_id": str(family["minutes"].pk)}
    )
    session = scheduling.booking_create(
        actor=world.admin, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
    )
    url = f"/api/v1/bookings/{session.pk}/refund-quote"
    quote = client_for(world.student).get(url).json()
    assert {k: v for k, v in quote.items() if k != "policy"} == {
        "unit": "minute",
        "held": 60,
        "refund": 60,
        "late": False,
        "notice_hours": 24,
    }
    frozen.move_to(WED_10 - dt.timedelta(hours=2))
    late = client_for(world.guardian).get(url, {"student": str(world.student.pk)}).json()
    assert (late["held"], late["refund"], late["late"]) == (60, 30, True)
    # The tutor's own notice, when set, decides lateness as it does for the cancellation.
    world.profile.cancel_notice_hours = 1
    world.profile.save()
    own = client_for(world.student).get(url).json()
    assert (own["refund"], own["late"], own["notice_hours"]) == (60, False, 1)
    # Quoting changed nothing; a student not in the session, or a stranger, gets 404.
    reserved = LedgerAccount.objects.get(payer=payer, purpose="reserved")
    assert reserved.balance == 60
    assert client_for(world.other_student).get(url).status_code == 404
    assert client_for(world.teacher).get(url, {"student": str(world.student.pk)}).status_code == 404
