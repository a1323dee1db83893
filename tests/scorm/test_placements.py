"""The tenant's SCORM packages as placeables (progress.api), what lti_tool's deep
linking lists and a placed link opens."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from scorm.models import ScormPackage
from tests.conftest import Personas
from tests.scorm.isolation import make_package
from tutoring_core.progress import api as progress

pytestmark = pytest.mark.django_db


def test_packages_of_the_tenant_are_listed_and_found(personas: Personas) -> None:
    golf = make_package(personas.tenant, title="Golf")
    ScormPackage.objects.filter(pk=golf.pk).update(content_hash="1" * 64)
    algebra = make_package(personas.tenant, title="Algebra")
    empty = ScormPackage.objects.create(
        tenant=personas.tenant,
        title="Nothing to launch",
        version="1.2",
        content_hash="2" * 64,
        storage_root="scorm/x/",
    )
    make_package(personas.other_tenant_obj, title="Theirs")
    klass = personas.klass.pk
    listed = progress.placeables_for_class(tenant_id=personas.tenant.pk, class_id=klass)
    assert [(p.key, p.title, p.kind, p.gradable) for p in listed] == [
        (f"scorm:{algebra.pk}", "Algebra (north)", "SCORM course", True),
        (f"scorm:{golf.pk}", "Golf (north)", "SCORM course", True),
    ]
    found = progress.placeable_get(tenant_id=personas.tenant.pk, class_id=klass, key=f"scorm:{golf.pk}")
    assert found == progress.Placeable(
        key=f"scorm:{golf.pk}",
        title="Golf (north)",
        kind="SCORM course",
        path=reverse("scorm:play", kwargs={"class_id": klass, "package_id": golf.pk}),
        gradable=True,
        activity_key=f"scorm:{klass}:{golf.pk}",
    )
    assert empty.pk not in {p.key for p in listed}


@pytest.mark.parametrize(
    "key",
    ["", "scorm", "scorm:", "scorm:not-a-uuid", f"scorm:{uuid.uuid4()}", f"nothing:{uuid.uuid4()}", "class"],
)
def test_unknown_keys_find_nothing(personas: Personas, key: str) -> None:
    assert progress.placeable_get(tenant_id=personas.tenant.pk, class_id=personas.klass.pk, key=key) is None


def test_another_tenants_package_is_not_found(personas: Personas) -> None:
    theirs = make_package(personas.other_tenant_obj)
    key = f"scorm:{theirs.pk}"
    assert progress.placeable_get(tenant_id=personas.tenant.pk, class_id=personas.klass.pk, key=key) is None
