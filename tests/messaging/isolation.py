"""Isolation makers for the messaging admin model."""

from __future__ import annotations

import uuid

from django.utils import timezone

from tests import factories as f
from tests.isolation import admin_model
from tutoring_core.accounts.models import Tenant
from tutoring_core.messaging.models import Notification


@admin_model("messaging.Notification")
def _notification(tenant: Tenant) -> object:
    return Notification.objects.create(
        tenant=tenant,
        session_id=uuid.uuid4(),
        recipient=f.UserFactory(tenant=tenant),
        kind="booked",
        session_start=timezone.now(),
        next_attempt_at=timezone.now(),
    )
