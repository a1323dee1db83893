"""tutoring_core.rawsql: hand-written SELECTs read back as the ORM would, on SQLite
and PostgreSQL alike (CI runs this on PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection

from lti_tool.models import PlatformRegistration
from tests.factories import TenantFactory
from tutoring_core import rawsql
from tutoring_core.accounts.models import Tenant

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 5, 4, 8, 30, 15, 123456, tzinfo=dt.UTC)


def _registration_with_tenant_sql(reader: rawsql.RowReader) -> str:
    r, t = PlatformRegistration, Tenant
    return (
        f"SELECT {reader.columns()} FROM {rawsql.table(t)} t"  # noqa: S608 - names from the models
        f" LEFT JOIN {rawsql.table(r)} r ON r.{rawsql.column(r, 'tenant')} = t.{rawsql.column(t, 'id')}"
        f" WHERE t.{rawsql.column(t, 'slug')} = %s"
    )


def test_rows_read_back_equal_the_orms_instances() -> None:
    tenant = TenantFactory(slug="east")
    registration = PlatformRegistration.objects.create(
        tenant=tenant,
        issuer="https://canvas.example.edu",
        client_id="10000000000001",
        auth_login_url="https://canvas.example.edu/api/lti/authorize_redirect",
        auth_token_url="https://canvas.example.edu/login/oauth2/token",
        key_set_url="https://canvas.example.edu/api/lti/security/jwks",
        lti1p1_consumer_key="legacy-key",
        lti1p1_shared_secret="legacy-secret",  # encrypted at rest: decrypted on read
    )
    reader = rawsql.RowReader((Tenant, "t"), (PlatformRegistration, "r"))
    found = reader.fetch_one(_registration_with_tenant_sql(reader), ["east"])
    assert found is not None
    got_tenant, got_registration = found
    expected = PlatformRegistration.objects.get(pk=registration.pk)
    for field in PlatformRegistration._meta.concrete_fields:
        assert getattr(got_registration, field.attname) == getattr(expected, field.attname), field.name
    assert isinstance(got_registration.pk, uuid.UUID) and isinstance(got_tenant.pk, uuid.UUID)
    assert got_registration.created_at.tzinfo is not None
    assert got_registration.lti1p1_shared_secret == "legacy-secret"
    assert (got_tenant.pk, got_tenant.slug, got_tenant.is_active) == (tenant.pk, "east", True)
    # Loaded instances behave as the ORM's: an update, not an insert.
    assert got_registration._state.adding is False
    got_registration.name = "Canvas (east)"
    got_registration.save(update_fields=["name"])
    assert PlatformRegistration.objects.get(pk=registration.pk).name == "Canvas (east)"


def test_a_left_join_that_finds_nothing_reads_as_none_and_no_row_as_none() -> None:
    TenantFactory(slug="west")
    reader = rawsql.RowReader((Tenant, "t"), (PlatformRegistration, "r"))
    found = reader.fetch_one(_registration_with_tenant_sql(reader), ["west"])
    assert found is not None and found[0].slug == "west" and found[1] is None
    assert reader.fetch_one(_registration_with_tenant_sql(reader), ["nowhere"]) is None


def test_param_prepares_values_as_the_field_stores_them() -> None:
    tenant = TenantFactory(slug="north")
    sql = (
        f"SELECT COUNT(*) FROM {rawsql.table(Tenant)}"  # noqa: S608 - names from the model
        f" WHERE {rawsql.column(Tenant, 'id')} = %s AND {rawsql.column(Tenant, 'is_active')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [rawsql.param(Tenant, "id", tenant.pk), rawsql.param(Tenant, "is_active", True)])
        assert cursor.fetchone()[0] == 1
        cursor.execute(sql, [rawsql.param(Tenant, "id", tenant.pk), rawsql.param(Tenant, "is_active", False)])
        assert cursor.fetchone()[0] == 0
