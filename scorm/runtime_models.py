"""The player's tables: a package placed in a class (with its attempts policy) and
the learners' attempts with their CMI data. Imported by scorm.models."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models

from tutoring_core.accounts.models import Tenant, TimeStamped, User
from tutoring_core.classes.models import Class


class ScormActivity(TimeStamped):
    """A package played in one class: where its results go and how many attempts a
    learner gets. Its progress activity (``activity_id``, key ``scorm:<class>:<package>``)
    is the one an LMS placement of the package in that class attaches its column to."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    klass = models.ForeignKey(Class, on_delete=models.CASCADE, related_name="+", verbose_name="class")
    package = models.ForeignKey("scorm.ScormPackage", on_delete=models.CASCADE, related_name="activities")
    title = models.CharField(max_length=255)
    # 0: as many attempts as the learner likes.
    max_attempts = models.PositiveSmallIntegerField(default=0)
    # tutoring_core.progress Activity (through progress.api; no foreign key across the door).
    activity_id = models.UUIDField()

    class Meta:
        ordering = ["klass", "title"]
        verbose_name_plural = "SCORM activities"
        constraints = [
            models.UniqueConstraint(fields=["klass", "package"], name="scorm_activity_once_per_class"),
        ]

    def __str__(self) -> str:
        return self.title


class ScormAttempt(TimeStamped):
    """One learner's attempt at one SCO of a placed package, with its CMI data."""

    class State(models.TextChoices):
        OPEN = "open", "In progress"
        SUSPENDED = "suspended", "Suspended (resumes where it left off)"
        FINISHED = "finished", "Finished"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    activity = models.ForeignKey(ScormActivity, on_delete=models.CASCADE, related_name="attempts")
    sco = models.ForeignKey("scorm.ScormSco", on_delete=models.CASCADE, related_name="attempts")
    learner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveSmallIntegerField(default=1)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    # The writable CMI elements as committed, flattened ("cmi.core.lesson_status": "passed").
    cmi = models.JSONField(default=dict, blank=True)
    completion = models.CharField(max_length=20, default="not attempted")
    success = models.CharField(max_length=10, default="unknown")
    score = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    # Time of the sessions before the current one, and the current one's as last committed.
    total_seconds = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal(0))
    session_key = models.CharField(max_length=64, blank=True)
    session_seconds = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal(0))
    # The runtime numbers its commits; a replayed or late one (lower number) is ignored.
    last_sequence = models.IntegerField(default=-1)
    commits = models.PositiveIntegerField(default=0)
    # What was last recorded in progress ("<completion>|<success>|<score>"): unchanged, nothing new.
    recorded = models.CharField(max_length=80, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["activity", "learner", "sco", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["activity", "sco", "learner", "number"], name="scorm_attempt_unique_number"
            ),
        ]
        indexes = [models.Index(fields=["activity", "learner"], name="scorm_attempt_learner")]

    def __str__(self) -> str:
        return f"Attempt {self.number}"
