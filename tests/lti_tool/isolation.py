"""Isolation makers for lti_tool's URLs and admin models."""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.core.management import call_command
from django.db import connection

from lti_tool.models import Deployment, PlatformRegistration, ResourceLink
from tests import factories as f
from tests.isolation import NOT_OBJECT_IDS, admin_model, url_param
from tutoring_core.accounts.models import Tenant


def make_registration(tenant: Tenant) -> PlatformRegistration:
    n = uuid.uuid4().hex[:8]
    return PlatformRegistration.objects.create(
        tenant=tenant,
        issuer=f"https://lms-{n}.example.org",
        client_id=f"client-{n}",
        auth_login_url=f"https://lms-{n}.example.org/auth",
        auth_token_url=f"https://lms-{n}.example.org/token",
        key_set_url=f"https://lms-{n}.example.org/jwks",
    )


def make_deployment(tenant: Tenant) -> Deployment:
    return Deployment.objects.create(
        tenant=tenant, registration=make_registration(tenant), deployment_id="d1"
    )


@url_param("session_id")
def _deep_link_session(tenant: Tenant) -> object:
    """A pending deep-linking request of a teacher in ``tenant``."""
    if "hub_cache" not in connection.introspection.table_names():
        call_command("createcachetable", verbosity=0)
    registration = make_registration(tenant)
    teacher = f.UserFactory(tenant=tenant)
    token = uuid.uuid4()
    cache.set(
        f"lti:dl:{token}",
        {
            "user": str(teacher.pk),
            "tenant": str(tenant.pk),
            "registration": str(registration.pk),
            "deployment_id": "d1",
            "class_id": None,
            "settings": {"deep_link_return_url": "https://lms.example.org/return"},
        },
        600,
    )
    return token


@admin_model("lti_tool.PlatformRegistration")
def _registration(tenant: Tenant) -> object:
    return make_registration(tenant)


@admin_model("lti_tool.Deployment")
def _deployment(tenant: Tenant) -> object:
    return make_deployment(tenant)


@admin_model("lti_tool.ResourceLink")
def _resource_link(tenant: Tenant) -> object:
    deployment = make_deployment(tenant)
    return ResourceLink.objects.create(
        tenant=tenant, registration=deployment.registration, deployment=deployment, resource_link_id="rl-1"
    )


# The dynamic-registration URL carries a signed, time-limited tenant token, not an
# object id; an unknown or foreign token answers 404 like a missing object.
NOT_OBJECT_IDS["token"] = "signed tenant token of the LTI dynamic-registration URL (lti_tool)"
