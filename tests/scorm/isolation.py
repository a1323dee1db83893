"""Isolation makers for the scorm URLs and admin models (shared by the import and
player helpers: add, never replace)."""

from __future__ import annotations

from scorm.models import ScormPackage, ScormSco
from tests.isolation import admin_model, url_param
from tutoring_core.accounts.models import Tenant


def make_package(tenant: Tenant, title: str = "Golf") -> ScormPackage:
    package = ScormPackage.objects.create(
        tenant=tenant,
        title=f"{title} ({tenant.slug})",
        version="1.2",
        identifier="generated",
        content_hash="0" * 64,
        storage_root=f"scorm/{'0' * 64}/",
        size_bytes=1,
        file_count=1,
    )
    ScormSco.objects.create(package=package, identifier="item_1", title="Lesson", href="index.html", order=0)
    return package


@url_param("package_id")
def _package_id(tenant: Tenant) -> object:
    return make_package(tenant).pk


@admin_model("scorm.ScormPackage")
def _package(tenant: Tenant) -> object:
    return make_package(tenant)
