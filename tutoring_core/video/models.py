"""Video rooms of booked tutoring sessions (issue 15).

A room belongs to one scheduling Session, named by its id (the core apps meet through
their api modules, not foreign keys into each other's tables).
"""

from __future__ import annotations

import uuid

from django.db import models

from tutoring_core.accounts.models import Tenant, User


class VideoPolicy(models.Model):
    """A tenant's video choices; without a row the defaults hold."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="video_policy")
    guardians_may_join = models.BooleanField(default=False)
    provider = models.CharField(max_length=20, default="builtin", choices=[("builtin", "Built-in (WebRTC)")])

    class Meta:
        verbose_name_plural = "video policies"

    def __str__(self) -> str:
        return f"Video policy of {self.tenant}"


class Room(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    session_id = models.UUIDField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Room of session {self.session_id}"


class Admission(models.Model):
    """The tutor let this person in from the waiting room (kept, so a reconnect needs no knock)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="admissions")
    person = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    admitted_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["room", "person"], name="video_admission_once")]

    def __str__(self) -> str:
        return f"Admission of {self.person_id}"


class Presence(models.Model):
    """One websocket connection's stay in the room: the join and leave times attendance reads."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="presences")
    person = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    peer_id = models.CharField(max_length=32, unique=True)
    joined_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["joined_at", "id"]
        indexes = [models.Index(fields=["room", "left_at"])]

    def __str__(self) -> str:
        return f"Presence {self.peer_id}"


class Attendance(models.Model):
    class Outcome(models.TextChoices):
        ATTENDED = "attended", "Attended"
        LATE = "late", "Late"
        LEFT_EARLY = "left_early", "Left early"
        NO_SHOW = "no_show", "No-show"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="attendance")
    person = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    first_joined_at = models.DateTimeField(null=True, blank=True)
    last_left_at = models.DateTimeField(null=True, blank=True)
    corrected_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["room", "person_id"]
        constraints = [models.UniqueConstraint(fields=["room", "person"], name="video_attendance_once")]

    def __str__(self) -> str:
        return f"{self.person_id}: {self.outcome}"
