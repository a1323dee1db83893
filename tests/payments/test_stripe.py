"""Stripe through the provider interface, against localstripe on loopback."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import time_machine
from django.urls import reverse

from tests.payments.conftest import API_KEY, WEBHOOK_SECRET, Sink
from tests.payments.factories import (
    PackageFactory,
    PayerAccountFactory,
    PayerMemberFactory,
    PaymentSettingsFactory,
    PriceFactory,
)
from tests.peers.localstripe import LocalStripe
from tests.scheduling.factories import NOW, WED_10, World, make_world
from tutoring_core.payments import services
from tutoring_core.payments.errors import InvalidInput
from tutoring_core.payments.models import BookingCharge, LedgerAccount, Posting, Purchase, WebhookEvent
from tutoring_core.payments.providers import StripeProvider
from tutoring_core.scheduling import services as scheduling

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


@pytest.fixture
def frozen() -> Iterator[Any]:
    # Only the booking tests move time: localstripe signs webhooks with the machine's clock,
    # and Stripe's check allows 5 minutes between that and now.
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _peer_api(peer: LocalStripe, method: str, path: str, **data: Any) -> dict[str, Any]:
    """What a browser does with Stripe Elements (card numbers never reach the hub)."""
    response = requests.request(method, peer.base_url + path, data=data, auth=(API_KEY, ""), timeout=10)
    assert response.status_code < 400, response.text
    return dict(response.json())


def _card(peer: LocalStripe, number: str) -> str:
    pm = _peer_api(
        peer,
        "POST",
        "/v1/payment_methods",
        type="card",
        **{"card[number]": number, "card[exp_month]": "12", "card[exp_year]": "2030", "card[cvc]": "123"},
    )
    return str(pm["id"])


def _browser_pays(peer: LocalStripe, intent_id: str, number: str) -> dict[str, Any]:
    _peer_api(peer, "POST", f"/v1/payment_intents/{intent_id}", payment_method=_card(peer, number))
    response = requests.post(
        f"{peer.base_url}/v1/payment_intents/{intent_id}/confirm", auth=(API_KEY, ""), timeout=10
    )
    return dict(response.json())


def _stripe_world(world: World) -> Any:
    PaymentSettingsFactory(tenant=world.tenant, booking_requires="credit", provider="stripe")
    payer = PayerAccountFactory(tenant=world.tenant)
    PayerMemberFactory(payer=payer, user=world.student)
    PayerMemberFactory(payer=payer, user=world.guardian)
    package = PackageFactory(tenant=world.tenant, quantity=4, amount_minor=18000)
    return payer, package


def _deliver(client: Any, body: bytes, signature: str) -> Any:
    return client.post(
        reverse("payments:stripe_webhook"),
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
    )


def _credit(payer: Any) -> int:
    row = LedgerAccount.objects.filter(payer=payer, purpose="credit", unit="session").first()
    return row.balance if row else 0


@pytest.mark.usefixtures("eager_tasks")
def test_card_payment_with_signed_webhook_replayed(
    world: World,
    stripe_peer: LocalStripe,
    webhook_sink: Sink,
    client: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    payer, package = _stripe_world(world)
    purchase = services.purchase_start(actor=world.guardian, payer_id=payer.pk, package_id=package.pk)
    assert (purchase.status, purchase.provider_ref[:3]) == ("pending", "pi_")
    assert _credit(payer) == 0
    intent = _browser_pays(stripe_peer, purchase.provider_ref, "4242424242424242")
    assert intent["status"] == "succeeded"
    body, signature = webhook_sink.wait_for("payment_intent.succeeded", purchase.provider_ref)[0]
    with django_capture_on_commit_callbacks(execute=True):
        first = _deliver(client, body, signature)
    assert (first.status_code, first.json()) == (200, {"status": "accepted"})
    purchase.refresh_from_db()
    assert purchase.status == "paid"
    assert _credit(payer) == 4
    # The same delivery again: recognised by its event id, nothing more happens.
    with django_capture_on_commit_callbacks(execute=True):
        again = _deliver(client, body, signature)
    assert again.json() == {"status": "duplicate"}
    assert _credit(payer) == 4
    assert WebhookEvent.objects.get().result == "purchase paid"
    income = LedgerAccount.objects.get(owner="tenant", purpose="income", unit="USD")
    assert income.balance == 18000


def test_bad_signature_is_refused_and_nothing_recorded(
    world: World, stripe_peer: LocalStripe, webhook_sink: Sink, client: Any
) -> None:
    payer, package = _stripe_world(world)
    purchase = services.purchase_start(actor=world.guardian, payer_id=payer.pk, package_id=package.pk)
    _browser_pays(stripe_peer, purchase.provider_ref, "4242424242424242")
    body, signature = webhook_sink.wait_for("payment_intent.succeeded", purchase.provider_ref)[0]
    tampered = body.replace(b'"succeeded"', b'"canceled"', 1)
    answer = _deliver(client, tampered, signature)
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "The Stripe-Signature does not match this body."},
    )
    assert _deliver(client, body, "t=1,v1=00").status_code == 400
    assert WebhookEvent.objects.count() == 0
    assert Purchase.objects.get().status == "pending"


def test_three_d_secure_needs_authentication(world: World, stripe_peer: LocalStripe) -> None:
    payer, package = _stripe_world(world)
    purchase = services.purchase_start(actor=world.guardian, payer_id=payer.pk, package_id=package.pk)
    intent = _browser_pays(stripe_peer, purchase.provider_ref, "4000002500003155")
    assert intent["status"] == "requires_action"
    assert services.purchase_sync(purchase_id=purchase.pk).status == "pending"
    assert _credit(payer) == 0
    stripe_peer.authenticate(purchase.provider_ref, intent["client_secret"], success=True)
    assert services.purchase_sync(purchase_id=purchase.pk).status == "paid"
    assert _credit(payer) == 4


def _signed(event_id: str, event_type: str, obj: dict[str, Any]) -> tuple[bytes, str]:
    """An event signed in the test with the endpoint's secret, as Stripe signs (v1 HMAC-SHA256)."""
    import hashlib
    import hmac
    import time

    body = json.dumps(
        {"id": event_id, "object": "event", "type": event_type, "data": {"object": obj}}
    ).encode()
    stamp = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), b"%d." % stamp + body, hashlib.sha256).hexdigest()
    return body, f"t={stamp},v1={mac}"


@pytest.mark.usefixtures("eager_tasks")
def test_out_of_order_webhooks_reread_the_state(
    world: World,
    stripe_peer: LocalStripe,
    webhook_sink: Sink,
    client: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    payer, package = _stripe_world(world)
    purchase = services.purchase_start(actor=world.guardian, payer_id=payer.pk, package_id=package.pk)
    stale = {"id": purchase.provider_ref, "object": "payment_intent", "status": "succeeded", "amount": 18000}
    # An event that claims success before the payment happened: the handler asks Stripe and does nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert _deliver(client, *_signed("evt_early", "payment_intent.succeeded", stale)).json() == {
            "status": "accepted"
        }
    assert (Purchase.objects.get().status, _credit(payer)) == ("pending", 0)
    _browser_pays(stripe_peer, purchase.provider_ref, "4242424242424242")
    succeeded = webhook_sink.wait_for("payment_intent.succeeded", purchase.provider_ref)[0]
    older_failure = {**stale, "status": "requires_payment_method"}
    with django_capture_on_commit_callbacks(execute=True):
        assert _deliver(client, *succeeded).json() == {"status": "accepted"}
        # Older news arriving last: the state is re-read, the purchase stays paid.
        answer = _deliver(client, *_signed("evt_older", "payment_intent.payment_failed", older_failure))
    assert answer.json() == {"status": "accepted"}
    assert Purchase.objects.get().status == "paid"
    assert _credit(payer) == 4
    assert sorted(WebhookEvent.objects.values_list("event_id", "result")) == sorted(
        [
            ("evt_early", "purchase pending"),
            ("evt_older", "purchase paid"),
            (json.loads(succeeded[0])["id"], "purchase paid"),
        ]
    )


def test_partial_refund_takes_back_unused_credit(world: World, stripe_peer: LocalStripe) -> None:
    payer, package = _stripe_world(world)
    purchase = services.purchase_start(actor=world.guardian, payer_id=payer.pk, package_id=package.pk)
    _browser_pays(stripe_peer, purchase.provider_ref, "4242424242424242")
    services.purchase_sync(purchase_id=purchase.pk)
    refunded = services.purchase_refund(
        actor=world.admin, purchase_id=purchase.pk, amount_minor=4500, credits=1
    )
    assert refunded.refunded_minor == 4500
    assert _credit(payer) == 3
    intent = _peer_api(stripe_peer, "GET", f"/v1/payment_intents/{purchase.provider_ref}")
    charge = intent["latest_charge"]
    assert (charge["amount"], charge["amount_refunded"], charge["refunded"]) == (18000, 4500, False)
    # More credit than is left is refused, nothing written, nothing sent.
    postings = Posting.objects.count()
    with pytest.raises(Exception) as caught:
        services.purchase_refund(actor=world.admin, purchase_id=purchase.pk, amount_minor=100, credits=4)
    assert getattr(caught.value, "http_status", None) == 402
    assert Posting.objects.count() == postings
    with pytest.raises(InvalidInput) as too_much:
        services.purchase_refund(actor=world.admin, purchase_id=purchase.pk, amount_minor=13501, credits=0)
    assert too_much.value.reason == "At most 13500 USD minor units are left to refund."
    intent = _peer_api(stripe_peer, "GET", f"/v1/payment_intents/{purchase.provider_ref}")
    assert intent["latest_charge"]["amount_refunded"] == 4500


def _card_world(world: World, stripe_peer: LocalStripe, **policy: Any) -> Any:
    PaymentSettingsFactory(tenant=world.tenant, booking_requires="card", provider="stripe", **policy)
    PriceFactory(tenant=world.tenant, duration_min=60, amount_minor=6000)
    payer = PayerAccountFactory(tenant=world.tenant)
    PayerMemberFactory(payer=payer, user=world.student)
    provider = StripeProvider()
    payer.stripe_customer_id = provider.customer_create(
        key=f"payer:{payer.pk}:customer", name=payer.name, metadata={}
    )
    seti, secret = provider.setup_intent_create(
        key=f"payer:{payer.pk}:setup:1", customer=payer.stripe_customer_id
    )
    pm = _card(stripe_peer, "4242424242424242")
    requests.post(
        f"{stripe_peer.base_url}/v1/setup_intents/{seti}/confirm",
        data={"payment_method": pm, "client_secret": secret, "key": "pk_test_hub"},
        timeout=10,
    ).raise_for_status()
    payer.stripe_payment_method_id = provider.setup_intent_payment_method(seti)
    assert payer.stripe_payment_method_id == pm
    payer.save()
    return payer


@pytest.mark.usefixtures("eager_tasks")
def test_manual_capture_after_the_session(
    world: World, stripe_peer: LocalStripe, frozen: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _card_world(world, stripe_peer)
    session = scheduling.booking_create(
        actor=world.student, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
    )
    charge = BookingCharge.objects.get(session=session)
    assert (charge.status, charge.amount, charge.unit) == ("authorised", 6000, "USD")
    intent = _peer_api(stripe_peer, "GET", f"/v1/payment_intents/{charge.payment_intent_id}")
    assert (intent["status"], intent["capture_method"]) == ("requires_capture", "manual")
    frozen.move_to(WED_10 + dt.timedelta(minutes=65))
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.session_outcome_set(actor=world.tutor, session_id=session.pk, outcome="attended")
    state = StripeProvider().intent_retrieve(charge.payment_intent_id)
    assert (state.status, state.amount_received) == ("succeeded", 6000)
    assert LedgerAccount.objects.get(owner="tenant", purpose="income", unit="USD").balance == 6000


@pytest.mark.usefixtures("eager_tasks")
def test_late_cancel_captures_the_policy_share_and_timely_cancel_voids(
    world: World, stripe_peer: LocalStripe, frozen: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _card_world(world, stripe_peer, late_cancel_forfeit_percent=50)
    late = scheduling.booking_create(
        actor=world.student, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
    )
    timely = scheduling.booking_create(
        actor=world.student,
        tutor=world.tutor,
        student=world.student,
        start=WED_10 + dt.timedelta(days=7),
        duration_min=60,
    )
    frozen.move_to(WED_10 - dt.timedelta(hours=3))
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.booking_cancel(actor=world.student, session_id=late.pk)
        scheduling.booking_cancel(actor=world.student, session_id=timely.pk)
    late_pi = StripeProvider().intent_retrieve(BookingCharge.objects.get(session=late).payment_intent_id)
    timely_pi = StripeProvider().intent_retrieve(BookingCharge.objects.get(session=timely).payment_intent_id)
    assert (late_pi.status, late_pi.amount_received) == ("succeeded", 3000)
    assert timely_pi.status == "canceled"
    assert LedgerAccount.objects.get(owner="tenant", purpose="income", unit="USD").balance == 3000


def test_declined_card_refuses_the_booking(world: World, stripe_peer: LocalStripe, frozen: Any) -> None:
    payer = _card_world(world, stripe_peer)
    payer.stripe_payment_method_id = _card(stripe_peer, "4000000000000341")
    payer.save()
    with pytest.raises(Exception) as caught:
        scheduling.booking_create(
            actor=world.student, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
        )
    assert getattr(caught.value, "http_status", None) == 402
    assert caught.value.reason.startswith("The payment provider refused: ")  # type: ignore[attr-defined]
    assert BookingCharge.objects.count() == 0
    from tutoring_core.scheduling.models import Session

    assert Session.objects.count() == 0
