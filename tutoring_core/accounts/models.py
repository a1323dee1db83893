from __future__ import annotations

import uuid
import zoneinfo
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone (for example America/Chicago).")


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class TenantQuerySet(models.QuerySet["Tenant"]):
    def active(self) -> TenantQuerySet:
        return self.filter(is_active=True)


class Tenant(TimeStamped):
    """A district or institution: the unit of data isolation."""

    class Kind(models.TextChoices):
        DISTRICT = "district", "School district"
        SCHOOL = "school", "Independent school"
        INSTITUTION = "institution", "Institution"
        TUTORING_PROVIDER = "provider", "Tutoring provider"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(
        max_length=63,
        unique=True,
        validators=[
            RegexValidator(
                r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$", "Use lowercase letters, digits and inner hyphens."
            )
        ],
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.DISTRICT)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    is_active = models.BooleanField(default=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class HubUserManager(UserManager["User"]):
    def for_tenant(self, tenant: Tenant) -> models.QuerySet[User]:
        return self.filter(tenant=tenant)


class User(AbstractUser):
    """A person. Belongs to one tenant; platform staff (superusers) may have none.

    ``username`` is globally unique because Django's sign-in needs one key;
    people provisioned from an LMS or a roster get a generated one.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="users")
    display_name = models.CharField(max_length=200, blank=True)
    preferred_time_zone = models.CharField(max_length=64, blank=True, validators=[validate_time_zone])
    email_verified = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[HubUserManager] = HubUserManager()  # type: ignore[assignment]

    class Meta:
        ordering = ["last_name", "first_name", "username"]
        indexes = [models.Index(fields=["tenant", "email"])]

    def __str__(self) -> str:
        return self.full_name or self.username

    @property
    def full_name(self) -> str:
        return self.display_name or f"{self.first_name} {self.last_name}".strip()

    @property
    def time_zone(self) -> str:
        if self.preferred_time_zone:
            return self.preferred_time_zone
        return self.tenant.time_zone if self.tenant_id else "UTC"  # type: ignore[union-attr]


class Role(models.TextChoices):
    DISTRICT_ADMIN = "district_admin", "District admin"
    SCHOOL_ADMIN = "school_admin", "School admin"
    TEACHER = "teacher", "Teacher"
    TUTOR = "tutor", "Tutor"
    STUDENT = "student", "Student"
    GUARDIAN = "guardian", "Guardian"


# Least privilege first: when a source gives no usable role we take the first.
ROLE_PRIVILEGE = [
    Role.GUARDIAN,
    Role.STUDENT,
    Role.TUTOR,
    Role.TEACHER,
    Role.SCHOOL_ADMIN,
    Role.DISTRICT_ADMIN,
]


class RoleAssignmentQuerySet(models.QuerySet["RoleAssignment"]):
    def active(self) -> RoleAssignmentQuerySet:
        return self.filter(is_active=True)


class RoleAssignment(TimeStamped):
    """A role held tenant-wide, at one school, or in one class."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="role_assignments")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.CharField(max_length=20, choices=Role.choices)
    school = models.ForeignKey(
        "classes.School", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    klass = models.ForeignKey(
        "classes.Class",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="class",
    )
    source = models.CharField(max_length=20, default="manual")
    is_active = models.BooleanField(default=True)

    objects = RoleAssignmentQuerySet.as_manager()

    class Meta:
        ordering = ["tenant", "role", "created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(school__isnull=True) | Q(klass__isnull=True),
                name="role_assignment_one_scope",
            ),
            models.UniqueConstraint(
                fields=["user", "role"],
                condition=Q(school__isnull=True, klass__isnull=True),
                name="role_assignment_unique_tenant_scope",
            ),
            models.UniqueConstraint(
                fields=["user", "role", "school"],
                condition=Q(school__isnull=False),
                name="role_assignment_unique_school_scope",
            ),
            models.UniqueConstraint(
                fields=["user", "role", "klass"],
                condition=Q(klass__isnull=False),
                name="role_assignment_unique_class_scope",
            ),
        ]

    def __str__(self) -> str:
        scope = self.school or self.klass or self.tenant
        return f"{self.user} — {self.get_role_display()} ({scope})"


class ExternalIdentity(TimeStamped):
    """One key by which another system knows a person (see ARCHITECTURE.md, Identity)."""

    class Kind(models.TextChoices):
        LTI = "lti", "LTI (iss, sub)"
        ONEROSTER = "oneroster", "OneRoster (connection, sourcedId)"
        SAML = "saml", "SAML (entityID, NameID)"
        OIDC = "oidc", "OpenID Connect (iss, sub)"
        GOOGLE_CLASSROOM = "google_classroom", "Google Classroom (user id)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="external_identities")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="external_identities")
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "kind", "issuer", "subject"]
        verbose_name_plural = "external identities"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "issuer", "subject"], name="external_identity_unique_key"
            )
        ]
        indexes = [models.Index(fields=["tenant", "kind", "subject"])]

    def __str__(self) -> str:
        return f"{self.kind}:{self.issuer}:{self.subject}"


class LinkCandidate(TimeStamped):
    """A possible same-person match (an email match) left for an admin; never auto-merged."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        MERGED = "merged", "Merged"
        DISMISSED = "dismissed", "Dismissed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="link_candidates")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    candidate = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["user", "candidate", "reason"], name="link_candidate_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} may be {self.candidate} ({self.reason})"


class UserMerge(models.Model):
    """A record that ``merged`` was folded into ``kept`` (both rows survive)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    kept = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    merged = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    actor = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    reason = models.CharField(max_length=200)
    moved = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.merged} merged into {self.kept}"


class GuardianLink(TimeStamped):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="guardian_links")
    guardian = models.ForeignKey(User, on_delete=models.CASCADE, related_name="wards")
    student = models.ForeignKey(User, on_delete=models.CASCADE, related_name="guardians")
    relationship = models.CharField(max_length=30, default="guardian")
    source = models.CharField(max_length=20, default="manual")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["tenant", "student", "guardian"]
        constraints = [
            models.UniqueConstraint(fields=["guardian", "student"], name="guardian_link_unique"),
            models.CheckConstraint(condition=~Q(guardian=models.F("student")), name="guardian_link_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.guardian} → {self.student}"


class AuditLogQuerySet(models.QuerySet["AuditLog"]):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("The audit log is append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("The audit log is append-only.")


class AuditLog(models.Model):
    """Append-only: rows are inserted and never changed (PostgreSQL enforces it too)."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # DO_NOTHING without a database constraint: deleting a person must not rewrite
    # (or be blocked by) the history of what they did; actor_label keeps who it was.
    actor = models.ForeignKey(
        User, on_delete=models.DO_NOTHING, null=True, blank=True, related_name="+", db_constraint=False
    )
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=80)
    target_type = models.CharField(max_length=80, blank=True)
    target_id = models.CharField(max_length=80, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action} {self.target_label}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError("The audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError("The audit log is append-only.")
