"""Payment providers behind one interface: none (grant-funded), invoice/PO, and Stripe.

Stripe's SDK talks through ``HubStripeHTTPClient``, which sends every request through
``tutoring_core.http`` (the project's one outbound client: timeouts, the address guard).
Every Stripe call carries an Idempotency-Key named after the domain action
(``booking:{session}:{student}:capture``), so a retried task never charges twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings

from tutoring_core import http
from tutoring_core.payments.errors import PaymentFailed


class HubStripeHTTPClient(stripe.HTTPClient):
    name = "tutoring_core.http"

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        try:
            response = http.request(
                method,
                url,
                headers=dict(headers or {}),
                data=post_data,
                retries=0,  # the SDK retries itself, with the same Idempotency-Key
                raise_for_status=False,
                allow_redirects=False,
            )
        except http.OutboundHTTPError as exc:
            raise stripe.APIConnectionError(
                f"Could not reach Stripe: {exc}", should_retry=not exc.blocked
            ) from exc
        return response.text, response.status_code, response.headers

    def request_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        body, status, response_headers = self.request(method, url, headers, post_data)
        import io

        return io.BytesIO(body.encode()), status, response_headers

    def close(self) -> None:
        return None


def stripe_client() -> stripe.StripeClient:
    if not settings.STRIPE_API_KEY:
        raise PaymentFailed("Card payments are not set up (STRIPE_API_KEY is empty).")
    base: dict[str, str] = {}
    if settings.STRIPE_API_BASE:
        base = {"api": settings.STRIPE_API_BASE, "files": settings.STRIPE_API_BASE}
    return stripe.StripeClient(
        settings.STRIPE_API_KEY,
        base_addresses=base,  # type: ignore[arg-type]
        http_client=HubStripeHTTPClient(),
        max_network_retries=2,
    )


@dataclass(frozen=True)
class IntentState:
    id: str
    status: str  # requires_payment_method, requires_action, requires_capture, succeeded, canceled...
    amount: int
    amount_received: int
    currency: str
    client_secret: str
    metadata: Mapping[str, str]


def _state(intent: Any) -> IntentState:
    return IntentState(
        id=intent.id,
        status=intent.status,
        amount=int(intent.amount),
        amount_received=int(getattr(intent, "amount_received", 0) or 0),
        currency=str(intent.currency).upper(),
        client_secret=str(getattr(intent, "client_secret", "") or ""),
        metadata={str(k): str(v) for k, v in (intent.to_dict().get("metadata") or {}).items()},
    )


def _refuse(exc: stripe.StripeError) -> PaymentFailed:
    message = getattr(exc, "user_message", None) or str(exc) or "The payment was refused."
    return PaymentFailed(f"The payment provider refused: {message}")


class StripeProvider:
    name = "stripe"

    def __init__(self, client: stripe.StripeClient | None = None) -> None:
        self.client = client or stripe_client()

    def customer_create(self, *, key: str, name: str, metadata: Mapping[str, str]) -> str:
        try:
            customer = self.client.v1.customers.create(
                params={"name": name, "metadata": dict(metadata)}, options={"idempotency_key": key}
            )
        except stripe.StripeError as exc:
            raise _refuse(exc) from exc
        return str(customer.id)

    def setup_intent_create(self, *, key: str, customer: str) -> tuple[str, str]:
        """A SetupIntent the browser confirms with Stripe Elements to save a card: (id, client_secret)."""
        try:
            intent = self.client.v1.setup_intents.create(
                params={"customer": customer, "usage": "off_session"}, options={"idempotency_key": key}
            )
        except stripe.StripeError as exc:
            raise _refuse(exc) from exc
        return str(intent.id), str(intent.client_secret)

    def setup_intent_payment_method(self, setup_intent_id: str) -> str:
        intent = self.client.v1.setup_intents.retrieve(setup_intent_id)
        return str(intent.payment_method or "") if intent.status == "succeeded" else ""

    def setup_intent_state(self, setup_intent_id: str) -> tuple[str, str, str]:
        """(status, customer, payment method) of a SetupIntent, as Stripe holds it now."""
        try:
            intent = self.client.v1.setup_intents.retrieve(setup_intent_id)
        except stripe.InvalidRequestError as exc:
            raise _refuse(exc) from exc
        raw = intent.to_dict()
        method = raw.get("payment_method") or ""
        if isinstance(method, dict):
            method = method.get("id", "")
        return str(raw.get("status") or ""), str(raw.get("customer") or ""), str(method)

    def intent_pay_with(self, *, key: str, intent_id: str, payment_method: str) -> IntentState:
        """Attach a saved payment method to a PaymentIntent and confirm it on the payer's
        behalf (on session). The answer may be requires_action: the browser then runs
        Stripe.js confirmCardPayment for 3-D Secure."""
        try:
            # Two calls (update, then confirm without parameters): localstripe confirms only
            # an intent whose payment method is already set; Stripe accepts both ways.
            self.client.v1.payment_intents.update(
                intent_id,
                params={"payment_method": payment_method},
                options={"idempotency_key": key + ":attach"},
            )
            intent = self.client.v1.payment_intents.confirm(intent_id, options={"idempotency_key": key})
        except stripe.StripeError as exc:
            raise _refuse(exc) from exc
        return _state(intent)

    def intents_since(self, *, created_after: int) -> list[tuple[str, str, Mapping[str, str]]]:
        """(id, status, metadata) of the PaymentIntents created at or after the Unix time.

        Stripe filters with ``created[gte]``; what comes back is filtered here as well (a peer
        that ignores the filter, such as localstripe, must not widen the window)."""
        found: list[tuple[str, str, Mapping[str, str]]] = []
        listed = self.client.v1.payment_intents.list(params={"limit": 100, "created": {"gte": created_after}})
        for intent in listed.auto_paging_iter():
            raw = intent.to_dict()
            if int(raw.get("created") or 0) >= created_after:
                found.append((str(raw["id"]), str(raw["status"]), dict(raw.get("metadata") or {})))
        return found

    def refunded_intents_since(self, *, created_after: int) -> set[str]:
        """The PaymentIntents with a refund created at or after the Unix time (made through
        the hub or in Stripe's dashboard), filtered by Stripe and here as ``intents_since``."""
        found: set[str] = set()
        listed = self.client.v1.refunds.list(params={"limit": 100, "created": {"gte": created_after}})
        for refund in listed.auto_paging_iter():
            raw = refund.to_dict()
            intent = raw.get("payment_intent")
            if isinstance(intent, dict):
                intent = intent.get("id")
            if intent and int(raw.get("created") or 0) >= created_after:
                found.add(str(intent))
        return found

    def payment_totals(self, intent_id: str) -> tuple[str, int, int]:
        """(status, captured, refunded) of a payment, in minor units, from its charge.

        Captured is the charge's amount_captured (localstripe has none: the whole amount of
        a captured charge, and it books a partial capture's rest as a refund, so captured
        minus refunded is what was kept either way)."""
        try:
            intent = self.client.v1.payment_intents.retrieve(intent_id)
        except stripe.InvalidRequestError:
            return "missing", 0, 0
        raw = intent.to_dict()
        charge = raw.get("latest_charge")
        if not charge:
            return str(raw.get("status")), 0, 0
        if not isinstance(charge, dict):
            charge = self.client.v1.charges.retrieve(str(charge)).to_dict()
        if charge.get("amount_captured") is not None:
            captured = int(charge["amount_captured"])
        else:
            captured = int(charge["amount"]) if charge.get("captured") else 0
        return str(raw.get("status")), captured, int(charge.get("amount_refunded") or 0)

    def intent_create(
        self,
        *,
        key: str,
        amount: int,
        currency: str,
        metadata: Mapping[str, str],
        customer: str = "",
        payment_method: str = "",
        manual_capture: bool = False,
        confirm: bool = False,
        destination: str = "",
        application_fee: int | None = None,
    ) -> IntentState:
        """A PaymentIntent. With ``destination`` (a tutor's Connect Express account) the
        money goes on to them less ``application_fee``, the platform's part."""
        params: Any = {
            "amount": amount,
            "currency": currency.lower(),
            "metadata": dict(metadata),
            "payment_method_types": ["card"],
        }
        if customer:
            params["customer"] = customer
        if payment_method:
            params["payment_method"] = payment_method
        if manual_capture:
            params["capture_method"] = "manual"
        if confirm:
            params["confirm"] = True
            if customer and payment_method:
                params["off_session"] = True
        if destination:
            params["transfer_data"] = {"destination": destination}
            if application_fee is not None:
                params["application_fee_amount"] = application_fee
        try:
            intent = self.client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
        except stripe.StripeError as exc:
            raise _refuse(exc) from exc
        return _state(intent)

    def intent_retrieve(self, intent_id: str) -> IntentState:
        intent = self.client.v1.payment_intents.retrieve(intent_id)
        state = _state(intent)
        raw = intent.to_dict()
        charge = raw.get("latest_charge")
        if raw.get("amount_received") is None and state.status == "succeeded" and charge:
            # localstripe has no amount_received (and books a partial capture as a capture of the
            # whole plus a refund of the rest): read it from the charge instead.
            if not isinstance(charge, dict):
                charge = self.client.v1.charges.retrieve(str(charge)).to_dict()
            received = int(charge["amount"]) - int(charge.get("amount_refunded") or 0)
            state = IntentState(**{**state.__dict__, "amount_received": received})
        return state

    def intent_capture(
        self, *, key: str, intent_id: str, amount: int | None = None, application_fee: int | None = None
    ) -> IntentState:
        """Capture an authorisation (part of it with ``amount``); for a destination charge
        ``application_fee`` is the platform's part of what is captured."""
        params: Any = {}
        if amount is not None:
            params["amount_to_capture"] = amount
        if application_fee is not None:
            params["application_fee_amount"] = application_fee
        try:
            intent = self.client.v1.payment_intents.capture(
                intent_id, params=params, options={"idempotency_key": key}
            )
        except stripe.StripeError as exc:
            raise _refuse(exc) from exc
        return _state(intent)

    def intent_cancel(self, *, key: str, intent_id: str) -> IntentState:
        try:
            intent = self.client.v1.payment_intents.cancel(intent_id, options={"idempotency_key": key})
        except stripe.StripeError as exc:
            raise _refuse(exc) from exc
        return _state(intent)

    def refund_create(self, *, key: str, intent_id: str, amount: int, reverse_transfer: bool = False) -> str:
        """Refund part of a payment; with ``reverse_transfer`` the tutor's share comes back too."""
        params: Any = {"payment_intent": intent_id, "amount": amount}
        if reverse_transfer:
            params["reverse_transfer"] = True
            params["refund_application_fee"] = True
        try:
            refund = self.client.v1.refunds.create(params=params, options={"idempotency_key": key})
        except stripe.StripeError as exc:
            raise _refuse(exc) from exc
        return str(refund.id)

    def transfer_create(self, *, key: str, amount: int, currency: str, destination: str, group: str) -> str:
        """Pay a tutor's Connect Express account (a pay run's line)."""
        try:
            transfer = self.client.v1.transfers.create(
                params={
                    "amount": amount,
                    "currency": currency.lower(),
                    "destination": destination,
                    "transfer_group": group,
                },
                options={"idempotency_key": key},
            )
        except stripe.StripeError as exc:
            raise _refuse(exc) from exc
        return str(transfer.id)

    def transfer_reverse(self, *, key: str, transfer_id: str, amount: int) -> str:
        """Take back part of a Connect transfer (a tutor paid for a session later corrected)."""
        try:
            reversal = self.client.v1.transfers.reversals.create(
                transfer_id, params={"amount": amount}, options={"idempotency_key": key}
            )
        except stripe.StripeError as exc:
            raise _refuse(exc) from exc
        return str(reversal.id)
