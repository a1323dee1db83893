"""Notification outbox: one row per person and change, then a task sends it (issue 12)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from tutoring_core.accounts.models import Tenant, TimeStamped, User


class NotificationKind(models.TextChoices):
    BOOKED = "booked", "Booked"
    RESCHEDULED = "rescheduled", "Rescheduled"
    CANCELLED = "cancelled", "Cancelled"
    # One student gave up their place in a group session that goes on.
    LEFT = "left", "Left a group session"
    # One student took a place in a group session already booked.
    JOINED = "joined", "Joined a group session"
    REMINDER = "reminder", "Reminder"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    # A newer change of the same session made this one stale before it went out.
    SUPERSEDED = "superseded", "Superseded"
    # Not sent on purpose: the session was cancelled or moved, or had already started.
    DROPPED = "dropped", "Dropped"


class Notification(TimeStamped):
    """One email to one person about one change of one tutoring session.

    PENDING -> SENDING (claimed by ``filter(status=PENDING).update(...) == 1``, with a
    lease) -> SENT | PENDING (retry later) | FAILED. The unique constraints make every
    write of a row idempotent: a change is noticed once per person and sequence, and a
    reminder once per person, offset and start time, however often the job runs. Every
    change a person must hear of bumps the session's SEQUENCE (a join or a leave of a
    group session too: its attendee list changed), so no two changes share a key.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    # The scheduling app's Session id: read through tutoring_core.scheduling.api only.
    session_id = models.UUIDField()
    recipient = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=NotificationKind.choices)
    sequence = models.PositiveIntegerField(default=0)
    session_start = models.DateTimeField()
    offset_min = models.PositiveIntegerField(null=True, blank=True)
    actor = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # The student a join or a leave is about (the tutor's notice names them); else null.
    about_person = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    status = models.CharField(
        max_length=12, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["session_id", "recipient", "kind", "sequence"],
                condition=~Q(kind="reminder"),
                name="notification_once_per_change",
            ),
            models.UniqueConstraint(
                fields=["session_id", "recipient", "offset_min", "session_start"],
                condition=Q(kind="reminder"),
                name="reminder_once",
            ),
            models.CheckConstraint(
                condition=(Q(kind="reminder") & Q(offset_min__isnull=False))
                | (~Q(kind="reminder") & Q(offset_min__isnull=True)),
                name="notification_offset_iff_reminder",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_due"),
            models.Index(fields=["session_id", "status"], name="notification_session"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient_id} ({self.status})"
