from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from tutoring_core.accounts.models import Role, Tenant, TimeStamped, User


class TenantOwnedQuerySet(models.QuerySet):  # type: ignore[type-arg]
    def for_tenant(self, tenant: Tenant) -> TenantOwnedQuerySet:
        return self.filter(tenant=tenant)

    def active(self) -> TenantOwnedQuerySet:
        return self.filter(is_active=True)


class Source(models.TextChoices):
    MANUAL = "manual", "Entered here"
    LTI = "lti", "LTI launch"
    ONEROSTER = "oneroster", "OneRoster"
    GOOGLE_CLASSROOM = "google_classroom", "Google Classroom"
    SSO = "sso", "Single sign-on"
    DEMO = "demo", "Demo data"


class School(TimeStamped):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="schools")
    name = models.CharField(max_length=200)
    code = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL)
    is_active = models.BooleanField(default=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Term(TimeStamped):
    class Kind(models.TextChoices):
        SCHOOL_YEAR = "schoolYear", "School year"
        SEMESTER = "semester", "Semester"
        TERM = "term", "Term"
        GRADING_PERIOD = "gradingPeriod", "Grading period"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="terms")
    school = models.ForeignKey(School, on_delete=models.SET_NULL, null=True, blank=True, related_name="terms")
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children"
    )
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TERM)
    start_date = models.DateField()
    end_date = models.DateField()
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL)
    is_active = models.BooleanField(default=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["start_date", "title"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__gte=models.F("start_date")), name="term_dates_in_order"
            )
        ]

    def __str__(self) -> str:
        return self.title


class Course(TimeStamped):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="courses")
    school = models.ForeignKey(
        School, on_delete=models.SET_NULL, null=True, blank=True, related_name="courses"
    )
    title = models.CharField(max_length=200)
    code = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL)
    is_active = models.BooleanField(default=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class Class(TimeStamped):
    """A section: the group of people who meet, and what an LMS course shell maps to."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="classes")
    school = models.ForeignKey(
        School, on_delete=models.SET_NULL, null=True, blank=True, related_name="classes"
    )
    course = models.ForeignKey(
        Course, on_delete=models.SET_NULL, null=True, blank=True, related_name="classes"
    )
    terms = models.ManyToManyField(Term, blank=True, related_name="classes")
    title = models.CharField(max_length=255)
    code = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL)
    is_active = models.BooleanField(default=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["title"]
        verbose_name_plural = "classes"

    def __str__(self) -> str:
        return self.title


class ClassKey(TimeStamped):
    """One key by which another system knows a class: an LTI context, a OneRoster class."""

    class Kind(models.TextChoices):
        LTI_CONTEXT = "lti_context", "LTI context (iss, deployment/context id)"
        ONEROSTER = "oneroster", "OneRoster (connection, sourcedId)"
        GOOGLE_CLASSROOM = "google_classroom", "Google Classroom course"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    klass = models.ForeignKey(Class, on_delete=models.CASCADE, related_name="keys")

    class Meta:
        ordering = ["kind", "issuer", "subject"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "issuer", "subject"], name="class_key_unique")
        ]
        indexes = [models.Index(fields=["tenant", "kind", "subject"])]


class EnrollmentQuerySet(TenantOwnedQuerySet):
    def active(self) -> EnrollmentQuerySet:
        return self.filter(status=Enrollment.Status.ACTIVE)


class Enrollment(TimeStamped):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        INACTIVE = "inactive", "Inactive"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="enrollments")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="enrollments")
    klass = models.ForeignKey(
        Class, on_delete=models.CASCADE, related_name="enrollments", verbose_name="class"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL)
    is_primary = models.BooleanField(default=False)
    begin_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)

    objects = EnrollmentQuerySet.as_manager()

    class Meta:
        ordering = ["klass", "role", "user"]
        constraints = [models.UniqueConstraint(fields=["klass", "user", "role"], name="enrollment_unique")]
        indexes = [models.Index(fields=["user", "status"])]

    def __str__(self) -> str:
        return f"{self.user} in {self.klass} as {self.role}"
