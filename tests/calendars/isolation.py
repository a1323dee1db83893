"""Isolation makers for the calendars admin models and URLs."""

from __future__ import annotations

import uuid

from django.utils import timezone

from tests import factories as f
from tests.isolation import NOT_OBJECT_IDS, admin_model
from tutoring_core.accounts.models import Tenant
from tutoring_core.calendars.models import CalDAVAccount, CalendarPush

NOT_OBJECT_IDS["feed_token"] = (
    "the secret token of a person's iCal feed (/calendar/<token>.ics): no sign-in, the token is the key; "
    "tests/calendars/test_feed.py covers unknown and reset tokens"
)


def _account(tenant: Tenant) -> CalDAVAccount:
    return CalDAVAccount.objects.create(
        tenant=tenant,
        person=f.UserFactory(tenant=tenant),
        collection_url="https://dav.example.org/cal/",
        username="someone",
        password="secret",
    )


@admin_model("calendars.CalDAVAccount")
def _caldav_account(tenant: Tenant) -> object:
    return _account(tenant)


@admin_model("calendars.CalendarPush")
def _calendar_push(tenant: Tenant) -> object:
    return CalendarPush.objects.create(
        tenant=tenant,
        account=_account(tenant),
        session_id=uuid.uuid4(),
        change="booked",
        next_attempt_at=timezone.now(),
    )
