"""Isolation makers for the video pages and admin models (helper "video")."""

from __future__ import annotations

from tests import factories as f
from tests.isolation import url_param
from tests.scheduling.factories import SessionFactory, SessionParticipantFactory
from tutoring_core.accounts.models import Tenant


@url_param("video_session_id")
def _video_session_id(tenant: Tenant) -> object:
    """A booked session of ``tenant`` with one student (its room's URL takes the session id)."""
    session = SessionFactory(tutor=f.UserFactory(tenant=tenant))
    SessionParticipantFactory(session=session)
    return session.pk
