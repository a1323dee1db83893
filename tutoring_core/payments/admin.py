from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from tutoring_core.accounts.admin_scoping import TenantScopedAdmin
from tutoring_core.payments.models import LedgerAccount, Package, PaymentSettings, Price


@admin.register(PaymentSettings)
class PaymentSettingsAdmin(TenantScopedAdmin):
    list_display = ["tenant", "booking_requires", "provider", "currency"]


@admin.register(Package)
class PackageAdmin(TenantScopedAdmin):
    list_display = ["name", "unit", "quantity", "amount_minor", "currency", "is_active"]


@admin.register(Price)
class PriceAdmin(TenantScopedAdmin):
    list_display = ["duration_min", "subject", "tutor", "amount_minor", "currency"]


@admin.register(LedgerAccount)
class LedgerAccountAdmin(TenantScopedAdmin):
    """Read-only: balances change only by postings."""

    list_display = ["owner", "purpose", "unit", "balance"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
