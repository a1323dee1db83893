"""OneRoster REST 1.1 and 1.2 against the fake provider on loopback (a real HTTP peer)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine

from oneroster.models import RosterConnection, SyncRun
from oneroster.protocol.fake_provider import ROSTER_SCOPE, FakeOneRosterProvider, Faults
from oneroster.protocol.generator import BASE_TIME, District
from oneroster.protocol.rest import RestClient, RestFetchError
from oneroster.services import sync_run_create, sync_run_execute
from oneroster.sources import SourceUnavailable, _DjangoTransport
from tests.factories import TenantFactory
from tutoring_core.accounts.models import ExternalIdentity, User
from tutoring_core.classes.models import Enrollment

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider11() -> Iterator[FakeOneRosterProvider]:
    with FakeOneRosterProvider(District(60, seed=1), version="1.1") as p:
        yield p


@pytest.fixture
def provider12() -> Iterator[FakeOneRosterProvider]:
    with FakeOneRosterProvider(District(60, seed=1), version="1.2") as p:
        yield p


def connection_for(p: FakeOneRosterProvider, **kwargs: Any) -> RosterConnection:
    kind = RosterConnection.Kind.REST_1_2 if p.version == "1.2" else RosterConnection.Kind.REST_1_1
    values: dict[str, Any] = {
        "tenant": TenantFactory(slug="north"),
        "name": "SIS",
        "kind": kind,
        "base_url": p.base_url,
        "client_id": p.client_id,
        "client_secret": p.client_secret,
        "token_url": p.token_url if p.version == "1.2" else "",
        "page_size": 50,
        **kwargs,
    }
    return RosterConnection.objects.create(**values)


def run(conn: RosterConnection, mode: str = "full") -> SyncRun:
    return sync_run_execute(run_id=sync_run_create(connection=conn, mode=mode).pk)


def client_for(p: FakeOneRosterProvider, sleeps: list[float] | None = None, **kwargs: Any) -> RestClient:
    values: dict[str, Any] = {
        "base_url": p.base_url,
        "version": p.version,
        "client_id": p.client_id,
        "client_secret": p.client_secret,
        "token_url": p.token_url,
        "scopes": ROSTER_SCOPE,
        "transport": _DjangoTransport(),
        "page_size": 50,
        "requests_per_second": 1000,
        **kwargs,
    }
    if sleeps is not None:
        values["sleep"] = sleeps.append
    return RestClient(**values)


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_rest_full_sync_matches_the_csv_state(version: str) -> None:
    with FakeOneRosterProvider(District(60, seed=1), version=version) as p:
        conn = connection_for(p)
        result = run(conn)
    assert result.status == "succeeded", result.message
    assert result.counts["user"]["created"] == 124
    assert result.counts["enrollment"]["created"] == 378
    assert result.counts["agent"]["created"] == 120
    assert Enrollment.objects.filter(tenant=conn.tenant, status="active").count() == 378
    assert (
        ExternalIdentity.objects.filter(tenant=conn.tenant, kind="oneroster", issuer=str(conn.pk)).count()
        == 124
    )
    # Pages of 50 with X-Total-Count: enrollments took ceil(378 / 50) = 8 requests.
    enrollment_pages = [q for path, q, status in p.log if path.endswith("/enrollments") and status == 200]
    assert len(enrollment_pages) == 8


def test_oauth1_signature_is_checked_by_the_provider(provider11: FakeOneRosterProvider) -> None:
    conn = connection_for(provider11, client_secret="wrong")
    result = run(conn)
    assert result.status == "failed"
    assert "HTTP 401" in result.message
    assert User.objects.count() == 0


def test_oauth2_client_credentials_with_scope(provider12: FakeOneRosterProvider) -> None:
    client = client_for(provider12)
    assert client.probe() == 2
    assert len(provider12.tokens) == 1
    bad = client_for(provider12, scopes="https://example.org/other-scope")
    with pytest.raises(RestFetchError, match="HTTP 400"):
        bad.probe()


def test_429_with_retry_after_and_500_are_retried(provider11: FakeOneRosterProvider) -> None:
    provider11.faults = Faults(too_many={"users": 2}, retry_after="3", server_error={"classes": 1})
    sleeps: list[float] = []
    client = client_for(provider11, sleeps)
    records = list(client.records())
    assert sum(1 for r in records if r.entity == "user") == 124
    assert 3.0 in sleeps and sleeps.count(3.0) == 2  # Retry-After honoured, twice
    assert 0.5 in sleeps  # backoff after the 500
    statuses = [s for path, _, s in provider11.log if path.endswith("/users")]
    assert statuses[:3] == [429, 429, 200]


def test_persistent_429_leaves_the_run_queued_for_a_retry(provider11: FakeOneRosterProvider) -> None:
    provider11.faults = Faults(too_many={"orgs": 100}, retry_after="0")
    conn = connection_for(provider11)
    created = sync_run_create(connection=conn)
    with pytest.raises(SourceUnavailable, match="gave up after 5 attempts"):
        sync_run_execute(run_id=created.pk)
    created.refresh_from_db()
    assert created.status == "queued"
    assert User.objects.count() == 0


def test_short_pages_do_not_end_the_listing_early(provider11: FakeOneRosterProvider) -> None:
    provider11.faults = Faults(short_pages=True)
    users = [r for r in client_for(provider11, concurrency=1).records() if r.entity == "user"]
    assert len(users) == 124
    assert len({u.sourced_id for u in users}) == 124


def test_link_headers_are_followed_without_a_total(provider11: FakeOneRosterProvider) -> None:
    provider11.total_header = False
    provider11.link_headers = True
    provider11.faults = Faults(max_limit=20)  # the provider caps the page size below what we ask
    users = [r for r in client_for(provider11).records() if r.entity == "user"]
    assert len(users) == 124


def test_missing_envelope_fails_without_deactivating_anyone(provider11: FakeOneRosterProvider) -> None:
    conn = connection_for(provider11)
    assert run(conn).status == "succeeded"
    provider11.faults = Faults(no_envelope={"users"})
    result = run(conn)
    assert result.status == "failed"
    assert "has no 'users' data envelope" in result.message
    # The error names the endpoint (REST has no file and line).
    assert result.errors.get().message.startswith(
        f"{provider11.base_url}/ims/oneroster/v1p1/users?offset=0: "
    )
    assert User.objects.filter(tenant=conn.tenant, is_active=False).count() == 0
    assert Enrollment.objects.filter(tenant=conn.tenant, status="active").count() == 378


def test_delta_uses_the_date_filter_with_an_overlap() -> None:
    district = District(500, seed=6, change_rate=0.05, rekey_rate=0.01)
    with FakeOneRosterProvider(district, version="1.2") as p:
        conn = connection_for(p, page_size=500, delta_overlap_minutes=30)
        with time_machine.travel(BASE_TIME + dt.timedelta(hours=12), tick=True):
            assert run(conn).status == "succeeded"
        people = User.objects.filter(tenant=conn.tenant).count()
        p.set_district(district.at(1))
        p.log.clear()
        with time_machine.travel(BASE_TIME + dt.timedelta(days=1, hours=12), tick=True):
            result = run(conn, mode="delta")
        assert result.status == "succeeded", result.message
        filters = {q for _, q, _ in p.log if "filter=" in q}
        assert filters and all("dateLastModified%3E%272026-08-01T13%3A30%3A00.000Z%27" in q for q in filters)
        later = district.at(1)
        withdrawn = sum(1 for i in range(500) if later.withdrawn(i))
        assert result.counts["user"]["deactivated"] == 2 * withdrawn
        assert User.objects.filter(tenant=conn.tenant).count() == people  # re-keys relinked
        assert Enrollment.objects.filter(tenant=conn.tenant, status="active").count() == sum(
            1 for _ in later.rows("enrollment")
        )


def test_delta_before_any_full_sync_is_refused(provider11: FakeOneRosterProvider) -> None:
    result = run(connection_for(provider11), mode="delta")
    assert result.status == "failed"
    assert result.message == "A delta sync needs a successful full sync first."
