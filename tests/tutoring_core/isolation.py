"""Isolation makers for the core's URLs and admin models."""

from __future__ import annotations

from tests import factories as f
from tests.isolation import EXEMPT_URL_NAMES, admin_model, url_param
from tutoring_core.accounts.models import Tenant

EXEMPT_URL_NAMES["set_password"] = (
    "authorized by the one-time token in its URL, not by who is signed in: any link that is not "
    "a live token for that person answers 410 (tests/tutoring_core/test_set_password.py)"
)


@url_param("class_id")
def _class_id(tenant: Tenant) -> object:
    return f.ClassFactory(tenant=tenant).pk


@admin_model("accounts.Tenant")
def _tenant(tenant: Tenant) -> object:
    return tenant


@admin_model("accounts.User")
def _user(tenant: Tenant) -> object:
    return f.UserFactory(tenant=tenant)


@admin_model("accounts.GuardianLink")
def _guardian_link(tenant: Tenant) -> object:
    return f.GuardianLinkFactory(tenant=tenant, student__tenant=tenant)


@admin_model("accounts.LinkCandidate")
def _link_candidate(tenant: Tenant) -> object:
    return f.LinkCandidateFactory(user__tenant=tenant)


@admin_model("accounts.AuditLog")
def _audit(tenant: Tenant) -> object:
    return f.audit_entry(tenant)


@admin_model("classes.School")
def _school(tenant: Tenant) -> object:
    return f.SchoolFactory(tenant=tenant)


@admin_model("classes.Term")
def _term(tenant: Tenant) -> object:
    return f.TermFactory(tenant=tenant)


@admin_model("classes.Course")
def _course(tenant: Tenant) -> object:
    return f.CourseFactory(tenant=tenant)


@admin_model("classes.Class")
def _klass(tenant: Tenant) -> object:
    return f.ClassFactory(tenant=tenant)


@admin_model("classes.Enrollment")
def _enrollment(tenant: Tenant) -> object:
    return f.EnrollmentFactory(klass__tenant=tenant)
