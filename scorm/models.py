"""SCORM packages (files stored once per content hash) and their launchable items."""

from __future__ import annotations

import uuid

from django.db import models

from tutoring_core.accounts.models import Tenant, TimeStamped, User


class ScormVersion(models.TextChoices):
    SCORM_12 = "1.2", "SCORM 1.2"
    SCORM_2004_2 = "2004 2nd Edition", "SCORM 2004 2nd Edition"
    SCORM_2004_3 = "2004 3rd Edition", "SCORM 2004 3rd Edition"
    SCORM_2004_4 = "2004 4th Edition", "SCORM 2004 4th Edition"


class ScormPackageQuerySet(models.QuerySet["ScormPackage"]):
    def for_tenant(self, tenant_id: uuid.UUID) -> ScormPackageQuerySet:
        return self.filter(tenant_id=tenant_id)


class ScormPackage(TimeStamped):
    """One imported package of one tenant.

    The files live in the default storage under ``storage_root``
    (``scorm/<content_hash>/``), written once and never changed: the same zip
    imported again, by this tenant or another, reuses them.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=500)
    version = models.CharField(max_length=20, choices=ScormVersion.choices)
    identifier = models.CharField(max_length=500, blank=True)
    # sha256 (hex) of the zip as uploaded.
    content_hash = models.CharField(max_length=64, editable=False)
    storage_root = models.CharField(max_length=100, editable=False)
    size_bytes = models.PositiveBigIntegerField(default=0, editable=False)
    file_count = models.PositiveIntegerField(default=0, editable=False)
    # The parsed manifest (organizations, item tree, resources) as JSON, for display
    # and for the player's sequencing; never re-read from the XML at run time.
    manifest = models.JSONField(default=dict, blank=True, editable=False)
    uploaded_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    objects = ScormPackageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "content_hash"], name="scorm_package_once_per_tenant"),
        ]
        indexes = [models.Index(fields=["content_hash"], name="scorm_package_hash")]

    def __str__(self) -> str:
        return f"{self.title} (SCORM {self.version})"


class ScormSco(TimeStamped):
    """One launchable item of a package's default organization (a SCO or an asset)."""

    class Kind(models.TextChoices):
        SCO = "sco", "SCO (talks to the LMS)"
        ASSET = "asset", "Asset (plain content)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    package = models.ForeignKey(ScormPackage, on_delete=models.CASCADE, related_name="scos")
    identifier = models.CharField(max_length=500)
    title = models.CharField(max_length=500)
    # Path of the launch file inside the package: posix, normalised, xml:base applied.
    href = models.CharField(max_length=2000)
    # The query string to append at launch (item "parameters", spec CP 2.3.x).
    parameters = models.CharField(max_length=1000, blank=True)
    scorm_type = models.CharField(max_length=5, choices=Kind.choices, default=Kind.SCO)
    # SCORM 1.2 adlcp:masteryscore as given (0..100); SCORM 2004 the primary
    # objective's minNormalizedMeasure when it is satisfied by measure (scaled 0..1 as given).
    mastery_score = models.DecimalField(max_digits=9, decimal_places=4, null=True, blank=True)
    prerequisites = models.CharField(max_length=1000, blank=True)
    data_from_lms = models.TextField(blank=True)
    time_limit_action = models.CharField(max_length=50, blank=True)
    max_time_allowed = models.CharField(max_length=50, blank=True)
    # SCORM 2004: the item's imsss:sequencing (with referenced collection entries) as JSON.
    sequencing = models.JSONField(default=dict, blank=True)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["package", "order"]
        constraints = [
            models.UniqueConstraint(fields=["package", "identifier"], name="scorm_sco_unique_identifier"),
        ]

    def __str__(self) -> str:
        return self.title


# The player's tables (attempts, CMI data) live in their own module.
from scorm.runtime_models import ScormActivity, ScormAttempt  # noqa: E402

__all__ = ["ScormActivity", "ScormAttempt", "ScormPackage", "ScormSco", "ScormVersion"]
