"""Tutors, their availability, and the tutoring sessions booked with them (issue 12).

No double booking is the database's job, not the code's: on PostgreSQL an exclusion
constraint over each tutor's blocked time ranges (the session plus its buffers) among
held and booked sessions; on SQLite every write transaction is serialised
(settings: transaction_mode IMMEDIATE) and services.py checks for overlap inside it.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeBoundary, RangeOperators
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Func, Q

from tutoring_core.accounts.models import Tenant, TimeStamped, User, validate_time_zone
from tutoring_core.classes.models import Class, School


def _default_session_lengths() -> list[int]:
    return [30, 45, 60]


def _default_reminder_offsets() -> list[int]:
    return [1440, 60]


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class PostgresExclusionConstraint(ExclusionConstraint):
    """An ExclusionConstraint that exists only on PostgreSQL.

    The model state carries it everywhere (so migrations stay the same on every
    database and ``makemigrations --check`` is clean); on SQLite it produces no SQL and
    validates nothing, because there the serialised write transaction does its job.
    """

    def constraint_sql(self, model: Any, schema_editor: Any) -> Any:
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().constraint_sql(model, schema_editor)

    def create_sql(self, model: Any, schema_editor: Any) -> Any:
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().create_sql(model, schema_editor)

    def remove_sql(self, model: Any, schema_editor: Any) -> Any:
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().remove_sql(model, schema_editor)

    def validate(self, model: Any, instance: Any, exclude: Any = None, using: str = "default") -> None:
        from django.db import connections

        if connections[using].vendor != "postgresql":
            return
        super().validate(model, instance, exclude=exclude, using=using)


class TutorProfile(TimeStamped):
    """What a tutor offers. Serving no schools and no classes means the whole district."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="tutor_profile")
    subjects = models.JSONField(default=list, blank=True)
    grade_levels = models.JSONField(default=list, blank=True)
    languages = models.JSONField(default=list, blank=True)
    bio = models.TextField(blank=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    session_lengths = models.JSONField(default=_default_session_lengths)
    schools = models.ManyToManyField(School, blank=True, related_name="+")
    classes = models.ManyToManyField(Class, blank=True, related_name="+")
    is_active = models.BooleanField(default=True)
    buffer_before_min = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(1440)])
    buffer_after_min = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(1440)])
    min_notice_min = models.PositiveIntegerField(default=0)
    window_days = models.PositiveIntegerField(
        default=90, validators=[MinValueValidator(1), MaxValueValidator(730)]
    )
    daily_cap = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    # The tutor's own notice periods; None takes the tenant's SchedulingPolicy.
    cancel_notice_hours = models.PositiveIntegerField(null=True, blank=True)
    reschedule_notice_hours = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "user"]
        constraints = [
            models.CheckConstraint(
                condition=Q(window_days__gte=1, window_days__lte=730), name="tutor_profile_window_days"
            ),
            models.CheckConstraint(
                condition=Q(daily_cap__isnull=True) | Q(daily_cap__gte=1), name="tutor_profile_daily_cap"
            ),
        ]

    def __str__(self) -> str:
        return f"Tutor {self.user}"


class AvailabilityRule(models.Model):
    """Weekly hours in the tutor's wall-clock time; end_minute 1440 = next local midnight."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    tutor = models.ForeignKey(TutorProfile, on_delete=models.CASCADE, related_name="rules")
    weekday = models.PositiveSmallIntegerField(validators=[MaxValueValidator(6)])  # 0 = Monday
    start_minute = models.PositiveSmallIntegerField()
    end_minute = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["tutor", "weekday", "start_minute"]
        constraints = [
            models.CheckConstraint(
                condition=Q(weekday__gte=0, weekday__lte=6), name="availability_rule_weekday"
            ),
            models.CheckConstraint(
                condition=Q(start_minute__gte=0, end_minute__lte=1440, start_minute__lt=F("end_minute")),
                name="availability_rule_minutes",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tutor} weekday {self.weekday} {self.start_minute}-{self.end_minute}"


class AvailabilityOverride(models.Model):
    """Hours on one date that replace that date's weekly rules (or none: unavailable)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    tutor = models.ForeignKey(TutorProfile, on_delete=models.CASCADE, related_name="overrides")
    date = models.DateField()
    start_minute = models.PositiveSmallIntegerField(null=True, blank=True)
    end_minute = models.PositiveSmallIntegerField(null=True, blank=True)
    unavailable = models.BooleanField(default=False)

    class Meta:
        ordering = ["tutor", "date", "start_minute"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(unavailable=True, start_minute__isnull=True, end_minute__isnull=True)
                    | Q(
                        unavailable=False,
                        start_minute__gte=0,
                        end_minute__lte=1440,
                        start_minute__lt=F("end_minute"),
                    )
                ),
                name="availability_override_minutes",
            ),
        ]

    def __str__(self) -> str:
        if self.unavailable:
            return f"{self.tutor} off on {self.date}"
        return f"{self.tutor} {self.date} {self.start_minute}-{self.end_minute}"


class SchedulingPolicy(TimeStamped):
    """A tenant's booking rules; a tenant without a row gets these defaults."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="scheduling_policy")
    reminder_offsets_min = models.JSONField(default=_default_reminder_offsets)
    cancel_notice_hours = models.PositiveIntegerField(default=24)
    reschedule_notice_hours = models.PositiveIntegerField(default=24)
    hold_minutes = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1)])
    # A cancellation inside the notice period: recorded as a late cancel (True) or refused.
    late_cancel_allowed = models.BooleanField(default=True)
    students_may_book = models.BooleanField(default=True)
    teachers_may_book = models.BooleanField(default=True)
    guardians_may_book = models.BooleanField(default=True)
    max_series_occurrences = models.PositiveIntegerField(default=52)

    class Meta:
        ordering = ["tenant"]
        verbose_name_plural = "scheduling policies"

    def __str__(self) -> str:
        return f"Scheduling policy of {self.tenant}"


class Series(models.Model):
    """A recurring booking; every occurrence is its own Session row."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    tutor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    student = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    klass = models.ForeignKey(
        Class, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name="class"
    )
    rrule = models.TextField()
    dtstart = models.DateTimeField()
    duration_min = models.PositiveIntegerField()
    time_zone = models.CharField(max_length=64, validators=[validate_time_zone])
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return f"{self.rrule} from {self.dtstart:%Y-%m-%d %H:%M}"


class SessionQuerySet(models.QuerySet["Session"]):
    def for_tenant(self, tenant: Tenant) -> SessionQuerySet:
        return self.filter(tenant=tenant)

    def blocking(self, now: Any) -> SessionQuerySet:
        """Sessions that occupy their tutor's time: booked ones and unexpired holds."""
        return self.filter(
            Q(status=Session.Status.BOOKED) | Q(status=Session.Status.HELD, hold_expires_at__gt=now)
        )


ACTIVE_STATUSES = ("held", "booked")


class Session(TimeStamped):
    """A tutoring session: one tutor, one or more students (capacity), one time."""

    class Status(models.TextChoices):
        HELD = "held", "Held (being confirmed)"
        BOOKED = "booked", "Booked"
        CANCELLED = "cancelled", "Cancelled"
        COMPLETED = "completed", "Completed"
        EXPIRED = "expired", "Hold expired"

    class Outcome(models.TextChoices):
        NONE = "", "—"
        ATTENDED = "attended", "Attended"
        LATE_CANCEL = "late_cancel", "Cancelled late"
        NO_SHOW = "no_show", "Student did not attend"
        TUTOR_NO_SHOW = "tutor_no_show", "Tutor did not attend"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    tutor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="tutoring_sessions")
    start = models.DateTimeField()
    end = models.DateTimeField()
    # start - buffer_before and end + buffer_after at booking time: what nothing else may overlap.
    block_start = models.DateTimeField()
    block_end = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BOOKED)
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    capacity = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    subject = models.CharField(max_length=200, blank=True)
    klass = models.ForeignKey(
        Class, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name="class"
    )
    series = models.ForeignKey(
        Series, on_delete=models.SET_NULL, null=True, blank=True, related_name="sessions"
    )
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    cancel_reason = models.CharField(max_length=500, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default="", blank=True)
    # iCalendar SEQUENCE: bumped on every change a calendar shows (time, status).
    sequence = models.PositiveIntegerField(default=0)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])

    objects = SessionQuerySet.as_manager()

    class Meta:
        ordering = ["start", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="session_ends_after_start"),
            models.CheckConstraint(
                condition=Q(block_start__lte=F("start"), block_end__gte=F("end")),
                name="session_block_covers_session",
            ),
            models.CheckConstraint(
                condition=~Q(status="held") | Q(hold_expires_at__isnull=False),
                name="session_hold_expires",
            ),
            models.CheckConstraint(condition=Q(capacity__gte=1), name="session_capacity_positive"),
            PostgresExclusionConstraint(
                name="session_no_double_booking",
                expressions=[
                    ("tutor", RangeOperators.EQUAL),
                    (
                        TsTzRange("block_start", "block_end", RangeBoundary()),
                        RangeOperators.OVERLAPS,
                    ),
                ],
                condition=Q(status__in=ACTIVE_STATUSES),
            ),
        ]
        indexes = [
            models.Index(fields=["tutor", "block_start"], name="session_tutor_block"),
            models.Index(fields=["tenant", "start"], name="session_tenant_start"),
            models.Index(fields=["status", "start"], name="session_status_start"),
        ]

    def __str__(self) -> str:
        return f"{self.tutor} {self.start:%Y-%m-%d %H:%M} ({self.status})"


class SessionParticipant(TimeStamped):
    class Status(models.TextChoices):
        BOOKED = "booked", "Booked"
        CANCELLED = "cancelled", "Cancelled"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="participants")
    student = models.ForeignKey(User, on_delete=models.PROTECT, related_name="session_participations")
    booked_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BOOKED)
    outcome = models.CharField(max_length=20, choices=Session.Outcome.choices, default="", blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["session", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "student"],
                condition=Q(status="booked"),
                name="session_participant_one_active",
            )
        ]
        indexes = [models.Index(fields=["student", "status"], name="participant_student_status")]

    def __str__(self) -> str:
        return f"{self.student} in {self.session}"
