from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from tutoring_core.accounts.admin_scoping import TenantScopedAdmin
from tutoring_core.accounts.models import User
from tutoring_core.apiauth.models import ApiToken
from tutoring_core.apiauth.services import token_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(TenantScopedAdmin):
    """Tokens are created by `manage.py api_token_create` (the secret is printed once);
    here they are listed and revoked. Never deleted: the row keeps who used what, when."""

    list_display = ["prefix", "person", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "person__email", "person__username", "person__last_name"]
    list_select_related = ["person"]
    fields = [
        "name",
        "prefix",
        "person",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    ]
    readonly_fields = [
        "prefix",
        "person",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        actor = request.user if isinstance(request.user, User) else None
        # The queryset is already scoped to the admin's tenant (TenantScopedAdmin).
        revoked = sum(token_revoke(token_id=pk, actor=actor) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)
