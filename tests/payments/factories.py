from __future__ import annotations

import factory

from tests.factories import TenantFactory
from tutoring_core.payments.models import Package, PayerAccount, PayerMember, PaymentSettings, Price, Purchase


class PayerAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PayerAccount

    tenant = factory.SubFactory(TenantFactory)
    name = "Nguyen family"


class PayerMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PayerMember

    payer = factory.SubFactory(PayerAccountFactory)
    tenant = factory.SelfAttribute("payer.tenant")


class PackageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Package

    tenant = factory.SubFactory(TenantFactory)
    name = "Five sessions"
    unit = "session"
    quantity = 5
    amount_minor = 25000
    currency = "USD"


class PriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Price

    tenant = factory.SubFactory(TenantFactory)
    duration_min = 60
    amount_minor = 5000
    currency = "USD"


class PaymentSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PaymentSettings
        django_get_or_create = ("tenant",)

    tenant = factory.SubFactory(TenantFactory)


class PurchaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Purchase

    tenant = factory.SubFactory(TenantFactory)
    payer = factory.SubFactory(PayerAccountFactory, tenant=factory.SelfAttribute("..tenant"))
    package = factory.SubFactory(PackageFactory, tenant=factory.SelfAttribute("..tenant"))
    amount_minor = factory.SelfAttribute("package.amount_minor")
    currency = "USD"
    provider = "invoice"
    status = "invoiced"
    provider_ref = "INV-TEST"
