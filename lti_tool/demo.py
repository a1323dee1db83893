"""The LTI launch simulator for demo mode: a small LMS, in-process, built on the
``lti1p3platform`` library, registered with the demo tenant like any real LMS.

The launch it drives is the real one: OIDC login initiation to the tool, the
platform's auth endpoint answering with a signed id_token, the tool fetching this
platform's JWKS over HTTP and validating everything. Only reachable with
settings.DEMO_MODE (``make run``).

Call ``simulator_register()`` from the demo loader (idempotent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from lti_tool.keys import _new_key_material
from lti_tool.models import Deployment, PlatformRegistration, SimulatorKey
from tutoring_core.accounts.api import (
    IdentityKey,
    IdentityKind,
    MergeRefused,
    TenantNotFound,
    identity_link,
    person_by_username,
    tenant_get,
)
from tutoring_core.classes.api import ClassKeyKind, ClassKeyRef, Source, class_upsert

DEMO_SLUG = "demo"
CLIENT_ID = "demo-simulator"
DEPLOYMENT_ID = "demo-deployment-1"
COURSE_ID = "ALG1"
COURSE_TITLE = "Algebra I — Period 2"


@dataclass(frozen=True)
class Persona:
    key: str
    username: str
    name: str
    given: str
    family: str
    roles: tuple[str, ...]


PERSONAS = {
    "teacher": Persona(
        "teacher", "teacher", "Terry Okafor", "Terry", "Okafor",
        ("http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor",),
    ),
    "student": Persona(
        "student", "student1", "Ava Nguyen", "Ava", "Nguyen",
        ("http://purl.imsglobal.org/vocab/lis/v2/membership#Learner",),
    ),
}  # fmt: skip


def issuer() -> str:
    return settings.PUBLIC_BASE_URL + "/lti/demo/platform"


def platform_urls() -> dict[str, str]:
    base = settings.PUBLIC_BASE_URL
    return {
        "auth": base + reverse("lti_tool:simulator_auth"),
        "jwks": base + reverse("lti_tool:simulator_jwks"),
        "token": base + reverse("lti_tool:simulator_token"),
        "deep_link_return": base + reverse("lti_tool:simulator_deep_link_return"),
    }


def simulator_key() -> SimulatorKey:
    key = SimulatorKey.objects.order_by("created_at").first()
    if key is None:
        pem, _public = _new_key_material()
        key = SimulatorKey.objects.create(private_key_pem=pem)
    return key


@transaction.atomic
def simulator_register() -> PlatformRegistration | None:
    """Register the simulator with the demo tenant; link the demo teacher and student
    and the demo Algebra class to the keys the simulator's launches carry. Idempotent."""
    try:
        tenant = tenant_get(slug=DEMO_SLUG)
    except TenantNotFound:
        return None
    urls = platform_urls()
    registration, _ = PlatformRegistration.objects.update_or_create(
        issuer=issuer(),
        client_id=CLIENT_ID,
        defaults={
            "tenant": tenant,
            "name": "Launch simulator (demo)",
            "auth_login_url": urls["auth"],
            "auth_token_url": urls["token"],
            "key_set_url": urls["jwks"],
            "deployment_policy": PlatformRegistration.DeploymentPolicy.HOLD,
        },
    )
    Deployment.objects.get_or_create(
        registration=registration, deployment_id=DEPLOYMENT_ID, defaults={"tenant": tenant}
    )
    simulator_key()
    for persona in PERSONAS.values():
        user = person_by_username(tenant=tenant, username=f"{persona.username}@{DEMO_SLUG}")
        if user is None:
            continue
        try:
            identity_link(
                tenant=tenant,
                user=user,
                key=IdentityKey(kind=IdentityKind.LTI, issuer=issuer(), subject=f"sim-{persona.username}"),
            )
        except MergeRefused:
            pass  # an earlier launch already made that identity another person's: leave it
    class_upsert(
        tenant=tenant,
        key=ClassKeyRef(
            kind=ClassKeyKind.LTI_CONTEXT, issuer=issuer(), subject=f"{DEPLOYMENT_ID}/{COURSE_ID}"
        ),
        title="",
        source=Source.LTI,
        link_to=ClassKeyRef(kind=ClassKeyKind.ONEROSTER, issuer="demo-sis", subject=f"class-{COURSE_ID}"),
    )
    return registration


def persona_claims(persona: Persona) -> dict[str, Any]:
    return {
        "sub": f"sim-{persona.username}",
        "name": persona.name,
        "given_name": persona.given,
        "family_name": persona.family,
        "email": f"{persona.username}@demo.example.org",
        "roles": list(persona.roles),
    }
