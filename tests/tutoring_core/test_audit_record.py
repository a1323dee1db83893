"""audit_record: one INSERT of an append-only row (it was a hand-written INSERT
before issue 13; the ORM's force_insert writes the same row in one statement)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import TenantFactory, UserFactory
from tutoring_core.accounts.api import audit_record
from tutoring_core.accounts.models import AuditLog

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 5, 4, 8, 30, 15, 123456, tzinfo=dt.UTC)


def test_audit_record_is_one_insert_of_what_it_was_given() -> None:
    tenant = TenantFactory(slug="south")
    actor = UserFactory(tenant=tenant, username="ann")
    with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as captured:
        entry = audit_record(
            tenant=tenant,
            actor=actor,
            action="auth.sign_in",
            target=actor,
            ip_address="2001:db8::1",
            details={"method": "lti", "nested": [1, "two"]},
        )
    assert [q["sql"].split(" ", 2)[:2] for q in captured.captured_queries] == [["INSERT", "INTO"]]
    assert isinstance(entry.id, int) and entry.action == "auth.sign_in"
    stored = AuditLog.objects.get(pk=entry.id)
    assert (stored.tenant_id, stored.actor_id, stored.actor_label, stored.action) == (
        tenant.pk,
        actor.pk,
        str(actor),
        "auth.sign_in",
    )
    assert (stored.target_type, stored.target_id, stored.target_label) == (
        "accounts.user",
        str(actor.pk),
        str(actor),
    )
    assert stored.details == {"method": "lti", "nested": [1, "two"]}
    assert stored.ip_address == "2001:db8::1"
    assert stored.created_at == NOW == entry.created_at
    second = audit_record(tenant=None, actor=None, action="system.check")
    assert second.id == entry.id + 1
    assert list(AuditLog.objects.order_by("id").values_list("action", "actor_label")) == [
        ("auth.sign_in", str(actor)),
        ("system.check", "system"),
    ]
