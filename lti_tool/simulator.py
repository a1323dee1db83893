"""Views of the demo launch simulator (DEMO_MODE only): the LMS side of the flow,
on lti1p3platform. See lti_tool/demo.py."""

from __future__ import annotations

import typing as t
import uuid
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from lti1p3platform.exceptions import LtiException
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.registration import Registration

from lti_tool import demo, keys
from lti_tool.launch import launch_url, login_url
from lti_tool.models import SimulatorPlacement


def demo_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: t.Any, **kwargs: t.Any) -> HttpResponse:
        if not settings.DEMO_MODE:
            raise Http404("The launch simulator exists only in demo mode.")
        return view(request, *args, **kwargs)

    return wrapper


class _Conf(LTI1P3PlatformConfAbstract):
    def init_platform_config(self, **kwargs: t.Any) -> None:
        self._registration = kwargs["registration"]

    def get_registration_by_params(self, **kwargs: t.Any) -> Registration:
        return self._registration  # type: ignore[return-value]


class _Launch(LTIAdvantageMessageLaunchAbstract):
    def __init__(self, preflight: dict[str, str], conf: _Conf) -> None:
        super().__init__(None, conf)  # type: ignore[arg-type]
        self._preflight = preflight

    def get_preflight_response(self) -> dict[str, t.Any]:
        return self._preflight

    def render_launch_form(self, launch_data: dict[str, t.Any], **kwargs: t.Any) -> dict[str, t.Any]:
        return launch_data


def _registration() -> Registration:
    from jwcrypto.jwk import JWK

    private = demo.simulator_key().private_key_pem
    public = JWK.from_pem(private.encode()).export_to_pem().decode()
    return (
        Registration()
        .set_iss(demo.issuer())
        .set_client_id(demo.CLIENT_ID)
        .set_deployment_id(demo.DEPLOYMENT_ID)
        .set_launch_url(launch_url())
        .set_deeplink_launch_url(launch_url())
        .set_oidc_login_url(login_url())
        .set_platform_private_key(private)
        .set_platform_public_key(public)
        .set_tool_key_set(keys.tool_jwks())  # type: ignore[arg-type]
    )


@demo_only
@require_GET
def course(request: HttpRequest) -> HttpResponse:
    """The simulated LMS course page: pick who you are, the tool opens in a frame."""
    persona_key = request.GET.get("as", "")
    message = request.GET.get("message", "resource")
    persona = demo.PERSONAS.get(persona_key)
    placement = _placement(request.GET.get("placement", ""))
    if request.GET.get("placement") and placement is None:
        raise Http404("The simulated course has no such placed item.")
    hint = "deeplink" if message == "deeplink" else "resource"
    if placement is not None:
        hint = f"placement:{placement.pk}"
    login = None
    if persona is not None:
        login = {
            "url": login_url(),
            "params": {
                "iss": demo.issuer(),
                "login_hint": persona.key,
                "target_link_uri": launch_url(),
                "lti_message_hint": hint,
                "client_id": demo.CLIENT_ID,
                "lti_deployment_id": demo.DEPLOYMENT_ID,
            },
        }
    return render(
        request,
        "lti_tool/simulator.html",
        {
            "personas": demo.PERSONAS.values(),
            "persona": persona,
            "message": message,
            "login": login,
            "placement": placement,
            "placements": SimulatorPlacement.objects.order_by("created_at"),
        },
    )


def _placement(value: str) -> SimulatorPlacement | None:
    try:
        return SimulatorPlacement.objects.filter(pk=uuid.UUID(value)).first() if value else None
    except ValueError:
        return None


@demo_only
@never_cache
@require_http_methods(["GET", "POST"])
def auth(request: HttpRequest) -> HttpResponse:
    """The simulated LMS's OIDC auth endpoint."""
    params = {**request.GET.dict(), **request.POST.dict()}
    persona = demo.PERSONAS.get(params.get("login_hint", ""))
    if (
        persona is None
        or params.get("redirect_uri") != launch_url()
        or params.get("response_mode") != "form_post"
    ):
        return HttpResponse(
            "invalid_request: unknown user or redirect_uri", status=400, content_type="text/plain"
        )
    conf = _Conf(registration=_registration())
    launch = _Launch(params, conf)
    launch._registration = conf.get_registration()
    try:
        launch.validate_preflight_response(params)
    except LtiException:
        return HttpResponse("invalid_request", status=400, content_type="text/plain")
    claims = demo.persona_claims(persona)
    launch.set_user_data(
        claims["sub"], claims["roles"], full_name=claims["name"], email_address=claims["email"]
    )
    launch.set_launch_context_claim(
        demo.COURSE_ID,
        context_types=["http://purl.imsglobal.org/vocab/lis/v2/course#CourseSection"],
        context_title=demo.COURSE_TITLE,
        context_label=demo.COURSE_ID,
    )
    launch.set_extra_claims({"given_name": claims["given_name"], "family_name": claims["family_name"]})
    hint = params.get("lti_message_hint", "")
    if hint == "deeplink":
        launch.set_dl(
            demo.platform_urls()["deep_link_return"], title="Add tutoring", accept_types={"ltiResourceLink"}
        )
    elif hint.startswith("placement:"):
        # An item placed by deep linking, opened as the LMS opens it: its own
        # resource link, with the custom parameters the tool's response set.
        placement = _placement(hint.removeprefix("placement:"))
        if placement is None:
            return HttpResponse("invalid_request: unknown placement", status=400, content_type="text/plain")
        launch.set_resource_link_claim(placement.resource_link_id, title=placement.title)
        if placement.custom:
            launch.set_custom_parameters_claim(dict(placement.custom))
    else:
        launch.set_resource_link_claim("sim-link-tutoring", title="Tutoring")
        launch.set_custom_parameters_claim({"hub_target": "class"})
    data = launch.generate_launch_request()
    return render(
        request,
        "lti_tool/simulator_post.html",
        {"action": launch_url(), "fields": {"id_token": data["id_token"], "state": data["state"]}},
    )


@demo_only
@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"keys": _registration().get_jwks()})


@demo_only
@csrf_exempt
@require_POST
def token(request: HttpRequest) -> JsonResponse:
    conf = _Conf(registration=_registration())
    conf.get_registration()
    try:
        return JsonResponse(dict(conf.get_access_token(request.POST.dict())))
    except LtiException as exc:
        return JsonResponse({"error": "invalid_client", "detail": str(exc)}, status=400)


@demo_only
@csrf_exempt
@require_POST
def deep_link_return(request: HttpRequest) -> HttpResponse:
    conf = _Conf(registration=_registration())
    conf.get_registration()
    try:
        items = conf.validate_deeplinking_resp({"JWT": request.POST.get("JWT", "")})
    except LtiException as exc:
        return HttpResponse(
            f"The simulated LMS refused the response: {exc}", status=400, content_type="text/plain"
        )
    # The LMS keeps what was placed as resource links of its own naming.
    placements = [
        SimulatorPlacement.objects.create(
            resource_link_id=f"sim-placed-{uuid.uuid4().hex[:16]}",
            title=str(item.get("title") or "")[:255],
            custom={str(k): str(v) for k, v in (item.get("custom") or {}).items()},
            line_item=item.get("lineItem") if isinstance(item.get("lineItem"), dict) else None,
        )
        for item in items
        if isinstance(item, dict) and item.get("type") == "ltiResourceLink"
    ]
    return render(
        request,
        "lti_tool/simulator_placed.html",
        {"items": items, "placements": placements, "personas": demo.PERSONAS.values()},
    )
