from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from tutoring_core.accounts.models import User


class TenantAwareModelBackend(ModelBackend):
    """Password sign-in for local accounts; refuses people of a deactivated tenant."""

    def user_can_authenticate(self, user: User) -> bool:  # type: ignore[override]
        if not super().user_can_authenticate(user):
            return False
        return user.tenant_id is None or bool(user.tenant and user.tenant.is_active)
