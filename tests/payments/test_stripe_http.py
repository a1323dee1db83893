"""What the hub sends to Stripe, seen at its HTTP client: Idempotency-Keys named after the
domain action on every call, and the Connect parameters localstripe does not know
(transfer_data, application_fee_amount, reverse_transfer, transfers)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import pytest
import stripe

from tests.factories import district_admin
from tests.payments.factories import PackageFactory, PayerAccountFactory
from tests.peers.localstripe import LocalStripe
from tutoring_core.payments import services
from tutoring_core.payments.models import PayerAccount
from tutoring_core.payments.providers import HubStripeHTTPClient, StripeProvider

pytestmark = pytest.mark.django_db


class Recording(HubStripeHTTPClient):
    """The hub's client, recording each request; ``canned`` answers without the network
    (for Connect calls, which no local peer implements)."""

    def __init__(self, canned: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        self.canned = canned

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: Any = None,
    ) -> Any:
        form = dict(parse_qsl(post_data or "", keep_blank_values=True))
        self.calls.append((method, url, dict(headers or {}), form))
        if self.canned is not None:
            return json.dumps(self.canned), 200, {"Request-Id": "req_test"}
        return super().request(method, url, headers, post_data)


def _provider(client: Recording, base: str = "http://127.0.0.1:9") -> StripeProvider:
    return StripeProvider(
        stripe.StripeClient(
            "sk_test_hub", base_addresses={"api": base}, http_client=client, max_network_retries=2
        )
    )


def test_every_write_carries_the_domain_idempotency_key(stripe_peer: LocalStripe, settings: Any) -> None:
    payer = PayerAccountFactory()
    package = PackageFactory(tenant=payer.tenant, amount_minor=1000)
    from tests.payments.factories import PaymentSettingsFactory

    PaymentSettingsFactory(tenant=payer.tenant, provider="stripe")
    recording = Recording()
    import tutoring_core.payments.providers as providers

    original = providers.stripe_client
    providers.stripe_client = lambda: stripe.StripeClient(  # type: ignore[assignment]
        "sk_test_hub", base_addresses={"api": stripe_peer.base_url}, http_client=recording
    )
    try:
        purchase = services.purchase_start(
            actor=district_admin(payer.tenant), payer_id=payer.pk, package_id=package.pk
        )
    finally:
        providers.stripe_client = original
    # First the payer's Stripe customer (so a card saved while paying can pay again), then the intent.
    (_m, url, headers, form), (method, url2, headers2, form) = recording.calls
    assert (url, headers["Idempotency-Key"]) == (
        f"{stripe_peer.base_url}/v1/customers",
        f"payer:{payer.pk}:customer",
    )
    assert (method, url2) == ("post", f"{stripe_peer.base_url}/v1/payment_intents")
    assert headers2["Idempotency-Key"] == f"purchase:{purchase.pk}:intent"
    assert form["customer"] == PayerAccount.objects.get(pk=payer.pk).stripe_customer_id
    assert (form["amount"], form["currency"], form["metadata[purchase]"]) == ("1000", "usd", str(purchase.pk))


def test_connect_destination_charge_fee_and_reverse_transfer() -> None:
    recording = Recording(
        canned={
            "id": "pi_1",
            "object": "payment_intent",
            "status": "requires_capture",
            "amount": 6000,
            "currency": "usd",
            "client_secret": "s",
            "metadata": {},
        }
    )
    provider = _provider(recording)
    provider.intent_create(
        key="booking:s1:u1:authorize",
        amount=6000,
        currency="USD",
        metadata={"session": "s1"},
        customer="cus_1",
        payment_method="pm_1",
        manual_capture=True,
        confirm=True,
        destination="acct_tutor",
        application_fee=1200,
    )
    _m, url, headers, form = recording.calls[-1]
    assert url.endswith("/v1/payment_intents")
    assert headers["Idempotency-Key"] == "booking:s1:u1:authorize"
    assert {
        k: form[k]
        for k in (
            "transfer_data[destination]",
            "application_fee_amount",
            "capture_method",
            "confirm",
            "off_session",
        )
    } == {
        "transfer_data[destination]": "acct_tutor",
        "application_fee_amount": "1200",
        "capture_method": "manual",
        "confirm": "true",
        "off_session": "true",
    }
    recording.canned = {
        "id": "pi_1",
        "object": "payment_intent",
        "status": "succeeded",
        "amount": 6000,
        "amount_received": 3000,
        "currency": "usd",
        "metadata": {},
    }
    provider.intent_capture(key="booking:s1:u1:capture", intent_id="pi_1", amount=3000)
    _m, url, headers, form = recording.calls[-1]
    assert (url.endswith("/v1/payment_intents/pi_1/capture"), headers["Idempotency-Key"], form) == (
        True,
        "booking:s1:u1:capture",
        {"amount_to_capture": "3000"},
    )
    recording.canned = {"id": "re_1", "object": "refund", "amount": 3000}
    provider.refund_create(key="booking:s1:u1:refund:1", intent_id="pi_1", amount=3000, reverse_transfer=True)
    _m, url, headers, form = recording.calls[-1]
    assert url.endswith("/v1/refunds")
    assert headers["Idempotency-Key"] == "booking:s1:u1:refund:1"
    assert form == {
        "payment_intent": "pi_1",
        "amount": "3000",
        "reverse_transfer": "true",
        "refund_application_fee": "true",
    }
    recording.canned = {"id": "tr_1", "object": "transfer"}
    provider.transfer_create(
        key="payrun:2027-03:tutor:t1",
        amount=4800,
        currency="USD",
        destination="acct_tutor",
        group="payrun:2027-03",
    )
    _m, url, headers, form = recording.calls[-1]
    assert url.endswith("/v1/transfers")
    assert headers["Idempotency-Key"] == "payrun:2027-03:tutor:t1"
    assert form == {
        "amount": "4800",
        "currency": "usd",
        "destination": "acct_tutor",
        "transfer_group": "payrun:2027-03",
    }


def test_retries_reuse_the_same_key_and_the_address_guard_applies(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = False
    recording = Recording()
    provider = _provider(recording, base="http://127.0.0.1:9")
    from tutoring_core.payments.errors import PaymentFailed

    with pytest.raises(PaymentFailed) as caught:
        provider.transfer_create(key="payrun:x", amount=1, currency="USD", destination="acct_1", group="g")
    assert "non-public address" in caught.value.reason
    # Refused by the guard: not retried (a refusal cannot pass), one attempt with its key.
    assert [call[2]["Idempotency-Key"] for call in recording.calls] == ["payrun:x"]
