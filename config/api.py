"""The public JSON API, v1 (issue 12 point 7): one NinjaAPI, routers beside each app's views.

Mounted at /api/v1/ (config/urls.py); its OpenAPI 3.1 document, generated from the code,
is at /api/v1/openapi.json. Every operation needs a bearer token
(tutoring_core.apiauth) and answers refusals as ``{"error": reason, "field": name}``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.openapi.docs import ABS_TPL_PATH, Swagger

from tutoring_core.accounts.endpoints import router as people_router
from tutoring_core.apiauth.auth import BearerToken
from tutoring_core.apiauth.services import IdempotencyConflict
from tutoring_core.payments.endpoints import router as payments_router
from tutoring_core.scheduling.endpoints import router as scheduling_router
from tutoring_core.scheduling.endpoints import scheduling_error_body
from tutoring_core.scheduling.errors import SchedulingError


class LocalSwagger(Swagger):
    """ninja's Swagger page with its scripts served from here, never from a CDN.

    ninja renders its local template only when "ninja" is in INSTALLED_APPS and falls
    back to a CDN page otherwise; the hub keeps ninja out of INSTALLED_APPS (it would load
    pydantic into every process at start-up: config/settings.py [api]) and gives ninja's
    templates and static folders to Django directly, so the fallback is the local page too.
    """

    template_cdn = str(ABS_TPL_PATH / "swagger.html")


api = NinjaAPI(
    title="Tutoring Hub API",
    version="1",
    description=(
        "Tenant-scoped: a token acts as one person of one district with that person's roles; "
        'another district\'s ids answer 404. Refusals answer `{"error": reason, "field": name}`.'
    ),
    urls_namespace="api-v1",
    openapi_url="/openapi.json",
    docs=LocalSwagger(),
    docs_url="/docs" if settings.API_DOCS else None,
    auth=BearerToken(),
)


def _error(
    request: HttpRequest, status: int, reason: str, field: str | None = None, **extra: Any
) -> HttpResponse:
    return api.create_response(request, {"error": reason, "field": field, **extra}, status=status)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str | None:
    # ninja's loc is (source, *path): ("query", "duration"), ("body", "payload", "weekly", 0, "start").
    parts = list(loc[1:])
    if loc and loc[0] == "body" and parts and parts[0] == "payload":
        parts = parts[1:]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or None


def _reason(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "Invalid value."))
    # Our own validators raise ValueError; pydantic prefixes their text.
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    # ninja answers 422 with pydantic's error list; the API promises 400 with one field and reason.
    first = exc.errors[0] if exc.errors else {}
    loc = tuple(first.get("loc", ()))
    field = _field_name(loc)
    reason = _reason(first)
    if field is None and loc[:1] == ("body",):
        field, reason = "body", "Send a JSON object as the request body."
    elif field and first.get("type") == "missing":
        reason = f"{field} is required."
    elif field:
        reason = f"{field}: {reason}"
    return _error(request, 400, reason, field)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = _error(
        request, 401, "A valid API token is required: send `Authorization: Bearer <token>`.", None
    )
    # RFC 6750 section 3: name the scheme; say the token was bad when one was sent.
    challenge = 'Bearer realm="api"'
    if request.headers.get("Authorization"):
        challenge += (
            ', error="invalid_token", error_description="The token is unknown, revoked or malformed."'
        )
    response["WWW-Authenticate"] = challenge
    return response


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code == 400 and exc.message.startswith("Cannot parse request body"):
        return _error(request, 400, "The request body is not valid JSON.", "body")
    return _error(request, exc.status_code, exc.message, None)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, str(exc) or "Not found.", None)


@api.exception_handler(SchedulingError)
def _scheduling_error(request: HttpRequest, exc: SchedulingError) -> HttpResponse:
    return api.create_response(request, scheduling_error_body(exc), status=exc.http_status)


@api.exception_handler(IdempotencyConflict)
def _idempotency_conflict(request: HttpRequest, exc: IdempotencyConflict) -> HttpResponse:
    return _error(request, 422, exc.reason, "Idempotency-Key")


api.add_router("/", people_router)
api.add_router("/", scheduling_router)
api.add_router("/", payments_router)
