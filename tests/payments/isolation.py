"""Isolation registry entries for payments: the pages' payer and purchase ids, the admin models."""

from __future__ import annotations

from tests.isolation import EXEMPT_URL_NAMES

EXEMPT_URL_NAMES["payments:stripe_webhook"] = (
    "Stripe's machine-to-machine webhook: authenticated by the Stripe-Signature over the raw body "
    "(tests/payments/test_stripe.py), takes no object id"
)


from tests.isolation import admin_model, url_param  # noqa: E402
from tests.payments.factories import PackageFactory, PaymentSettingsFactory, PriceFactory  # noqa: E402
from tutoring_core.accounts.models import Tenant  # noqa: E402


@admin_model("payments.PaymentSettings")
def _settings(tenant: Tenant) -> object:
    return PaymentSettingsFactory(tenant=tenant)


@admin_model("payments.Package")
def _package(tenant: Tenant) -> object:
    return PackageFactory(tenant=tenant)


@admin_model("payments.Price")
def _price(tenant: Tenant) -> object:
    return PriceFactory(tenant=tenant)


@admin_model("payments.LedgerAccount")
def _ledger_account(tenant: Tenant) -> object:
    from tutoring_core.payments import ledger

    return ledger.account(tenant_id=tenant.pk, purpose="income", unit="USD")


@url_param("payer_id")
def _payer(tenant: Tenant) -> object:
    from tests.payments.factories import PayerAccountFactory

    return PayerAccountFactory(tenant=tenant).pk


@url_param("purchase_id")
def _purchase(tenant: Tenant) -> object:
    from tests.payments.factories import PurchaseFactory

    return PurchaseFactory(tenant=tenant, status="paid").pk
