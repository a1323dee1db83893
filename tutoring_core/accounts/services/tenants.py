"""Tenants (districts) and their first district admin."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tutoring_core.accounts.models import (
    Role,
    Tenant,
    User,
)
from tutoring_core.accounts.services.audit import audit_record
from tutoring_core.accounts.services.roles import role_assign


def tenant_create(
    *, slug: str, name: str, kind: str = Tenant.Kind.DISTRICT, time_zone: str = "UTC"
) -> tuple[Tenant, bool]:
    """Create a tenant, or return the existing one with that slug unchanged."""
    tenant = Tenant(slug=slug, name=name, kind=kind, time_zone=time_zone)
    tenant.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            tenant.save()
    except IntegrityError:
        return Tenant.objects.get(slug=slug), False
    audit_record(tenant=tenant, actor=None, action="tenant.create", target=tenant)
    return tenant, True


@dataclass(frozen=True)
class SetPasswordLink:
    url: str
    expires_at: dt.datetime


@transaction.atomic
def district_admin_ensure(*, tenant: Tenant, email: str) -> tuple[User, bool]:
    """The district admin of ``tenant`` who signs in as ``email``: created the first
    time (no usable password yet, staff, the tenant-wide district_admin role), the
    same person unchanged after. The email, lower-cased, is the username, so the
    person knows what to type on the sign-in page."""
    address = email.strip()
    try:
        validate_email(address)
    except ValidationError:
        raise ValidationError({"admin_email": [f"{email!r} is not an email address."]}) from None
    username = address.lower()
    user, created = User.objects.get_or_create(
        username=username,
        defaults={"tenant": tenant, "email": address, "is_staff": True, "password": make_password(None)},
    )
    if user.tenant_id != tenant.pk:
        # Usernames are global; never hand another district's (or platform staff's)
        # account to this one.
        raise ValidationError(
            {"admin_email": [f"The account {username!r} already exists outside district {tenant.slug!r}."]}
        )
    if not user.is_active:
        raise ValidationError(
            {"admin_email": [f"The account {username!r} is deactivated; reactivate it in the admin first."]}
        )
    role_assign(tenant=tenant, user=user, role=Role.DISTRICT_ADMIN, source="manual")
    if created:
        audit_record(tenant=tenant, actor=None, action="tenant.admin_create", target=user)
    return user, created


def set_password_link_issue(*, user: User) -> SetPasswordLink:
    """A one-time link to the set-password page for ``user``. Django's password-reset
    tokens: the link stops working once a password is set (the token hashes the
    password) and after settings.PASSWORD_RESET_TIMEOUT (24 h). Issuing one writes
    nothing but its audit row; earlier links stay valid until either happens."""
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("web:set_password", kwargs={"uidb64": uidb64, "token": token})
    expires_at = timezone.now() + dt.timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT)
    audit_record(
        tenant=user.tenant,
        actor=None,
        action="auth.set_password_link",
        target=user,
        details={"expires_at": expires_at.isoformat()},
    )
    return SetPasswordLink(url=f"{settings.PUBLIC_BASE_URL}{path}", expires_at=expires_at)
