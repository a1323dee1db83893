"""Isolation makers for the scorm URLs and admin models (shared by the import and
player helpers: add, never replace)."""

from __future__ import annotations

import uuid

from scorm.models import ScormActivity, ScormAttempt, ScormPackage, ScormSco
from tests.factories import ClassFactory, UserFactory
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


def make_attempt(tenant: Tenant) -> ScormAttempt:
    """A learner's attempt at a package placed in a class of ``tenant`` (player tables)."""
    package = make_package(tenant, title="Placed")
    klass = ClassFactory(tenant=tenant, title=f"SCORM class ({tenant.slug})")
    activity = ScormActivity.objects.create(
        tenant=tenant, klass=klass, package=package, title=package.title, activity_id=uuid.uuid4()
    )
    learner = UserFactory(tenant=tenant)
    return ScormAttempt.objects.create(
        tenant=tenant, activity=activity, sco=package.scos.get(), learner=learner, number=1
    )


@admin_model("scorm.ScormActivity")
def _activity(tenant: Tenant) -> object:
    return make_attempt(tenant).activity


@admin_model("scorm.ScormAttempt")
def _attempt(tenant: Tenant) -> object:
    return make_attempt(tenant)
