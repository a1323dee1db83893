"""Video rooms of booked tutoring sessions (issue 15).

A room belongs to one scheduling Session, named by its id (the core apps meet through
their api modules, not foreign keys into each other's tables).
"""

from __future__ import annotations

import uuid

from django.db import models

from tutoring_core.accounts.fields import EncryptedTextField
from tutoring_core.accounts.models import Tenant, User


class VideoPolicy(models.Model):
    """A tenant's video choices; without a row the defaults hold (built-in rooms, no guardians,
    no recording)."""

    class Provider(models.TextChoices):
        BUILTIN = "builtin", "Built-in (WebRTC)"
        BBB = "bbb", "BigBlueButton"
        JITSI = "jitsi", "Jitsi Meet"
        LIVEKIT = "livekit", "LiveKit"

    class ConsentFrom(models.TextChoices):
        # The accounts app keeps no birth dates: a tenant says whether its students are minors
        # (K-12: a guardian consents) or adults who consent for themselves.
        GUARDIAN = "guardian", "A guardian (students are minors)"
        STUDENT = "student", "The student (adult learners)"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="video_policy")
    guardians_may_join = models.BooleanField(default=False)
    provider = models.CharField(max_length=20, default=Provider.BUILTIN, choices=Provider.choices)
    # BigBlueButton: https://bbb.example.org/bigbluebutton/ ; Jitsi: https://meet.example.org ;
    # LiveKit: wss://livekit.example.org (the SFU the client connects to).
    server_url = models.CharField(max_length=500, blank=True)
    # LiveKit only: the web client page that takes ?liveKitUrl=...&token=...
    client_url = models.URLField(max_length=500, blank=True)
    # Jitsi's app id (the JWT's iss) or LiveKit's API key.
    app_id = models.CharField(max_length=200, blank=True)
    # BigBlueButton's shared secret, Jitsi's app secret or LiveKit's API secret.
    secret = EncryptedTextField(blank=True)
    checksum_algorithm = models.CharField(
        max_length=10, default="sha1", choices=[("sha1", "SHA-1"), ("sha256", "SHA-256")]
    )
    # BigBlueButton only: bbb-webhooks sends join and leave events to the hub (the tenant's
    # events URL registered as a hook); without it, attendance knows joins through the hub only.
    bbb_webhooks = models.BooleanField(
        default=False,
        verbose_name="BigBlueButton sends join/leave webhooks",
        help_text="bbb-webhooks is installed and the hub's events URL for this district is registered as a hook.",
    )
    recording_allowed = models.BooleanField(default=False)
    consent_from = models.CharField(max_length=10, default=ConsentFrom.GUARDIAN, choices=ConsentFrom.choices)

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
    # Fixed when the room is made, so a tenant switching providers never splits a live session.
    provider = models.CharField(max_length=20, default=VideoPolicy.Provider.BUILTIN)
    # The tutor asked for a recording; it runs only where consent was complete and the
    # provider records (services.recording_decision).
    recording_requested_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Set when the provider's meeting was made with recording on: shown to everyone in the room.
    recorded = models.BooleanField(default=False)
    # When the provider's meeting was first made (the recording choice is fixed from then on).
    provider_started_at = models.DateTimeField(null=True, blank=True)

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


class RecordingConsent(models.Model):
    """Consent to record one student in one session, given beforehand by the student or (for a
    minor) a guardian; withdrawing keeps the row (who gave and withdrew it, when)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    session_id = models.UUIDField()
    student = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    given_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    given_as = models.CharField(max_length=10)  # "guardian" | "student"
    given_at = models.DateTimeField()
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["session_id", "student_id"]
        constraints = [models.UniqueConstraint(fields=["session_id", "student"], name="video_consent_once")]

    def __str__(self) -> str:
        return f"Recording consent for {self.student_id} in {self.session_id}"


class Recording(models.Model):
    """A recording the provider made of a room (BigBlueButton's record id, LiveKit's egress id)."""

    class State(models.TextChoices):
        STARTING = "starting", "Starting"
        RECORDING = "recording", "Recording now"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        DELETED = "deleted", "Deleted (consent withdrawn)"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="recordings")
    external_id = models.CharField(max_length=200)
    state = models.CharField(max_length=20, choices=State.choices)
    playback_url = models.URLField(max_length=1000, blank=True)
    # LiveKit: the file's key in the hub's storage (the egress writes to the same bucket), what
    # a withdrawn consent deletes; its location as the egress reported it.
    file_name = models.CharField(max_length=500, blank=True)
    file_location = models.CharField(max_length=1000, blank=True)
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["room", "created_at"]
        constraints = [models.UniqueConstraint(fields=["room", "external_id"], name="video_recording_once")]

    def __str__(self) -> str:
        return f"Recording {self.external_id}"


class ProviderEvent(models.Model):
    """An inbound provider webhook already applied: a replay (same sender id) changes nothing."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=20)
    event_id = models.CharField(max_length=200)
    kind = models.CharField(max_length=60)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "provider", "event_id"], name="video_provider_event_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.kind} {self.event_id}"
