"""Ledger rules that need no Django: balanced lines, exact splits, the refund policy.

Amounts are integers in a unit's smallest part: minor units of an ISO 4217 currency
("USD" cents), whole sessions ("session") or minutes ("minute"). No floats anywhere.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

CREDIT_UNITS = ("session", "minute")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class LedgerRuleError(ValueError):
    """Lines that may not be posted; ``reason`` says why in words a person can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_unit(unit: str) -> str:
    if unit in CREDIT_UNITS or (isinstance(unit, str) and _CURRENCY.match(unit)):
        return unit
    raise LedgerRuleError(
        f"{unit!r} is neither an ISO currency code (USD) nor one of {', '.join(CREDIT_UNITS)}."
    )


@dataclass(frozen=True)
class Line:
    account_key: object
    unit: str
    amount: int


def check_balanced(lines: Iterable[Line]) -> dict[str, int]:
    """Raise unless every amount is a non-zero int and each unit's amounts sum to zero.
    Returns the total moved per unit (the sum of the positive amounts)."""
    sums: dict[str, int] = defaultdict(int)
    moved: dict[str, int] = defaultdict(int)
    count = 0
    for line in lines:
        count += 1
        if type(line.amount) is not int:  # bool, float, Decimal: all refused
            raise LedgerRuleError(f"Amounts are whole numbers of the smallest unit, not {line.amount!r}.")
        if line.amount == 0:
            raise LedgerRuleError("A posting line may not be zero.")
        check_unit(line.unit)
        sums[line.unit] += line.amount
        if line.amount > 0:
            moved[line.unit] += line.amount
    if count < 2:
        raise LedgerRuleError("A posting needs at least two lines.")
    unbalanced = {unit: total for unit, total in sums.items() if total != 0}
    if unbalanced:
        unit, total = sorted(unbalanced.items())[0]
        raise LedgerRuleError(f"The lines in {unit} sum to {total}, not 0.")
    return dict(moved)


def split_forfeit(amount: int, forfeit_percent: int) -> tuple[int, int]:
    """(forfeited, refunded) parts of ``amount``; they always add up to ``amount``.

    The forfeited part rounds down: the payer keeps any indivisible remainder."""
    if type(amount) is not int or amount < 0:
        raise LedgerRuleError("The amount must be a non-negative whole number.")
    if type(forfeit_percent) is not int or not 0 <= forfeit_percent <= 100:
        raise LedgerRuleError("The forfeit share is a whole percentage from 0 to 100.")
    forfeited = amount * forfeit_percent // 100
    return forfeited, amount - forfeited


def forfeit_percent(*, outcome: str, late_cancel_percent: int, no_show_percent: int) -> int:
    """The share of a booking's reserved credit the payer loses for an outcome.

    attended: all of it is used; a cancel in time or the tutor's no-show: none;
    a late cancel and a student's no-show: the tenant's policy."""
    if outcome == "attended":
        return 100
    if outcome in ("", "cancelled", "tutor_no_show"):
        return 0
    if outcome == "late_cancel":
        return late_cancel_percent
    if outcome == "no_show":
        return no_show_percent
    raise LedgerRuleError(f"Unknown outcome {outcome!r}.")


def format_amount(amount: int, unit: str, exponent: int = 2) -> str:
    """1234 USD -> 'USD 12.34'; 3 session -> '3 sessions'. Integer arithmetic only."""
    if unit in CREDIT_UNITS:
        return f"{amount} {unit}{'' if amount == 1 else 's'}"
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), 10**exponent)
    return f"{unit} {sign}{whole}.{part:0{exponent}d}" if exponent else f"{unit} {sign}{whole}"


def policy_text(*, requires: str, late_cancel_percent: int, no_show_percent: int, notice_hours: int) -> str:
    """The cancellation and no-show policy as a payer sees it before paying."""
    if requires == "none":
        return "Sessions are funded by your program; there is nothing to pay."

    def share(percent: int) -> str:
        if percent == 0:
            return "you get all of it back"
        if percent == 100:
            return "it is used up"
        return f"{percent}% of it is used up and the rest comes back to you"

    return (
        "Booking reserves the session's credit. "
        f"Cancel at least {notice_hours} hours before the start and you get all of it back. "
        f"Cancel later and {share(late_cancel_percent)}. "
        f"If the student does not attend, {share(no_show_percent)}. "
        "If the tutor does not attend, you get all of it back."
    )


def tax_included(gross: int, rate_basis_points: int) -> tuple[int, int]:
    """(net, tax) of a price that includes tax at ``rate_basis_points`` (825 = 8.25%).

    tax = gross * rate / (1 + rate), rounded half up to the minor unit; net + tax == gross."""
    if type(gross) is not int or gross < 0:
        raise LedgerRuleError("The amount must be a non-negative whole number.")
    if type(rate_basis_points) is not int or not 0 <= rate_basis_points <= 10000:
        raise LedgerRuleError("The tax rate is whole basis points from 0 to 10000.")
    denominator = 10000 + rate_basis_points
    tax = (2 * gross * rate_basis_points + denominator) // (2 * denominator)
    return gross - tax, tax


def format_rate(basis_points: int) -> str:
    """825 -> '8.25%'; 0 -> '0%'."""
    whole, part = divmod(basis_points, 100)
    return f"{whole}.{part:02d}%".replace(".00%", "%")


def platform_fee(amount: int, tutor_share_percent: int) -> int:
    """The platform's part of a charge whose tutor share is ``tutor_share_percent``: the
    tutor's part rounds down, so the fee takes any indivisible remainder."""
    if type(amount) is not int or amount < 0:
        raise LedgerRuleError("The amount must be a non-negative whole number.")
    if type(tutor_share_percent) is not int or not 0 <= tutor_share_percent <= 100:
        raise LedgerRuleError("The tutor's share is a whole percentage from 0 to 100.")
    return amount - amount * tutor_share_percent // 100
