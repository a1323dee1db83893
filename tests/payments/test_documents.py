"""Invoices and receipts as PDF, read back with pypdf: the exact amounts, the tax fields and
the district's details are in the text."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.urls import reverse
from pypdf import PdfReader

from tests.factories import UserFactory, district_admin
from tests.payments.factories import (
    PackageFactory,
    PayerAccountFactory,
    PayerMemberFactory,
    PaymentSettingsFactory,
)
from tutoring_core.payments import services
from tutoring_core.payments.protocol.ledger import LedgerRuleError, format_rate, tax_included


def _text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


@pytest.mark.parametrize(
    ("gross", "rate", "expected"),
    [
        (25000, 825, (23095, 1905)),  # 1905.31 rounds down
        (10825, 825, (10000, 825)),  # exact
        (1, 10000, (0, 1)),  # 0.5 of a cent of tax rounds half up
        (0, 500, (0, 0)),
        (999, 0, (999, 0)),
    ],
)
def test_tax_included_splits_exactly(gross: int, rate: int, expected: tuple[int, int]) -> None:
    net, tax = tax_included(gross, rate)
    assert (net, tax) == expected
    assert net + tax == gross


def test_tax_rules_refuse_floats_and_bad_rates() -> None:
    for gross, rate in ((10.5, 100), (100, -1), (100, 10001), (-1, 100)):
        with pytest.raises(LedgerRuleError):
            tax_included(gross, rate)  # type: ignore[arg-type]
    assert (format_rate(825), format_rate(2000), format_rate(5)) == ("8.25%", "20%", "0.05%")


@pytest.mark.django_db
def test_district_invoice_pdf_has_the_tax_fields_and_the_districts_details(client: Any) -> None:
    payer = PayerAccountFactory(
        name="Lincoln Middle School", kind="school", billing_details="Attn: Accounts payable\n12 Elm St"
    )
    tenant = payer.tenant
    tenant.name = "North District"
    tenant.save()
    PaymentSettingsFactory(
        tenant=tenant,
        provider="invoice",
        invoice_details="North District Schools\n400 Main Street\nSpringfield, IL 62701",
        tax_id="EIN 12-3456789",
        tax_rate_basis_points=825,
    )
    package = PackageFactory(tenant=tenant, name="Twenty sessions", quantity=20, amount_minor=25000)
    admin = district_admin(tenant)
    purchase = services.purchase_start(
        actor=admin, payer_id=payer.pk, package_id=package.pk, purchase_order="PO-4471"
    )
    client.force_login(admin)
    statement = client.get(reverse("payments:statement", kwargs={"payer_id": payer.pk})).content.decode()
    url = reverse("payments:document", kwargs={"purchase_id": purchase.pk})
    assert f'<a href="{url}">Invoice (PDF)' in statement
    response = client.get(url)
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="invoice-{purchase.provider_ref}.pdf"'
    text = _text(response.content)
    for expected in (
        f"Invoice {purchase.provider_ref}",
        "North District\nNorth District Schools\n400 Main Street\nSpringfield, IL 62701\nTax ID: EIN 12-3456789",
        "Lincoln Middle School\nAttn: Accounts payable\n12 Elm St",
        "Purchase order PO-4471",
        "Twenty sessions (20 sessions) USD 250.00",
        "Net amount USD 230.95",
        "Tax at 8.25% USD 19.05",
        "Total USD 250.00",
        "Amount due USD 250.00",
    ):
        assert expected in text, (expected, text)
    # Paid later: the same invoice says paid.
    services.invoice_mark_paid(actor=admin, purchase_id=purchase.pk)
    text = _text(client.get(url).content)
    assert "Paid USD 250.00" in text and "Amount due" not in text


@pytest.mark.django_db
def test_receipt_for_a_paid_purchase_and_404_for_others(client: Any) -> None:
    payer = PayerAccountFactory(name="Nguyen family")
    parent = UserFactory(tenant=payer.tenant, username="grace")
    PayerMemberFactory(payer=payer, user=parent)
    PaymentSettingsFactory(tenant=payer.tenant, provider="none")
    package = PackageFactory(tenant=payer.tenant, name="Five sessions", amount_minor=12345)
    purchase = services.purchase_start(actor=parent, payer_id=payer.pk, package_id=package.pk)
    client.force_login(parent)
    url = reverse("payments:document", kwargs={"purchase_id": purchase.pk})
    response = client.get(url)
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="receipt-R-{purchase.pk.hex[:10].upper()}.pdf"'
    )
    text = _text(response.content)
    assert "Net amount USD 123.45\nTax at 0% USD 0.00\nTotal USD 123.45" in text
    client.force_login(UserFactory(tenant=payer.tenant, username="bystander"))
    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_pdfs_print_names_in_any_script(client: Any) -> None:
    """The embedded DejaVu and Droid fallback fonts (installed by the project's
    scripts/install-system-test-deps.sh) print Polish, Chinese and accented Latin as written."""
    from tutoring_core.payments.documents import unicode_fonts_present

    assert unicode_fonts_present()
    payer = PayerAccountFactory(name="Zoë Łukasiewicz", billing_details="王小明\nul. Żółta 5, Łódź")
    tenant = payer.tenant
    tenant.name = "Ősi Körzet"
    tenant.save()
    PaymentSettingsFactory(tenant=tenant, provider="invoice", invoice_details="北京市海淀区 1号")
    package = PackageFactory(tenant=tenant, name="Pięć lekcji · 五节课", amount_minor=25000)
    admin = district_admin(tenant)
    purchase = services.purchase_start(actor=admin, payer_id=payer.pk, package_id=package.pk)
    client.force_login(admin)
    body = client.get(reverse("payments:document", kwargs={"purchase_id": purchase.pk})).content
    text = _text(body)
    for expected in (
        "Zoë Łukasiewicz",
        "王小明",
        "ul. Żółta 5, Łódź",
        "Ősi Körzet",
        "北京市海淀区 1号",
        "Pięć lekcji · 五节课",
    ):
        assert expected in text, (expected, text)
    fonts = {
        str(font.get_object()["/BaseFont"]).split("+")[-1]
        for page in PdfReader(io.BytesIO(body)).pages
        for font in page["/Resources"]["/Font"].values()
    }
    assert fonts == {"DejaVuSansBook", "DejaVuSansBold", "DroidSansFallback"}, fonts


def test_the_cjk_font_is_embedded_only_when_needed() -> None:
    from tutoring_core.payments.documents import _Doc

    def fonts(title: str) -> set[str]:
        doc = _Doc(title)
        doc.row("Zoë Łukasiewicz", "USD 1.00")
        return {
            str(font.get_object()["/BaseFont"]).split("+")[-1]
            for page in PdfReader(io.BytesIO(doc.bytes())).pages
            for font in page["/Resources"]["/Font"].values()
        }

    assert fonts("Receipt") == {"DejaVuSansBook", "DejaVuSansBold"}
    assert fonts("Receipt 王小明") == {"DejaVuSansBook", "DejaVuSansBold", "DroidSansFallback"}
