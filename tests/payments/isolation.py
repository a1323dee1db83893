"""Isolation registry entries for payments (no admin models registered yet)."""

from __future__ import annotations

from tests.isolation import EXEMPT_URL_NAMES

EXEMPT_URL_NAMES["payments:stripe_webhook"] = (
    "Stripe's machine-to-machine webhook: authenticated by the Stripe-Signature over the raw body "
    "(tests/payments/test_stripe.py), takes no object id"
)
