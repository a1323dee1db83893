"""LTI 1.3 tool tables: platform registrations, deployments, the tool's keys, and
what launches taught us about contexts and resource links (incl. AGS/NRPS claims)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from tutoring_core.accounts.fields import EncryptedTextField
from tutoring_core.accounts.models import Tenant, TimeStamped


class Preset(models.TextChoices):
    CANVAS = "canvas", "Canvas"
    MOODLE = "moodle", "Moodle"
    BRIGHTSPACE = "brightspace", "Brightspace (D2L)"
    BLACKBOARD = "blackboard", "Blackboard Learn"
    SCHOOLOGY = "schoology", "Schoology"
    GOOGLE_CLASSROOM = "google_classroom", "Google Classroom"
    GENERIC = "generic", "Other LTI 1.3 platform"


class ToolKeyQuerySet(models.QuerySet["ToolKey"]):
    def published(self) -> ToolKeyQuerySet:
        return self.filter(status__in=[ToolKey.Status.ACTIVE, ToolKey.Status.RETIRING])


class ToolKey(TimeStamped):
    """An RSA key pair the tool signs with (client assertions, deep-linking responses).

    One ACTIVE key signs; RETIRING keys stay in the public JWKS until
    ``retire_after`` so platforms can still verify what was signed just before a
    rotation; RETIRED keys are kept only for the record.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active (signs)"
        RETIRING = "retiring", "Retiring (published, no longer signs)"
        RETIRED = "retired", "Retired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kid = models.CharField(max_length=100, unique=True)
    private_key_pem = EncryptedTextField()
    public_jwk = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    retire_after = models.DateTimeField(null=True, blank=True)

    objects = ToolKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Exactly one signing key at a time; a concurrent second rotation fails here.
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="lti_tool_one_active_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.status})"


class PlatformRegistration(TimeStamped):
    """One LMS (issuer + client_id) a tenant registered the tool with."""

    class DeploymentPolicy(models.TextChoices):
        ACCEPT_NEW = "accept_new", "Accept new deployment ids automatically"
        HOLD = "hold", "Hold new deployment ids for an admin's approval"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="lti_registrations")
    name = models.CharField(max_length=200, blank=True)
    preset = models.CharField(max_length=20, choices=Preset.choices, default=Preset.GENERIC)
    issuer = models.CharField(max_length=255)
    client_id = models.CharField(max_length=255)
    auth_login_url = models.URLField(max_length=500, verbose_name="OIDC auth URL")
    auth_token_url = models.URLField(max_length=500, verbose_name="token URL")
    key_set_url = models.URLField(max_length=500, verbose_name="JWKS URL")
    auth_audience = models.CharField(
        max_length=500,
        blank=True,
        help_text="Audience of client assertions when it differs from the token URL (Brightspace).",
    )
    # LTI Security Framework 5.1.3: an id_token naming an audience besides our
    # client_id is refused unless the registration trusts that audience too.
    trusted_audiences = models.TextField(
        blank=True,
        default="",
        help_text="Other audiences (aud) this LMS may add to its launches, one per line. "
        "Leave empty unless the LMS documents them: launches naming any other audience are refused.",
    )
    deployment_policy = models.CharField(
        max_length=12, choices=DeploymentPolicy.choices, default=DeploymentPolicy.HOLD
    )
    # LTI 1.1 -> 1.3 migration: the consumer key and shared secret this platform used
    # with the tool under LTI 1.1. A launch's lti1p1 claim (link to the 1.1 user_id and
    # context_id) is honoured only when its oauth_consumer_key_sign verifies with them.
    lti1p1_consumer_key = models.CharField(max_length=255, blank=True, verbose_name="LTI 1.1 consumer key")
    lti1p1_shared_secret = EncryptedTextField(blank=True, default="", verbose_name="LTI 1.1 shared secret")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["tenant", "issuer", "client_id"]
        constraints = [
            # A launch names (iss, aud) before we know the tenant: the pair must be global.
            models.UniqueConstraint(fields=["issuer", "client_id"], name="lti_registration_unique_client")
        ]

    def __str__(self) -> str:
        return self.name or f"{self.issuer} ({self.client_id})"

    @property
    def token_audience(self) -> str:
        return self.auth_audience or self.auth_token_url

    @property
    def trusted_audience_set(self) -> frozenset[str]:
        return frozenset(line.strip() for line in self.trusted_audiences.splitlines() if line.strip())


class Deployment(TimeStamped):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PENDING = "pending", "Waiting for approval"
        DISABLED = "disabled", "Disabled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    registration = models.ForeignKey(
        PlatformRegistration, on_delete=models.CASCADE, related_name="deployments"
    )
    deployment_id = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    label = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["registration", "deployment_id"]
        constraints = [
            models.UniqueConstraint(fields=["registration", "deployment_id"], name="lti_deployment_unique_id")
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} ({self.get_status_display()})"


class LtiContext(TimeStamped):
    """A course/section as a platform names it; NRPS endpoint from the last launch."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    registration = models.ForeignKey(PlatformRegistration, on_delete=models.CASCADE, related_name="contexts")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="contexts")
    context_id = models.CharField(max_length=255)
    klass = models.ForeignKey(
        "classes.Class", on_delete=models.SET_NULL, null=True, related_name="+", verbose_name="class"
    )
    title = models.CharField(max_length=255, blank=True)
    label = models.CharField(max_length=255, blank=True)
    nrps_memberships_url = models.URLField(max_length=1000, blank=True)
    nrps_service_versions = models.JSONField(default=list, blank=True)
    last_launch_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["registration", "context_id"]
        constraints = [
            # Spec: context.id is locally unique to the deployment_id.
            models.UniqueConstraint(fields=["deployment", "context_id"], name="lti_context_unique_id")
        ]

    def __str__(self) -> str:
        return self.title or self.context_id


class ResourceLink(TimeStamped):
    """A placement of the tool in a course, with where it points and its AGS claim."""

    class Target(models.TextChoices):
        CLASS = "class", "The class's tutoring page"
        BOOKING = "booking", "The class's booking page"
        TUTOR = "tutor", "A tutor's page"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    registration = models.ForeignKey(
        PlatformRegistration, on_delete=models.CASCADE, related_name="resource_links"
    )
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="resource_links")
    context = models.ForeignKey(
        LtiContext, on_delete=models.SET_NULL, null=True, blank=True, related_name="resource_links"
    )
    resource_link_id = models.CharField(max_length=255)
    title = models.CharField(max_length=255, blank=True)
    target = models.CharField(max_length=10, choices=Target.choices, default=Target.CLASS)
    target_ref = models.CharField(max_length=64, blank=True, help_text="e.g. the tutor's user id")
    custom = models.JSONField(default=dict, blank=True)
    ags_lineitems_url = models.URLField(max_length=1000, blank=True)
    ags_lineitem_url = models.URLField(max_length=1000, blank=True)
    ags_scopes = models.JSONField(default=list, blank=True)
    # Non-standard claims the LMS sent (Canvas, Moodle extensions), as last seen.
    extension_claims = models.JSONField(default=dict, blank=True)
    last_launch_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["registration", "resource_link_id"]
        constraints = [
            # Spec: resource_link.id is unique to each deployment_id.
            models.UniqueConstraint(
                fields=["deployment", "resource_link_id"], name="lti_resource_link_unique_id"
            )
        ]

    def __str__(self) -> str:
        return self.title or self.resource_link_id


class SimulatorKey(TimeStamped):
    """The demo launch simulator's platform key (DEMO_MODE only): the simulated LMS
    signs id_tokens with it, and the tool verifies them through its JWKS URL like
    any other platform's."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    private_key_pem = EncryptedTextField()

    class Meta:
        ordering = ["created_at"]


class SimulatorPlacement(TimeStamped):
    """What the demo launch simulator (the pretend LMS) placed in its course from a
    deep-linking response: a resource link it names, with the item's title, custom
    parameters and line item, so the simulator can open it as a real LMS would."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    resource_link_id = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=255, blank=True)
    custom = models.JSONField(default=dict, blank=True)
    line_item = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.title or self.resource_link_id
