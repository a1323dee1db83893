from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from tutoring_core.accounts.admin_scoping import ReadOnlyAdminMixin, TenantScopedAdmin
from tutoring_core.payments.models import (
    LedgerAccount,
    Package,
    PaymentSettings,
    PayRun,
    Price,
    ReconciliationDifference,
    TutorPayee,
)


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


@admin.register(TutorPayee)
class TutorPayeeAdmin(TenantScopedAdmin):
    list_display = ["tutor", "hourly_rate_minor", "currency", "stripe_account_id"]


class _ReadOnly(ReadOnlyAdminMixin, TenantScopedAdmin):
    pass


@admin.register(PayRun)
class PayRunAdmin(_ReadOnly):
    """Pay runs are made and paid out on the tutor pay page (payments:payruns)."""

    list_display = ["period_start", "period_end", "status", "created_by"]


@admin.register(ReconciliationDifference)
class ReconciliationDifferenceAdmin(_ReadOnly):
    """What the nightly reconciliation found; nothing is changed by it: a person decides."""

    list_display = ["subject", "kind", "currency", "ledger_minor", "provider_minor", "detail", "found_at"]
    list_filter = ["kind"]

    @admin.display(description="Found", ordering="reconciliation__started_at")
    def found_at(self, obj: ReconciliationDifference) -> Any:
        return obj.reconciliation.started_at
