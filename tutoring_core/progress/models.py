"""Results of activities and the outbox that carries them to other systems.

The core knows nothing of LTI or OneRoster: an activity's results go to
*destinations* named by a kind (``"lti_ags"``, ``"oneroster_gradebook"``) and an
opaque key the integration understands. Recording a result writes one outbox
entry per destination in the same transaction (ARCHITECTURE.md, Grades flow).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from tutoring_core.accounts.models import Tenant, TimeStamped, User
from tutoring_core.classes.models import Class


class ActivityProgress(models.TextChoices):
    # The vocabulary of LTI AGS 2.0 (activityProgress); OneRoster maps onto it too.
    INITIALIZED = "Initialized", "Not started"
    STARTED = "Started", "Started"
    IN_PROGRESS = "InProgress", "In progress"
    SUBMITTED = "Submitted", "Submitted"
    COMPLETED = "Completed", "Completed"


class GradingProgress(models.TextChoices):
    FULLY_GRADED = "FullyGraded", "Graded"
    PENDING = "Pending", "Grading pending"
    PENDING_MANUAL = "PendingManual", "Needs manual grading"
    FAILED = "Failed", "Grading failed"
    NOT_READY = "NotReady", "Not ready"


class ResultSource(models.TextChoices):
    TEACHER = "teacher", "Entered by a teacher or tutor"
    SCORM = "scorm", "SCORM activity"
    ATTENDANCE = "attendance", "Session attendance"
    ASSESSMENT = "assessment", "Tutor assessment"
    IMPORT = "import", "Imported"


class Activity(TimeStamped):
    """Something gradable placed in a class (an LTI resource link, a SCORM package)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="activities")
    klass = models.ForeignKey(
        Class, on_delete=models.CASCADE, related_name="activities", verbose_name="class"
    )
    # The opaque natural key of whoever placed it ("lti:<resource link id>"): upserts use it.
    key = models.CharField(max_length=255)
    title = models.CharField(max_length=255)
    score_maximum = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        default=Decimal(100),
        validators=[MinValueValidator(Decimal("0.0001"))],
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["klass", "title"]
        verbose_name_plural = "activities"
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="activity_unique_key")]

    def __str__(self) -> str:
        return self.title


class Result(models.Model):
    """One score for one person on one activity. Append-only: a new score is a new row,
    so the history of overrides stays visible; the latest by ``recorded_at`` counts."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    activity = models.ForeignKey(Activity, on_delete=models.CASCADE, related_name="results")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="results")
    score_given = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    score_maximum = models.DecimalField(max_digits=10, decimal_places=4)
    activity_progress = models.CharField(max_length=20, choices=ActivityProgress.choices)
    grading_progress = models.CharField(max_length=20, choices=GradingProgress.choices)
    comment = models.TextField(blank=True)
    source = models.CharField(max_length=20, choices=ResultSource.choices)
    recorded_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # When the score was produced; sent as the AGS ``timestamp`` so a platform never
    # lets an older score overwrite a newer one.
    recorded_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-recorded_at", "-created_at"]
        indexes = [models.Index(fields=["activity", "user", "-recorded_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(score_maximum__gt=0), name="result_score_maximum_positive"),
            models.CheckConstraint(
                condition=Q(score_given__isnull=True) | Q(score_given__gte=0),
                name="result_score_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} on {self.activity}: {self.score_given}/{self.score_maximum}"


class ResultDestination(TimeStamped):
    """Where an activity's results must go (kind + opaque key owned by an integration)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    activity = models.ForeignKey(Activity, on_delete=models.CASCADE, related_name="destinations")
    kind = models.CharField(max_length=40)
    key = models.CharField(max_length=255)
    # The pipe the destination's entries travel through, in the integration's own
    # terms (for AGS, the platform registration): one channel shares one rate limit,
    # so its entries are worked by one dispatcher. Copied onto each outbox entry.
    channel = models.CharField(max_length=64, blank=True, default="")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["activity", "kind", "key"]
        constraints = [
            models.UniqueConstraint(fields=["activity", "kind", "key"], name="result_destination_unique")
        ]


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    IN_FLIGHT = "in_flight", "Being sent"
    DELIVERED = "delivered", "Delivered"
    SUPERSEDED = "superseded", "Replaced by a newer score"
    FAILED = "failed", "Failed (needs attention)"


class OutboxEntry(TimeStamped):
    """One result to deliver to one destination, with its delivery state.

    PENDING -> IN_FLIGHT (claimed with a lease) -> DELIVERED | PENDING (retry later) |
    FAILED. A newer result for the same destination and person turns a PENDING
    entry into SUPERSEDED. An IN_FLIGHT entry whose lease ran out (its worker died)
    may be claimed again.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    result = models.ForeignKey(Result, on_delete=models.CASCADE, related_name="outbox_entries")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    destination_kind = models.CharField(max_length=40)
    destination_key = models.CharField(max_length=255)
    channel = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=12, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Names the batch a dispatcher leased in one statement, so it reads back exactly
    # the rows it won (on SQLite, which has no SELECT ... FOR UPDATE SKIP LOCKED).
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["created_at"]
        verbose_name = "grade delivery"
        verbose_name_plural = "grade deliveries"
        indexes = [
            models.Index(fields=["destination_kind", "status", "next_attempt_at"], name="outbox_due"),
            models.Index(fields=["destination_kind", "destination_key", "user", "status"], name="outbox_key"),
            # A channel's dispatcher: due entries oldest first, and when the next falls due.
            models.Index(
                fields=["destination_kind", "channel", "status", "created_at"], name="outbox_channel"
            ),
            models.Index(
                fields=["destination_kind", "channel", "status", "next_attempt_at"], name="outbox_channel_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.destination_kind}:{self.destination_key} for {self.user_id} ({self.status})"


class AttendanceOutcome(models.TextChoices):
    ATTENDED = "attended", "Attended"
    LATE = "late", "Late"
    LEFT_EARLY = "left_early", "Left early"
    NO_SHOW = "no_show", "No-show"


class AttendanceSource(models.TextChoices):
    SIGNALING = "signaling", "The room's signaling"
    PROVIDER_WEBHOOK = "provider_webhook", "The video provider's webhooks"
    # Jitsi tells the hub of no leaves: the joins through the hub's page are all it knows.
    JOIN_PAGE = "join_page", "Joins through the hub's page"
    TUTOR_CORRECTION = "tutor_correction", "Corrected by the tutor"


class SessionAttendance(TimeStamped):
    """One participant's attendance of one tutoring session, for reports and billing (issue 15
    point 4). The room's computation writes it; a tutor's correction replaces it and is kept:
    the room's later computations leave a corrected row alone. Each replaced state is copied
    to SessionAttendanceHistory first. Sessions are named by id (scheduling owns them)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    session_id = models.UUIDField()
    # The class the session was booked for (None: booked outside a class); reports group by it.
    class_id = models.UUIDField(null=True, blank=True)
    person = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    session_start = models.DateTimeField()
    session_end = models.DateTimeField()
    outcome = models.CharField(max_length=20, choices=AttendanceOutcome.choices)
    first_joined_at = models.DateTimeField(null=True, blank=True)
    last_left_at = models.DateTimeField(null=True, blank=True)
    minutes_present = models.PositiveIntegerField(default=0)
    late_minutes = models.PositiveIntegerField(default=0)
    left_early_minutes = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=20, choices=AttendanceSource.choices)
    corrected_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    corrected_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["session_start", "person_id"]
        constraints = [
            models.UniqueConstraint(fields=["session_id", "person"], name="session_attendance_once")
        ]
        indexes = [models.Index(fields=["tenant", "person", "class_id"], name="attendance_person")]

    def __str__(self) -> str:
        return f"{self.person_id} in {self.session_id}: {self.outcome}"


class SessionAttendanceHistory(models.Model):
    """A replaced state of a SessionAttendance row (append-only)."""

    attendance = models.ForeignKey(SessionAttendance, on_delete=models.CASCADE, related_name="history")
    version = models.PositiveIntegerField()
    outcome = models.CharField(max_length=20, choices=AttendanceOutcome.choices)
    first_joined_at = models.DateTimeField(null=True, blank=True)
    last_left_at = models.DateTimeField(null=True, blank=True)
    minutes_present = models.PositiveIntegerField()
    late_minutes = models.PositiveIntegerField()
    left_early_minutes = models.PositiveIntegerField()
    source = models.CharField(max_length=20, choices=AttendanceSource.choices)
    corrected_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    corrected_at = models.DateTimeField(null=True, blank=True)
    replaced_at = models.DateTimeField()

    class Meta:
        ordering = ["attendance", "version"]
        verbose_name_plural = "session attendance history"
        constraints = [
            models.UniqueConstraint(fields=["attendance", "version"], name="session_attendance_version_once")
        ]

    def __str__(self) -> str:
        return f"{self.attendance_id} v{self.version}: {self.outcome}"
