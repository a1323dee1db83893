"""The ledger: balanced, append-only postings; balances the database keeps from going negative."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Sum

from tests.factories import TenantFactory
from tests.payments.factories import PayerAccountFactory
from tutoring_core.payments import ledger
from tutoring_core.payments.errors import InsufficientCredit, InvalidInput
from tutoring_core.payments.models import LedgerAccount, Posting, PostingLine
from tutoring_core.payments.protocol.ledger import (
    LedgerRuleError,
    Line,
    check_balanced,
    format_amount,
    split_forfeit,
)

pytestmark = pytest.mark.django_db
P = LedgerAccount.Purpose


def _accounts() -> tuple[Any, Any, Any]:
    payer = PayerAccountFactory()
    credit = ledger.account(tenant_id=payer.tenant_id, purpose=P.CREDIT, unit="session", payer=payer)
    issued = ledger.account(tenant_id=payer.tenant_id, purpose=P.ISSUED, unit="session")
    return payer, credit, issued


def test_posting_moves_balances_and_repeats_once() -> None:
    payer, credit, issued = _accounts()
    posting, created = ledger.post(
        tenant_id=payer.tenant_id, reference="grant:1", kind="grant", lines=[(issued, -3), (credit, 3)]
    )
    again, created_again = ledger.post(
        tenant_id=payer.tenant_id, reference="grant:1", kind="grant", lines=[(issued, -3), (credit, 3)]
    )
    assert (created, created_again, again.pk) == (True, False, posting.pk)
    credit.refresh_from_db()
    issued.refresh_from_db()
    assert (credit.balance, issued.balance) == (3, -3)
    assert PostingLine.objects.count() == 2


def test_overdraw_is_refused_by_the_database_and_writes_nothing() -> None:
    payer, credit, issued = _accounts()
    ledger.post(
        tenant_id=payer.tenant_id, reference="grant:1", kind="grant", lines=[(issued, -1), (credit, 1)]
    )
    with pytest.raises(InsufficientCredit) as caught:
        ledger.post(
            tenant_id=payer.tenant_id, reference="spend:1", kind="x", lines=[(credit, -2), (issued, 2)]
        )
    assert caught.value.reason == "Not enough spendable credit in session: this needs 2 and the balance is 1."
    assert caught.value.http_status == 402
    assert Posting.objects.count() == 1
    assert PostingLine.objects.count() == 2
    assert LedgerAccount.objects.get(pk=credit.pk).balance == 1


def test_check_constraint_holds_without_python() -> None:
    _payer, credit, _issued = _accounts()
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerAccount.objects.filter(pk=credit.pk).update(balance=-1)


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ([("a", "USD", 100), ("b", "USD", -99)], "The lines in USD sum to 1, not 0."),
        ([("a", "USD", 100)], "A posting needs at least two lines."),
        ([("a", "USD", 0), ("b", "USD", 0)], "A posting line may not be zero."),
        ([("a", "USD", 1.0), ("b", "USD", -1)], "Amounts are whole numbers of the smallest unit, not 1.0."),
        (
            [("a", "usd", 1), ("b", "usd", -1)],
            "'usd' is neither an ISO currency code (USD) nor one of session, minute.",
        ),
        ([("a", "USD", 5), ("b", "EUR", -5)], "The lines in EUR sum to -5, not 0."),
    ],
)
def test_unbalanced_or_malformed_lines_are_refused(lines: list[tuple[str, str, Any]], reason: str) -> None:
    with pytest.raises(LedgerRuleError) as caught:
        check_balanced(Line(key, unit, amount) for key, unit, amount in lines)
    assert caught.value.reason == reason


def test_unbalanced_posting_writes_nothing() -> None:
    payer, credit, issued = _accounts()
    with pytest.raises(InvalidInput) as caught:
        ledger.post(tenant_id=payer.tenant_id, reference="bad", kind="x", lines=[(issued, -2), (credit, 1)])
    assert caught.value.reason == "The lines in session sum to -1, not 0."
    assert (Posting.objects.count(), LedgerAccount.objects.get(pk=credit.pk).balance) == (0, 0)


def test_accounts_of_another_tenant_are_refused() -> None:
    payer, credit, _issued = _accounts()
    foreign = ledger.account(tenant_id=TenantFactory().pk, purpose=P.ISSUED, unit="session")
    with pytest.raises(InvalidInput):
        ledger.post(tenant_id=payer.tenant_id, reference="x", kind="x", lines=[(foreign, -1), (credit, 1)])
    assert Posting.objects.count() == 0


def test_postings_are_append_only() -> None:
    payer, credit, issued = _accounts()
    posting, _ = ledger.post(
        tenant_id=payer.tenant_id, reference="g", kind="g", lines=[(issued, -1), (credit, 1)]
    )
    line = PostingLine.objects.first()
    assert line is not None
    posting.memo = "changed"
    for attempt in (posting.save, posting.delete, line.delete, PostingLine.objects.all().delete):
        with pytest.raises(TypeError, match="append-only"):
            attempt()
    with pytest.raises(TypeError, match="append-only"):
        Posting.objects.filter(pk=posting.pk).update(memo="x")
    assert Posting.objects.get(pk=posting.pk).memo == ""
    assert PostingLine.objects.aggregate(total=Sum("amount"))["total"] == 0


def test_exact_splits_and_formatting() -> None:
    assert split_forfeit(1, 50) == (0, 1)
    assert split_forfeit(5001, 50) == (2500, 2501)
    assert split_forfeit(60, 100) == (60, 0)
    assert format_amount(123456, "USD") == "USD 1234.56"
    assert format_amount(-5, "USD") == "USD -0.05"
    assert format_amount(1, "session") == "1 session"
    assert format_amount(500, "JPY", 0) == "JPY 500"
