from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from tutoring_core.accounts.fields import EncryptedTextField
from tutoring_core.accounts.models import Tenant, TimeStamped, User


def roster_upload_name(instance: RosterConnection, filename: str) -> str:
    # A fresh name each time: a new upload never overwrites the zip a run may be reading.
    return f"oneroster/{instance.tenant_id}/{instance.pk}/{uuid.uuid4().hex}.zip"


class RosterConnection(TimeStamped):
    """One roster source of one tenant: a CSV drop, a OneRoster REST endpoint, or Classroom."""

    class Kind(models.TextChoices):
        CSV = "csv", "OneRoster CSV in a server folder (automated drops)"
        CSV_UPLOAD = "csv_upload", "OneRoster CSV zip uploaded here"
        REST_1_1 = "rest_1_1", "OneRoster REST 1.1 (OAuth 1.0a HMAC-SHA256)"
        REST_1_2 = "rest_1_2", "OneRoster REST 1.2 (OAuth 2.0 client credentials)"
        GOOGLE_CLASSROOM = "google_classroom", "Google Classroom (service account)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CSV)
    is_active = models.BooleanField(default=True)
    csv_path = models.CharField(
        max_length=500, blank=True, help_text="Server folder or zip the SIS drops its export into (CSV only)."
    )
    # The zip a district admin uploaded (kind csv_upload), in the default file storage
    # under a name the hub chose (never the browser's); its own name is kept to show.
    upload = models.FileField(upload_to=roster_upload_name, blank=True, max_length=300, editable=False)
    upload_name = models.CharField(max_length=255, blank=True, editable=False)
    upload_size = models.PositiveBigIntegerField(default=0, editable=False)
    uploaded_at = models.DateTimeField(null=True, blank=True, editable=False)
    base_url = models.URLField(blank=True, help_text="https://sis.example.org")
    base_path = models.CharField(
        max_length=200,
        blank=True,
        help_text="Default: /ims/oneroster/v1p1 (1.1) or /ims/oneroster/rostering/v1p2 (1.2).",
    )
    token_url = models.URLField(blank=True, help_text="OAuth 2.0 token endpoint (1.2).")
    client_id = models.CharField(
        max_length=255, blank=True, help_text="OAuth client id; for Classroom, the service account's email."
    )
    client_secret = EncryptedTextField(
        blank=True, help_text="OAuth secret; for Classroom, the service account's private key (PEM)."
    )
    delegated_user = models.CharField(
        max_length=255, blank=True, help_text="Classroom: the Workspace admin the service account acts as."
    )
    scopes = models.CharField(
        max_length=500,
        blank=True,
        default="https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly",
    )
    page_size = models.PositiveIntegerField(
        default=1000, validators=[MinValueValidator(1), MaxValueValidator(10000)]
    )
    max_concurrency = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(16)]
    )
    requests_per_second = models.FloatField(default=10.0, validators=[MinValueValidator(0.1)])
    delta_overlap_minutes = models.PositiveIntegerField(default=15)
    max_deactivation_share = models.FloatField(
        default=0.10,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="A full sync that would deactivate more than this share of any entity waits for approval.",
    )
    apply_valid_rows = models.BooleanField(
        default=False, help_text="On validation errors, apply the valid rows and list the rejected ones."
    )
    # Off until an admin ticks them: a new connection syncs when someone says so.
    schedule_delta = models.BooleanField(default=False, help_text="Nightly delta sync.")
    schedule_full = models.BooleanField(default=False, help_text="Weekly full sync.")
    delta_since = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["tenant", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def issuer(self) -> str:
        # ARCHITECTURE.md: OneRoster identities are (connection, sourcedId).
        return str(self.id)


class SyncRun(models.Model):
    class Mode(models.TextChoices):
        FULL = "full", "Full"
        DELTA = "delta", "Delta"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"

    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.REJECTED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(RosterConnection, on_delete=models.CASCADE, related_name="runs")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.FULL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    dry_run = models.BooleanField(default=False)
    source_path = models.CharField(max_length=500, blank=True)
    phase = models.CharField(max_length=20, blank=True)
    progress_done = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(default=0)
    staged = models.BooleanField(default=False)
    approved = models.BooleanField(default=False)
    # entity -> "bulk" | "delta" | "absent": only bulk entities deactivate by absence.
    entity_modes = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    guard = models.JSONField(default=dict, blank=True)
    # Wall seconds per phase (fetch_stage, validate, diff, guard, apply/deactivate per
    # entity, cleanup): where a slow sync spends its time, for the admin and for tuning.
    timings = models.JSONField(default=dict, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    requested_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    decided_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    fetch_started_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["connection", "-created_at"])]
        constraints = [
            # One live run per connection: two syncs of one source must not interleave.
            models.UniqueConstraint(
                fields=["connection"],
                condition=Q(status__in=["queued", "running", "awaiting_approval"]),
                name="syncrun_one_live_per_connection",
            )
        ]

    def __str__(self) -> str:
        return f"{self.connection} {self.mode} {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def progress_percent(self) -> int:
        if not self.progress_total:
            return 100 if self.status in self.TERMINAL else 0
        return min(100, int(100 * self.progress_done / self.progress_total))


class SyncError(models.Model):
    """A rejected row or a fatal problem, named by file and line or endpoint and sourcedId."""

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="errors")
    entity = models.CharField(max_length=20)
    location = models.CharField(max_length=300)
    line = models.PositiveIntegerField(null=True, blank=True)
    sourced_id = models.CharField(max_length=255, blank=True)
    message = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        where = f"{self.location}:{self.line}" if self.line is not None else self.location
        return f"{where} {self.sourced_id}: {self.message}"


class StagedRecord(models.Model):
    """One fetched row of one run, before it is applied (the stage step)."""

    id = models.BigAutoField(primary_key=True)
    # No database foreign key: its check ran once per staged row (a key-share lock on
    # the run's row each time), about a tenth of a re-sync. The run exists before its
    # rows are staged, and deleting a run still cascades to them through the ORM.
    run = models.ForeignKey(
        SyncRun, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    entity = models.CharField(max_length=20)
    sourced_id = models.CharField(max_length=255)
    deleted = models.BooleanField(default=False)
    location = models.CharField(max_length=300)
    line = models.PositiveIntegerField(null=True)
    hash = models.CharField(max_length=16)
    natural_key = models.CharField(max_length=255, blank=True)
    ref_a = models.CharField(max_length=255, blank=True)
    ref_b = models.CharField(max_length=255, blank=True)
    data = models.TextField()
    rejected = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["run", "entity", "sourced_id"]),
            # Apply reads each entity's rows in id order, a chunk at a time (keyset).
            models.Index(fields=["run", "entity", "id"]),
        ]

    def __str__(self) -> str:
        return f"{self.entity}:{self.sourced_id}"


class SourceRecord(models.Model):
    """What the hub last applied for one (connection, entity, sourcedId): the core
    row it maps to and the content hash that makes the next diff cheap."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: the unique key starts with it (see Meta.indexes for why that
    # matters). No database constraint either, like StagedRecord.run: its deferred check
    # ran once per mapping row at every chunk's commit (430,000 at a district import).
    # Only the pipeline writes these rows, for the connection of a run that holds it,
    # and deleting a connection still cascades to them through the ORM.
    connection = models.ForeignKey(
        RosterConnection, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    entity = models.CharField(max_length=20)
    sourced_id = models.CharField(max_length=255)
    core_id = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=16)
    natural_key = models.CharField(max_length=255, blank=True)
    is_active = models.BooleanField(default=True)
    # Users only: their primary OneRoster role, which decides the direction of agent links.
    hint = models.CharField(max_length=40, blank=True)
    # A re-keyed sourcedId points at the one that replaced it (history stays linked).
    replaced_by = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "sourced_id"], name="source_record_unique"
            )
        ]
        # The secondary index leads with its own column on purpose: an index that starts
        # with the connection competes with the unique key for the per-row lookup
        # (connection, entity, sourcedId), and while a large import grows an entity
        # faster than the statistics follow, the planner took it and filtered a whole
        # entity per row (seconds per chunk). No index on core_id: it cost a district
        # import 2 s to maintain for one check per deactivation pass (see _deactivations).
        indexes = [
            # Only users have one; the partial index skips every other row.
            models.Index(
                fields=["natural_key", "connection"],
                condition=~Q(natural_key=""),
                name="source_record_natural_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity}:{self.sourced_id}"
