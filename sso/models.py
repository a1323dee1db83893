from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from sso.protocol.mapping import MappingRules
from sso.protocol.presets import OIDC, SAML, preset_choices
from tutoring_core.accounts.fields import EncryptedTextField
from tutoring_core.accounts.models import Role, Tenant, TimeStamped

JIT_ROLE_CHOICES = [(r.value, r.label) for r in (Role.STUDENT, Role.GUARDIAN, Role.TUTOR, Role.TEACHER)]


class IdentityProviderQuerySet(models.QuerySet["IdentityProvider"]):
    def for_tenant(self, tenant: Tenant) -> IdentityProviderQuerySet:
        return self.filter(tenant=tenant)

    def enabled(self) -> IdentityProviderQuerySet:
        return self.filter(is_enabled=True)


class IdentityProvider(TimeStamped):
    """One district identity provider (SAML IdP or OIDC OP) and its rules."""

    class Protocol(models.TextChoices):
        SAML = SAML, "SAML 2.0"
        OIDC = OIDC, "OpenID Connect"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="identity_providers")
    name = models.CharField(max_length=100, help_text="Shown on the sign-in button.")
    protocol = models.CharField(max_length=4, choices=Protocol.choices)
    preset = models.CharField(max_length=20, choices=preset_choices(), default="generic_saml")
    is_enabled = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)

    # --- mapping: attribute (SAML) or claim (OIDC) names -------------------------
    subject_attribute = models.CharField(
        max_length=255, blank=True, help_text="Blank: the persistent NameID (SAML) or sub (OIDC)."
    )
    email_attribute = models.CharField(max_length=255, blank=True)
    given_name_attribute = models.CharField(max_length=255, blank=True)
    family_name_attribute = models.CharField(max_length=255, blank=True)
    display_name_attribute = models.CharField(max_length=255, blank=True)
    roster_id_attribute = models.CharField(
        max_length=255, blank=True, help_text="Attribute holding the roster (OneRoster) sourcedId."
    )
    role_attribute = models.CharField(max_length=255, blank=True)
    role_map = models.JSONField(
        default=dict, blank=True, help_text='IdP value -> role, e.g. {"faculty": "teacher"}.'
    )
    emails_verified = models.BooleanField(
        default=False, help_text="Treat emails this IdP asserts as verified (SAML IdPs the district runs)."
    )
    hosted_domain_claim = models.CharField(max_length=64, blank=True)
    allowed_email_domains = models.CharField(
        max_length=500, blank=True, help_text="Comma-separated domains, e.g. district.k12.us."
    )

    # --- provisioning ------------------------------------------------------------
    allow_jit = models.BooleanField(
        default=False, help_text="Create an account at first sign-in when no roster record matches."
    )
    jit_role = models.CharField(max_length=20, choices=JIT_ROLE_CHOICES, default=Role.STUDENT)
    use_idp_roles = models.BooleanField(
        default=False, help_text="Take roles from the IdP (never admin roles) instead of the roster."
    )
    clock_skew_seconds = models.PositiveIntegerField(
        default=120, validators=[MinValueValidator(0), MaxValueValidator(600)]
    )

    # --- SAML --------------------------------------------------------------------
    entity_id = models.CharField(max_length=500, blank=True)
    metadata_url = models.URLField(max_length=500, blank=True)
    metadata_xml = models.TextField(blank=True, help_text="Pasted metadata, or the last good copy fetched.")
    sso_url = models.URLField(max_length=500, blank=True)
    slo_url = models.URLField(max_length=500, blank=True)
    signing_certificates = models.JSONField(default=list, blank=True)
    metadata_fetched_at = models.DateTimeField(null=True, blank=True)
    metadata_error = models.TextField(blank=True)
    certificate_warning_sent_at = models.DateTimeField(null=True, blank=True)
    allow_idp_initiated = models.BooleanField(
        default=False, help_text="Accept unsolicited responses (IdP-initiated sign-in)."
    )

    # --- OIDC --------------------------------------------------------------------
    issuer = models.URLField(max_length=500, blank=True)
    client_id = models.CharField(max_length=255, blank=True)
    client_secret = EncryptedTextField(blank=True)
    scopes = models.CharField(max_length=255, default="openid email profile", blank=True)
    allowed_algorithms = models.CharField(max_length=100, default="RS256")
    use_userinfo = models.BooleanField(default=False)
    discovery = models.JSONField(default=dict, blank=True)
    discovery_fetched_at = models.DateTimeField(null=True, blank=True)
    jwks = models.JSONField(default=dict, blank=True)
    jwks_fetched_at = models.DateTimeField(null=True, blank=True)

    objects = IdentityProviderQuerySet.as_manager()

    class Meta:
        ordering = ["tenant", "sort_order", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="sso_idp_unique_name"),
            models.UniqueConstraint(
                fields=["tenant", "entity_id"], condition=~Q(entity_id=""), name="sso_idp_unique_entity_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_protocol_display()})"

    def mapping_rules(self) -> MappingRules:
        return MappingRules(
            subject_attribute=self.subject_attribute,
            email_attribute=self.email_attribute,
            given_name_attribute=self.given_name_attribute,
            family_name_attribute=self.family_name_attribute,
            display_name_attribute=self.display_name_attribute,
            roster_id_attribute=self.roster_id_attribute,
            role_attribute=self.role_attribute,
            role_map=dict(self.role_map or {}),
            emails_verified=self.emails_verified,
            allowed_email_domains=tuple(
                d.strip() for d in self.allowed_email_domains.split(",") if d.strip()
            ),
            hosted_domain_claim=self.hosted_domain_claim,
        )

    @property
    def algorithms(self) -> list[str]:
        return [a.strip() for a in self.allowed_algorithms.split(",") if a.strip()]


class ServiceProviderKey(TimeStamped):
    """The key pair our per-tenant SAML SP signs AuthnRequests and metadata with."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="sso_sp_key")
    certificate = models.TextField()
    private_key = EncryptedTextField()
    not_after = models.DateTimeField()
    warning_sent_at = models.DateTimeField(null=True, blank=True)
    # Rollover: the next key pair is published in metadata beside the current one
    # until every IdP has it, then activated (manage.py sso_sp_key).
    next_certificate = models.TextField(blank=True)
    next_private_key = EncryptedTextField(blank=True)
    next_not_after = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant"]

    def __str__(self) -> str:
        return f"SAML SP key of {self.tenant} (until {self.not_after:%Y-%m-%d})"


class SamlRequest(models.Model):
    """An AuthnRequest we sent and have not yet seen answered (InResponseTo check).

    Kept in the database, not the session: the ACS POST arrives cross-site and
    carries no SameSite=Lax session cookie.
    """

    class Purpose(models.TextChoices):
        SIGN_IN = "sign_in", "Sign in"
        TEST = "test", "Admin test sign-in"
        LOGOUT = "logout", "Single logout"

    request_id = models.CharField(max_length=100, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    provider = models.ForeignKey(IdentityProvider, on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=10, choices=Purpose.choices, default=Purpose.SIGN_IN)
    next_url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.request_id


class AssertionUse(models.Model):
    """Replay cache: an assertion id may be consumed once (unique constraint)."""

    provider = models.ForeignKey(IdentityProvider, on_delete=models.CASCADE, related_name="+")
    assertion_id = models.CharField(max_length=200)
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "assertion_id"], name="sso_assertion_use_once")
        ]

    def __str__(self) -> str:
        return self.assertion_id


class SignInTicket(models.Model):
    """A validated SAML outcome waiting for its same-site GET to finish sign-in.

    Only the SHA-256 of the one-time token is stored.
    """

    token_hash = models.CharField(max_length=64, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    provider = models.ForeignKey(IdentityProvider, on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=10, choices=SamlRequest.Purpose.choices)
    in_response_to = models.CharField(max_length=100, blank=True)
    payload = models.JSONField(default=dict)
    expires_at = models.DateTimeField()
    consumed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"ticket {self.pk} ({self.purpose})"
