"""Invoices, receipts and tutor pay statements as PDF (fpdf2, pure Python).

Every amount is printed from integer minor units with ``format_amount``; prices include
tax, split with ``tax_included`` (the tenant's rate in basis points). The seller's block is
the district's name and the address lines and tax id of its PaymentSettings.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path

from fpdf import FPDF

from tutoring_core.payments.models import PayLine, PaymentSettings, PayRun, Purchase
from tutoring_core.payments.protocol.ledger import format_amount, format_rate, tax_included

log = logging.getLogger(__name__)
# fontTools logs each font subset at INFO (dozens of lines per PDF).
logging.getLogger("fontTools").setLevel(logging.WARNING)

# Unicode TrueType fonts embedded in every PDF, so names such as "Zoë Łukasiewicz" or "王小明"
# print as written. Debian's fonts-dejavu-core (Latin, Greek, Cyrillic, ...) with
# fonts-droid-fallback (Chinese, Japanese, Korean) for what DejaVu lacks; installed by
# scripts/install-system-test-deps.sh (make test) and deploy/Dockerfile.
FONT_DIR = Path("/usr/share/fonts/truetype")
FONTS = {
    "": FONT_DIR / "dejavu" / "DejaVuSans.ttf",
    "B": FONT_DIR / "dejavu" / "DejaVuSans-Bold.ttf",
}
FALLBACK_FONT = FONT_DIR / "droid" / "DroidSansFallbackFull.ttf"


def unicode_fonts_present() -> bool:
    return all(path.is_file() for path in (*FONTS.values(), FALLBACK_FONT))


class _Doc(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        self._hub_family = "Helvetica"
        self._hub_fallback = False
        if unicode_fonts_present():
            for style, path in FONTS.items():
                self.add_font("DejaVu", style, str(path))
            self._hub_family = "DejaVu"
        else:
            log.warning("Unicode fonts missing (%s): PDFs print Latin-1 only", FONT_DIR)
        self.set_title(self._text(title))
        self.set_creator("Tutoring Hub")
        self.set_auto_page_break(auto=True, margin=15)
        self.add_page()
        self.set_font(self._hub_family, "B", 16)
        self.cell(0, 10, self._text(title), new_x="LMARGIN", new_y="NEXT")
        self.set_font(self._hub_family, "", 10)

    def _text(self, value: str) -> str:
        if self._hub_family != "DejaVu":
            # The built-in Helvetica covers Latin-1; anything else prints as "?" rather than failing.
            return value.encode("latin-1", "replace").decode("latin-1")
        covered = getattr(self.fonts["dejavu"], "cmap", {})  # a TrueType font's characters
        if not self._hub_fallback and any(ord(char) not in covered for char in value):
            # Parsing the 4 MB CJK font costs about 0.3 s: only for a document that needs it.
            self.add_font("DroidFallback", "", str(FALLBACK_FONT))
            self.set_fallback_fonts(["DroidFallback"], exact_match=False)
            self._hub_fallback = True
        return value

    def block(self, heading: str, lines: Sequence[str]) -> None:
        self.set_font(self._hub_family, "B", 10)
        self.cell(0, 6, self._text(heading), new_x="LMARGIN", new_y="NEXT")
        self.set_font(self._hub_family, "", 10)
        for line in lines:
            if line.strip():
                self.multi_cell(0, 5, self._text(line.strip()), new_x="LMARGIN", new_y="NEXT")
        self.ln(3)

    def row(self, label: str, value: str, bold: bool = False) -> None:
        self.set_font(self._hub_family, "B" if bold else "", 10)
        self.cell(120, 6, self._text(label))
        self.cell(0, 6, self._text(value), align="R", new_x="LMARGIN", new_y="NEXT")

    def bytes(self) -> bytes:
        return bytes(self.output())


def _seller(policy: PaymentSettings, tenant_name: str) -> list[str]:
    lines = [tenant_name, *policy.invoice_details.splitlines()]
    if policy.tax_id:
        lines.append(f"Tax ID: {policy.tax_id}")
    return lines


def purchase_document(*, purchase: Purchase, policy: PaymentSettings, tenant_name: str) -> tuple[str, bytes]:
    """(file name, PDF) of a purchase: an invoice while money is owed (or for invoice
    purchases), otherwise a receipt."""
    invoice = purchase.status == Purchase.Status.INVOICED or purchase.provider == "invoice"
    kind = "Invoice" if invoice else "Receipt"
    number = purchase.provider_ref if purchase.provider == "invoice" else f"R-{purchase.pk.hex[:10].upper()}"
    doc = _Doc(f"{kind} {number}")
    doc.block("From", _seller(policy, tenant_name))
    doc.block("To", [purchase.payer.name, *purchase.payer.billing_details.splitlines()])
    doc.row("Date", purchase.created_at.date().isoformat())
    if purchase.purchase_order:
        doc.row("Purchase order", purchase.purchase_order)
    if purchase.provider == "stripe" and purchase.provider_ref:
        doc.row("Card payment", purchase.provider_ref)
    doc.ln(3)
    package = purchase.package
    units = f"{package.quantity} {package.unit}{'' if package.quantity == 1 else 's'}"
    cur = purchase.currency
    net, tax = tax_included(purchase.amount_minor, policy.tax_rate_basis_points)
    doc.row(f"{package.name} ({units})", format_amount(purchase.amount_minor, cur))
    doc.ln(2)
    doc.row("Net amount", format_amount(net, cur))
    doc.row(f"Tax at {format_rate(policy.tax_rate_basis_points)}", format_amount(tax, cur))
    doc.row("Total", format_amount(purchase.amount_minor, cur), bold=True)
    if purchase.refunded_minor:
        doc.row("Refunded", format_amount(purchase.refunded_minor, cur))
    if purchase.status == Purchase.Status.INVOICED:
        doc.row("Amount due", format_amount(purchase.amount_minor - purchase.refunded_minor, cur), bold=True)
    else:
        doc.row("Paid", format_amount(purchase.amount_minor - purchase.refunded_minor, cur), bold=True)
    doc.ln(4)
    doc.block("Status", [purchase.get_status_display()])
    return f"{kind.lower()}-{number}.pdf", doc.bytes()


def pay_statement(
    *, run: PayRun, tutor_name: str, lines: Sequence[PayLine], policy: PaymentSettings, tenant_name: str
) -> bytes:
    """A tutor's pay statement for one run: each session, its outcome and pay, and the total."""
    doc = _Doc(f"Pay statement {run.period_start.isoformat()} to {run.period_end.isoformat()}")
    doc.block("From", _seller(policy, tenant_name))
    doc.block("Tutor", [tutor_name])
    total: dict[str, int] = {}
    for line in lines:
        when = line.session_start.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        doc.row(
            f"{when}, {line.duration_min} min, {line.reason or line.outcome.replace('_', ' ')}",
            format_amount(line.amount_minor, line.currency),
        )
        total[line.currency] = total.get(line.currency, 0) + line.amount_minor
    if not lines:
        doc.row("No paid sessions in this period", "")
    doc.ln(2)
    for currency, amount in sorted(total.items()):
        doc.row("Total", format_amount(amount, currency), bold=True)
    return doc.bytes()
