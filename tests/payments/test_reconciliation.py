"""The nightly reconciliation against localstripe: deliberate differences between the ledger
and Stripe are each reported (stored rows, the admin list, the audit log), and nothing in
the ledger or the purchases is changed by it."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from tests.payments.test_stripe import _browser_pays, _card, _peer_api, _stripe_world
from tests.peers.localstripe import LocalStripe
from tests.scheduling.factories import SessionFactory, World, make_world
from tutoring_core.accounts.models import AuditLog
from tutoring_core.payments import services, tasks
from tutoring_core.payments.models import BookingCharge, Posting, Purchase, ReconciliationDifference
from tutoring_core.payments.providers import StripeProvider

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


def test_each_difference_is_reported_and_nothing_is_changed(
    world: World, stripe_peer: LocalStripe, client: Any
) -> None:
    payer, package = _stripe_world(world)

    def bought() -> Purchase:
        return services.purchase_start(actor=world.guardian, payer_id=payer.pk, package_id=package.pk)

    # 1. In agreement: paid at Stripe, paid in the ledger.
    fine = bought()
    _browser_pays(stripe_peer, fine.provider_ref, "4242424242424242")
    services.purchase_sync(purchase_id=fine.pk)
    # 2. Paid at Stripe, but the webhook never came: the ledger does not know.
    lost = bought()
    _browser_pays(stripe_peer, lost.provider_ref, "4242424242424242")
    # 3. Refunded in Stripe's dashboard, not through the hub.
    dashboard = bought()
    _browser_pays(stripe_peer, dashboard.provider_ref, "4242424242424242")
    services.purchase_sync(purchase_id=dashboard.pk)
    _peer_api(stripe_peer, "POST", "/v1/refunds", payment_intent=dashboard.provider_ref, amount="2500")
    # 4. A payment made at Stripe for this tenant that no purchase or booking names.
    stray = _peer_api(
        stripe_peer,
        "POST",
        "/v1/payment_intents",
        amount="999",
        currency="usd",
        payment_method=_card(stripe_peer, "4242424242424242"),
        confirm="true",
        **{"metadata[tenant]": str(world.tenant.pk)},
    )
    # ...and one of another tenant, which is not this tenant's business.
    _peer_api(
        stripe_peer,
        "POST",
        "/v1/payment_intents",
        amount="777",
        currency="usd",
        payment_method=_card(stripe_peer, "4242424242424242"),
        confirm="true",
        **{"metadata[tenant]": "someone-else"},
    )
    # 5. A card booking settled in the ledger whose authorisation was never captured.
    session = SessionFactory(tutor=world.tutor, status="completed")
    intent = StripeProvider().intent_create(
        key="t:authorize",
        amount=6000,
        currency="USD",
        metadata={"tenant": str(world.tenant.pk)},
        payment_method=_card(stripe_peer, "4242424242424242"),
        manual_capture=True,
        confirm=True,
    )
    assert intent.status == "requires_capture"
    BookingCharge.objects.create(
        tenant=world.tenant,
        session=session,
        student=world.student,
        payer=payer,
        tutor=world.tutor,
        unit="USD",
        amount=6000,
        consumed=6000,
        status="settled",
        outcome="attended",
        payment_intent_id=intent.id,
    )
    postings = Posting.objects.count()
    statuses = dict(Purchase.objects.values_list("pk", "status"))

    tasks.reconcile()  # the nightly task: every Stripe tenant

    found = sorted(
        ReconciliationDifference.objects.values_list("kind", "subject", "ledger_minor", "provider_minor")
    )
    assert found == sorted(
        [
            ("missing_in_ledger", f"purchase:{lost.pk}", 0, 18000),
            ("refund", f"purchase:{dashboard.pk}", 0, 2500),
            ("missing_in_ledger", f"intent:{stray['id']}", 0, 999),
            ("uncaptured", f"booking:{session.pk}:{world.student.pk}", 6000, 0),
        ]
    )
    # Reported only: the ledger and the purchases are as they were.
    assert Posting.objects.count() == postings
    assert dict(Purchase.objects.values_list("pk", "status")) == statuses
    audit = AuditLog.objects.get(action="payments.reconcile")
    assert audit.details == {"checked": 4, "differences": 4}
    # The district admin's list of differences.
    client.force_login(world.admin)
    html = client.get(reverse("admin:payments_reconciliationdifference_changelist")).content.decode()
    assert "Stripe took the payment; the purchase is pending." in html
    assert "Refunded 0 in the ledger, 2500 at Stripe." in html
    assert "The session is settled but the card authorisation is still open." in html


def test_a_ledger_in_agreement_reports_nothing(world: World, stripe_peer: LocalStripe) -> None:
    payer, package = _stripe_world(world)
    purchase = services.purchase_start(actor=world.guardian, payer_id=payer.pk, package_id=package.pk)
    _browser_pays(stripe_peer, purchase.provider_ref, "4242424242424242")
    services.purchase_sync(purchase_id=purchase.pk)
    services.purchase_refund(actor=world.admin, purchase_id=purchase.pk, amount_minor=4500, credits=1)
    from tutoring_core.payments.reconciliation import reconcile_tenant

    run = reconcile_tenant(tenant_id=world.tenant.pk)
    assert (run.checked, run.differences, run.finished_at is not None) == (1, 0, True)


def _lists(recording: Any) -> dict[str, dict[str, str]]:
    """The list requests the job sent, by path, with their query parameters."""
    from urllib.parse import parse_qsl, urlsplit

    sent = {}
    for method, url, _headers, _form in recording.calls:
        parts = urlsplit(url)
        if method == "get" and parts.path in ("/v1/payment_intents", "/v1/refunds"):
            sent[parts.path] = dict(parse_qsl(parts.query))
    return sent


def _retrieved(recording: Any) -> set[str]:
    return {
        url.rsplit("/", 1)[-1].split("?")[0]
        for method, url, _h, _f in recording.calls
        if method == "get" and "/v1/payment_intents/pi_" in url
    }


def test_the_job_reads_a_window_and_sends_the_created_filter(
    world: World, stripe_peer: LocalStripe, monkeypatch: Any
) -> None:
    import datetime as dt

    import stripe
    from django.utils import timezone

    import tutoring_core.payments.providers as providers
    from tests.payments.test_stripe_http import Recording
    from tutoring_core.payments.reconciliation import reconcile_tenant

    payer, package = _stripe_world(world)

    def bought(*, paid: bool) -> Purchase:
        purchase = services.purchase_start(actor=world.guardian, payer_id=payer.pk, package_id=package.pk)
        if paid:
            _browser_pays(stripe_peer, purchase.provider_ref, "4242424242424242")
            services.purchase_sync(purchase_id=purchase.pk)
        return purchase

    closed = bought(paid=True)
    refunded = bought(paid=True)  # then refunded in Stripe's dashboard
    waiting = bought(paid=False)  # still awaiting payment: open in the ledger
    now = timezone.now()
    _peer_api(stripe_peer, "POST", "/v1/refunds", payment_intent=refunded.provider_ref, amount="2500")

    recording = Recording()  # the hub's client, passing through to localstripe
    monkeypatch.setattr(
        providers,
        "stripe_client",
        lambda: stripe.StripeClient(
            "sk_test_hub", base_addresses={"api": stripe_peer.base_url}, http_client=recording
        ),
    )
    run = reconcile_tenant(tenant_id=world.tenant.pk, now=now)
    since = str(int((now - dt.timedelta(days=3)).timestamp()))
    assert _lists(recording) == {
        "/v1/payment_intents": {"limit": "100", "created[gte]": since},
        "/v1/refunds": {"limit": "100", "created[gte]": since},
    }
    # All of it is of the window: each purchase is read again, the dashboard refund reported.
    assert _retrieved(recording) == {closed.provider_ref, refunded.provider_ref, waiting.provider_ref}
    assert (run.checked, run.differences) == (3, 1)
    assert list(
        ReconciliationDifference.objects.values_list("kind", "subject", "ledger_minor", "provider_minor")
    ) == [("refund", f"purchase:{refunded.pk}", 0, 2500)]

    # Ten days on, everything at Stripe and in the ledger is older than the window.
    # localstripe ignores the filter and lists it all; the job drops it here, and of the
    # purchases reads only the one still open.
    later = Recording()
    monkeypatch.setattr(
        providers,
        "stripe_client",
        lambda: stripe.StripeClient(
            "sk_test_hub", base_addresses={"api": stripe_peer.base_url}, http_client=later
        ),
    )
    run = reconcile_tenant(tenant_id=world.tenant.pk, now=now + dt.timedelta(days=10))
    later_since = str(int((now + dt.timedelta(days=7)).timestamp()))
    assert _lists(later)["/v1/payment_intents"] == {"limit": "100", "created[gte]": later_since}
    assert _retrieved(later) == {waiting.provider_ref}
    assert (run.checked, run.differences) == (1, 0)
