"""The OpenAPI 3.1 document validates, and every operation in it answers generated input
(valid and invalid, schemathesis) without a 5xx, in the documented shapes.

Run in-process against the project's WSGI application with a district admin's bearer token.
Examples per operation are bounded and derandomized, so the run is repeatable and short.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from config.api import api
from tests.api.conftest import ApiClient, client_for
from tests.payments.factories import PackageFactory, PayerAccountFactory
from tests.scheduling.factories import World
from tutoring_core.apiauth.services import token_create
from tutoring_core.payments.models import Package, PayerAccount

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 25


def _document() -> dict[str, Any]:
    # As served: through JSON (status codes become string keys).
    return json.loads(json.dumps(api.get_openapi_schema(path_prefix="/api/v1/"), cls=DjangoJSONEncoder))


def test_the_document_is_openapi_3_1_and_validates(world: World) -> None:
    served = client_for(world.teacher).get("/api/v1/openapi.json")
    assert served.status_code == 200
    document = served.json()
    assert document["openapi"] == "3.1.0"
    assert document == _document()

    # The OpenAPI 3.1 meta-schema (schemathesis ships the OAI's), then each schema
    # object against JSON Schema 2020-12, which 3.1 documents use.
    loaded = schemathesis.openapi.from_dict(document)
    loaded.validate()
    for name, component in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(component), name
    assert document["components"]["securitySchemes"] == {"BearerToken": {"type": "http", "scheme": "bearer"}}

    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    }
    assert operations == {
        ("GET", "/api/v1/people"),
        ("GET", "/api/v1/tutors"),
        ("GET", "/api/v1/tutors/{person_id}"),
        ("PUT", "/api/v1/tutors/{person_id}"),
        ("PUT", "/api/v1/tutors/{person_id}/availability"),
        ("GET", "/api/v1/tutors/{person_id}/slots"),
        ("GET", "/api/v1/bookings"),
        ("POST", "/api/v1/bookings"),
        ("POST", "/api/v1/bookings/{session_id}/cancel"),
        ("POST", "/api/v1/bookings/{session_id}/reschedule"),
        ("POST", "/api/v1/bookings/{session_id}/join"),
        ("POST", "/api/v1/bookings/{session_id}/outcome"),
        ("POST", "/api/v1/series"),
        ("GET", "/api/v1/packages"),
        ("GET", "/api/v1/payers/{payer_id}"),
        ("GET", "/api/v1/payers/{payer_id}/statement"),
        ("POST", "/api/v1/payers/{payer_id}/purchases"),
        ("GET", "/api/v1/bookings/{session_id}/refund-quote"),
    }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            # Every operation needs the token and documents the 400 and 401 refusals.
            assert operation["security"] == [{"BearerToken": []}], (method, path)
            for code in ("400", "401"):
                schema_ref = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema_ref == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, code)
    assert document["components"]["schemas"]["ErrorOut"]["required"] == ["error"]


def test_the_document_needs_no_token(db: Any) -> None:
    assert ApiClient(None).get("/api/v1/openapi.json").status_code == 200


OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in _document()["paths"].items()
    for method in item
    if method in {"get", "put", "post"}
)


@contextmanager
def keep_the_test_connection() -> Iterator[None]:
    # Django's test client does this too: a request must not close the test's
    # connection (and with it the transaction every test runs in). Connected again
    # by the test client after each of its requests, so disconnected just around the run.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _aim_at_real_rows(case: Any, world: World, session_id: uuid.UUID) -> None:
    """Point well-formed ids at rows that exist, so generated bodies reach the services
    (a random UUID stops at the 404); malformed ids are left as generated."""
    payer = PayerAccount.objects.filter(tenant=world.tenant).first()
    package = Package.objects.filter(tenant=world.tenant).first()
    real = {
        "payer_id": payer.pk,
        "package_id": package.pk,
        "person_id": world.tutor.pk,
        "session_id": session_id,
        "tutor": world.tutor.pk,
        "student": world.student.pk,
        "class_id": world.klass.pk,
        "person": world.student.pk,
    }

    def swap(values: Any) -> None:
        if not isinstance(values, dict):
            return
        for name, value in real.items():
            if name in values and isinstance(values[name], str):
                try:
                    uuid.UUID(values[name])
                except ValueError:
                    continue
                values[name] = str(value)

    swap(case.path_parameters)
    swap(case.query)
    swap(case.body)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_every_operation_answers_generated_input_without_a_5xx(
    world: World, method: str, path: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(_document())
    schema.app = WSGIHandler()
    operation = schema[path][method]
    token = token_create(person=world.admin).token
    booked = client_for(world.admin).post(
        "/api/v1/bookings",
        {
            "tutor": str(world.tutor.pk),
            "student": str(world.student.pk),
            "start": _next_monday_10(),
            "duration": 60,
        },
    )
    assert booked.status_code == 201, booked.content
    session_id = uuid.UUID(booked.json()["id"])
    # A payer and a package of the district, so purchases and statements reach the services.
    PayerAccountFactory(tenant=world.tenant)
    PackageFactory(tenant=world.tenant, amount_minor=1000)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    if mode is GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        _aim_at_real_rows(case, world, session_id)
        # Every generated request carries the token; the header schemathesis may
        # generate (Idempotency-Key) stays as generated.
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        case.call_and_validate(checks=checks)

    with keep_the_test_connection():
        run()


def _next_monday_10() -> str:
    """10:00 in Chicago next Monday (the world's tutor works Mon-Fri 09:00-17:00 there)."""
    today = timezone.now().astimezone(dt.UTC).date()
    monday = today + dt.timedelta(days=7 - today.weekday())
    start = dt.datetime.combine(monday, dt.time(10), tzinfo=zoneinfo.ZoneInfo("America/Chicago"))
    return start.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
