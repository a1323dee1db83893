"""Posting to the double-entry ledger: the one way balances change."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from django.db import IntegrityError, transaction
from django.db.models import F

from tutoring_core.accounts.models import User
from tutoring_core.payments.errors import InsufficientCredit, InvalidInput
from tutoring_core.payments.models import LedgerAccount, PayerAccount, Posting, PostingLine
from tutoring_core.payments.protocol.ledger import LedgerRuleError, Line, check_balanced, check_unit

# Accounts that stand for the world outside (money arriving, credit being issued) may go
# negative; a payer's credit, reservations and prepaid money, and what is owed to tutors, never.
NEGATIVE_ALLOWED = frozenset(
    {
        LedgerAccount.Purpose.ISSUED,
        LedgerAccount.Purpose.EXTERNAL,
        LedgerAccount.Purpose.RECEIVABLE,
        LedgerAccount.Purpose.INCOME,
        LedgerAccount.Purpose.TUTOR_COST,
        LedgerAccount.Purpose.TUTOR_RECOVERABLE,
    }
)


def account(
    *, tenant_id: uuid.UUID, purpose: str, unit: str, payer: PayerAccount | None = None, owner: str = ""
) -> LedgerAccount:
    """The ledger account for (owner, purpose, unit), made on first use (race-safe)."""
    check_unit(unit)
    if payer is not None:
        owner = f"payer:{payer.pk}"
    owner = owner or "tenant"
    found, _ = LedgerAccount.objects.get_or_create(
        tenant_id=tenant_id,
        owner=owner,
        purpose=purpose,
        unit=unit,
        defaults={"payer": payer, "may_go_negative": purpose in NEGATIVE_ALLOWED},
    )
    return found


def post(
    *,
    tenant_id: uuid.UUID,
    reference: str,
    kind: str,
    lines: Sequence[tuple[LedgerAccount, int]],
    memo: str = "",
    actor: User | None = None,
    corrects: Posting | None = None,
) -> tuple[Posting, bool]:
    """Post balanced lines once per ``reference``; returns (posting, created).

    Raises InsufficientCredit when a line would take an account that may not go negative
    below zero (the database's CHECK refuses it; nothing is written), InvalidInput for
    unbalanced or malformed lines."""
    try:
        check_balanced(Line(acct.pk, acct.unit, amount) for acct, amount in lines)
    except LedgerRuleError as exc:
        raise InvalidInput(exc.reason, "amount") from None
    for acct, _amount in lines:
        if acct.tenant_id != tenant_id:
            raise InvalidInput("Every account of a posting belongs to the posting's tenant.", "account")
    existing = Posting.objects.filter(tenant_id=tenant_id, reference=reference).first()
    if existing is not None:
        return existing, False
    deltas: dict[int, int] = defaultdict(int)
    for acct, amount in lines:
        deltas[acct.pk] += amount
    try:
        with transaction.atomic():
            posting = Posting.objects.create(
                tenant_id=tenant_id,
                reference=reference,
                kind=kind,
                memo=memo[:300],
                created_by=actor,
                corrects=corrects,
            )
            PostingLine.objects.bulk_create(
                [
                    PostingLine(posting=posting, account=acct, unit=acct.unit, amount=amount)
                    for acct, amount in lines
                ]
            )
            # Primary-key order, so two postings touching the same accounts cannot deadlock.
            for pk in sorted(deltas):
                if deltas[pk]:
                    _move(pk, deltas[pk])
    except _Overdrawn as exc:
        acct = next(a for a, _ in lines if a.pk == exc.account_id)
        raise InsufficientCredit(
            f"Not enough {acct.get_purpose_display().lower()} in {acct.unit}: this needs "
            f"{-deltas[acct.pk]} and the balance is {LedgerAccount.objects.get(pk=acct.pk).balance}.",
            "amount",
        ) from None
    except IntegrityError:
        # Another transaction posted the same reference first: that one stands.
        existing = Posting.objects.filter(tenant_id=tenant_id, reference=reference).first()
        if existing is None:
            raise
        return existing, False
    return posting, True


class _Overdrawn(Exception):
    def __init__(self, account_id: int) -> None:
        super().__init__(account_id)
        self.account_id = account_id


def _move(account_id: int, delta: int) -> None:
    try:
        with transaction.atomic():
            LedgerAccount.objects.filter(pk=account_id).update(balance=F("balance") + delta)
    except IntegrityError as exc:
        if "ledger_account_not_negative" in str(exc) or "CHECK constraint failed" in str(exc):
            raise _Overdrawn(account_id) from None
        raise
