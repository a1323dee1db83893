"""Isolation makers for the oneroster URLs and admin models."""

from __future__ import annotations

from oneroster.models import RosterConnection, SyncRun
from tests.isolation import admin_model, url_param
from tutoring_core.accounts.models import Tenant


def make_connection(tenant: Tenant) -> RosterConnection:
    return RosterConnection.objects.create(tenant=tenant, name=f"{tenant.slug} SIS")


def make_run(tenant: Tenant, status: str = SyncRun.Status.AWAITING_APPROVAL) -> SyncRun:
    connection = make_connection(tenant)
    return SyncRun.objects.create(tenant=tenant, connection=connection, status=status)


@url_param("connection_id")
def _connection_id(tenant: Tenant) -> object:
    return make_connection(tenant).pk


@url_param("run_id")
def _run_id(tenant: Tenant) -> object:
    return make_run(tenant).pk


@admin_model("oneroster.RosterConnection")
def _connection(tenant: Tenant) -> object:
    return make_connection(tenant)


@admin_model("oneroster.SyncRun")
def _run(tenant: Tenant) -> object:
    return make_run(tenant)
