"""Isolation makers for the scheduling admin models."""

from __future__ import annotations

from tests import factories as f
from tests.isolation import admin_model, url_param
from tests.scheduling.factories import (
    SchedulingPolicyFactory,
    SeriesFactory,
    SessionFactory,
    SessionParticipantFactory,
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


# --- URL parameters of the scheduling pages (helper "schedpages") ---------------------------


@url_param("tutor_id")
def _tutor_id(tenant: Tenant) -> object:
    """A tutor (with a profile serving the whole district) of ``tenant``."""
    return TutorProfileFactory(user=f.UserFactory(tenant=tenant)).user_id


@url_param("booking_id")
def _booking_id(tenant: Tenant) -> object:
    """A booked session of ``tenant`` with one student."""
    session = SessionFactory(tutor=f.UserFactory(tenant=tenant))
    SessionParticipantFactory(session=session)
    return session.pk
