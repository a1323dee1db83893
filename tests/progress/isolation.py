"""Isolation makers for the progress admin models (helper "progress")."""

from __future__ import annotations

import datetime as dt
import uuid

from tests import factories as f
from tests.isolation import admin_model
from tutoring_core.accounts.models import Tenant
from tutoring_core.progress.models import SessionAttendance

START = dt.datetime(2027, 3, 3, 16, tzinfo=dt.UTC)


@admin_model("progress.SessionAttendance")
def _attendance(tenant: Tenant) -> object:
    return SessionAttendance.objects.create(
        tenant=tenant,
        session_id=uuid.uuid4(),
        person=f.UserFactory(tenant=tenant),
        session_start=START,
        session_end=START + dt.timedelta(hours=1),
        outcome="no_show",
        source="signaling",
    )
