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


def _paid_run(tenant: Tenant) -> object:
    from tests.factories import UserFactory
    from tests.scheduling.factories import SessionFactory
    from tutoring_core.payments.models import PayLine, PayRun

    run = PayRun.objects.create(tenant=tenant, period_start="2027-03-01", period_end="2027-04-01")
    session = SessionFactory(tutor=UserFactory(tenant=tenant))
    PayLine.objects.create(
        tenant=tenant,
        run=run,
        tutor=session.tutor,
        session=session,
        session_start=session.start,
        duration_min=60,
        outcome="attended",
        amount_minor=4000,
        currency="USD",
    )
    return run


@url_param("payrun_id")
def _payrun(tenant: Tenant) -> object:
    return _paid_run(tenant).pk  # type: ignore[attr-defined]


@admin_model("payments.PayRun")
def _payrun_admin(tenant: Tenant) -> object:
    return _paid_run(tenant)


@admin_model("payments.TutorPayee")
def _payee(tenant: Tenant) -> object:
    from tests.factories import UserFactory
    from tutoring_core.payments.models import TutorPayee

    return TutorPayee.objects.create(tenant=tenant, tutor=UserFactory(tenant=tenant), hourly_rate_minor=4000)


@admin_model("payments.ReconciliationDifference")
def _difference(tenant: Tenant) -> object:
    from django.utils import timezone

    from tutoring_core.payments.models import Reconciliation, ReconciliationDifference

    run = Reconciliation.objects.create(tenant=tenant, started_at=timezone.now())
    return ReconciliationDifference.objects.create(
        reconciliation=run, tenant=tenant, kind="amount", subject="purchase:x", detail="differs"
    )
