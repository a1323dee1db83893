"""Secret iCal feeds and CalDAV push of tutoring sessions (issue 12)."""

from __future__ import annotations

import uuid

from django.db import models

from tutoring_core.accounts.fields import EncryptedTextField
from tutoring_core.accounts.models import Tenant, TimeStamped, User


class CalendarFeed(TimeStamped):
    """A person's secret feed URL. Requests are matched on the SHA-256 of the token (an
    index probe on a digest: no timing leak about other tokens); the token itself is
    kept only encrypted, so the owner's settings page can show the URL again. A reset
    replaces both (the old URL 404s)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    person = models.OneToOneField(User, on_delete=models.CASCADE, related_name="calendar_feed")
    token_hash = models.CharField(max_length=64, unique=True)
    token = EncryptedTextField(blank=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"feed of {self.person}"


class CalDAVAccount(TimeStamped):
    """A person's CalDAV calendar collection that their sessions are pushed into."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    person = models.OneToOneField(User, on_delete=models.CASCADE, related_name="caldav_account")
    collection_url = models.URLField(max_length=500, help_text="The calendar collection, ending in /.")
    username = models.CharField(max_length=200)
    password = EncryptedTextField()
    is_active = models.BooleanField(default=True)
    last_error = models.TextField(blank=True)
    last_pushed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        verbose_name = "CalDAV account"

    def __str__(self) -> str:
        return f"CalDAV of {self.person}"


class CalendarObject(TimeStamped):
    """What we last stored for one session in one CalDAV collection (for If-Match)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(CalDAVAccount, on_delete=models.CASCADE, related_name="calendar_objects")
    session_id = models.UUIDField()
    href = models.CharField(max_length=600)
    etag = models.CharField(max_length=200, blank=True)
    sequence = models.PositiveIntegerField(default=0)
    deleted = models.BooleanField(default=False)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["account", "session_id"], name="calendar_object_once"),
        ]

    def __str__(self) -> str:
        return self.href


class PushStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SUPERSEDED = "superseded", "Superseded"


class CalendarPush(TimeStamped):
    """Outbox row: bring one session's event in one CalDAV collection up to date.

    The task pushes the session as it is when it runs, so a newer push for the same
    session and account supersedes a pending older one.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(CalDAVAccount, on_delete=models.CASCADE, related_name="pushes")
    session_id = models.UUIDField()
    change = models.CharField(max_length=12)
    sequence = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=12, choices=PushStatus.choices, default=PushStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "calendar push"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="calendar_push_due"),
            models.Index(fields=["account", "session_id", "status"], name="calendar_push_key"),
        ]

    def __str__(self) -> str:
        return f"{self.change} {self.session_id} ({self.status})"
