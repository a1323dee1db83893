from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Balance:
    purpose: str
    unit: str
    amount: int


@dataclass(frozen=True)
class PayerSummary:
    id: uuid.UUID
    name: str
    kind: str
    balances: tuple[Balance, ...]


@dataclass(frozen=True)
class PolicyInfo:
    booking_requires: str
    provider: str
    text: str
