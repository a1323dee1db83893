"""Isolation makers for the scheduling admin models."""

from __future__ import annotations

from tests import factories as f
from tests.isolation import admin_model
from tests.scheduling.factories import (
    SchedulingPolicyFactory,
    SeriesFactory,
    SessionFactory,
    TutorProfileFactory,
)
from tutoring_core.accounts.models import Tenant


@admin_model("scheduling.TutorProfile")
def _tutor_profile(tenant: Tenant) -> object:
    return TutorProfileFactory(user=f.UserFactory(tenant=tenant))


@admin_model("scheduling.SchedulingPolicy")
def _policy(tenant: Tenant) -> object:
    return SchedulingPolicyFactory(tenant=tenant)


@admin_model("scheduling.Session")
def _session(tenant: Tenant) -> object:
    return SessionFactory(tutor=f.UserFactory(tenant=tenant))


@admin_model("scheduling.Series")
def _series(tenant: Tenant) -> object:
    return SeriesFactory(tutor=f.UserFactory(tenant=tenant))
