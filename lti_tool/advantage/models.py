"""AGS line items, NRPS sync runs, and the admin's view of score deliveries.

Registrations belong to ``lti_tool`` (issue 3); rows here name one by its id
(``registration_id``, a UUID without a foreign key while issue 3 settles its schema) and reach it only through ``lti_tool.api``.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.db.models import Q

from tutoring_core.accounts.models import Tenant, TimeStamped, User
from tutoring_core.classes.models import Class
from tutoring_core.progress.models import Activity, OutboxEntry

# The destination kind this app owns in the progress outbox.
AGS_DESTINATION = "lti_ags"


class LineItem(TimeStamped):
    """A gradebook column on a platform, tied to the activity whose results fill it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    registration_id = models.UUIDField()
    activity = models.ForeignKey(Activity, on_delete=models.CASCADE, related_name="+")
    context_id = models.CharField(max_length=255, blank=True)
    resource_link_id = models.CharField(max_length=255, blank=True)
    # The line items service of the context (AGS claim ``lineitems``), where we find or create.
    lineitems_url = models.URLField(max_length=2048, blank=True)
    # The line item's own URL (its ``id``); blank until found or created on the platform.
    url = models.URLField(max_length=2048, blank=True)
    label = models.CharField(max_length=255)
    score_maximum = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(100))
    resource_id = models.CharField(max_length=255, blank=True)
    tag = models.CharField(max_length=255, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["label"]
        constraints = [
            models.UniqueConstraint(fields=["registration_id", "activity"], name="lineitem_one_per_activity"),
            models.UniqueConstraint(
                fields=["registration_id", "url"], condition=~Q(url=""), name="lineitem_unique_url"
            ),
        ]

    def __str__(self) -> str:
        return self.label


class MembershipSync(TimeStamped):
    """One run of an NRPS class-list sync, with its progress for the admin page."""

    class Status(models.TextChoices):
        PENDING = "pending", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    klass = models.ForeignKey(Class, on_delete=models.CASCADE, related_name="+", verbose_name="class")
    registration_id = models.UUIDField()
    memberships_url = models.URLField(max_length=2048)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    pages = models.PositiveIntegerField(default=0)
    members_seen = models.PositiveIntegerField(default=0)
    added = models.PositiveIntegerField(default=0)
    role_changes = models.PositiveIntegerField(default=0)
    deactivated = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one queued or running sync per class: a second request joins it.
            models.UniqueConstraint(
                fields=["klass"],
                condition=Q(status__in=["pending", "running"]),
                name="membership_sync_one_active",
            )
        ]

    def __str__(self) -> str:
        return f"Class list sync of {self.klass_id} ({self.status})"


class ScoreDelivery(OutboxEntry):
    """The progress outbox seen from AGS: what the deliveries admin page lists."""

    class Meta:
        proxy = True
        verbose_name = "score delivery"
        verbose_name_plural = "score deliveries"
