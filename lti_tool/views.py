"""LTI 1.3 endpoints: JWKS, OIDC login, launch (cookie, platform storage, new window),
deep linking, and the Canvas developer-key configuration."""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from pylti1p3.deep_link import DeepLink
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.lineitem import LineItem

from lti_tool import keys, services
from lti_tool.advantage.api import placement_plan
from lti_tool.launch import (
    HubCookieService,
    HubMessageLaunch,
    HubRegistration,
    launch_url,
    login_start,
    login_url,
    state_record,
)
from lti_tool.middleware import LTI_SESSION_FLAG
from lti_tool.models import PlatformRegistration, ResourceLink
from lti_tool.protocol import claims as C
from lti_tool.protocol.errors import LaunchRejected
from tutoring_core.accounts.api import ProvisioningRefused, Role, User, audit_record, client_ip, session_login
from tutoring_core.classes.api import ClassInfo, class_info, class_member_list
from tutoring_core.progress.api import placeable_get, placeables_for_class
from tutoring_core.scheduling.api import tutors_for_class

logger = logging.getLogger(__name__)

DEEP_LINK_TTL = 3600
STORAGE_HEADER = "HTTP_X_LTI_STORAGE_CHECK"


def _rejected(request: HttpRequest, exc: LaunchRejected, stage: str) -> HttpResponse:
    logger.warning("LTI %s rejected: %s (%s) from %s", stage, exc.code, exc.message, client_ip(request))
    return render(
        request,
        "lti_tool/error.html",
        {"code": exc.code, "message": exc.message, "stage": stage},
        status=exc.status,
    )


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(keys.tool_jwks())
    response["Cache-Control"] = "public, max-age=300"
    return response


@csrf_exempt  # a cross-site form post from the LMS; carries no session
@never_cache
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    try:
        result = login_start(request)
    except LaunchRejected as exc:
        return _rejected(request, exc, "login")
    if result.storage_target:
        # 1EdTech client-side postMessage storage: keep the state in the platform's
        # storage too, for browsers that drop even partitioned cookies.
        response = render(
            request,
            "lti_tool/login_storage.html",
            {
                "auth_url": result.auth_url,
                "storage": {
                    "target": result.storage_target,
                    "origin": result.platform_origin,
                    "state": result.state,
                    "nonce": result.nonce,
                    "auth_url": result.auth_url,
                },
            },
        )
    else:
        response = HttpResponse(status=302)
        response["Location"] = result.auth_url
    result.cookies.apply(response)
    return response


def _finish(request: HttpRequest, launch: HubMessageLaunch) -> tuple[str, dict[str, Any]]:
    """Validate fully, provision, sign in. Returns (redirect URL, launch summary)."""
    claims = launch.validate_launch()
    registration = launch.registration_model
    assert registration is not None
    deployment = services.deployment_resolve(
        registration=registration, deployment_id=claims.deployment_id, known=launch.deployment_model
    )
    if claims.message_type == C.DEEP_LINKING_REQUEST and not _can_place(claims):
        raise LaunchRejected(
            "deep_linking_role", "Only teachers can place tutoring activities in a course.", status=403
        )
    # One transaction for provisioning and the sign-in's audit row: one commit (one
    # WAL flush) per launch instead of one per statement, and no half-provisioned
    # person. The session itself is on the cache; SessionMiddleware saves it.
    try:
        with transaction.atomic():
            outcome = services.launch_provision(
                registration=registration,
                deployment=deployment,
                claims=claims,
                known_link=launch.link_model,
                link_read_for=launch.link_read_for,
            )
            session_login(request, outcome.user, method="lti", fresh=True)
            summary = {
                "registration": str(registration.pk),
                "deployment_id": deployment.deployment_id,
                "role": outcome.role,
                "class_id": str(outcome.class_id) if outcome.class_id else None,
                "resource_link": str(outcome.resource_link.pk) if outcome.resource_link else None,
                "return_url": claims.return_url,
            }
            request.session[LTI_SESSION_FLAG] = True
            request.session["lti_launch"] = summary
    except ProvisioningRefused as exc:
        raise LaunchRejected("account_inactive", str(exc), status=403) from None
    if claims.message_type == C.DEEP_LINKING_REQUEST:
        token = uuid.uuid4()
        cache.set(
            _deep_link_key(token),
            {
                "user": str(outcome.user.pk),
                "tenant": str(registration.tenant_id),
                "registration": str(registration.pk),
                "deployment_id": deployment.deployment_id,
                "class_id": str(outcome.class_id) if outcome.class_id else None,
                "settings": dict(claims.deep_linking or {}),
                # Where gradable items' columns will be (AGS claim of the request).
                "lineitems": claims.ags.lineitems if claims.ags is not None else "",
                "context_id": claims.context_id or "",
            },
            DEEP_LINK_TTL,
        )
        return reverse("lti_tool:deep_link", kwargs={"session_id": token}), summary
    return _target_url(outcome.resource_link, outcome.class_id), summary


def _can_place(claims: C.LaunchClaims) -> bool:
    from lti_tool.protocol import roles

    return roles.class_role(claims.roles) in (roles.TEACHER,)


def _target_url(link: ResourceLink | None, class_id: uuid.UUID | None) -> str:
    if class_id is None:
        return reverse("web:home")
    url = reverse("web:class_detail", kwargs={"class_id": class_id})
    # The "Book a tutor" and "Tutor's page" placements open the scheduling pages (issue 12).
    if link is not None and link.target == ResourceLink.Target.TUTOR and link.target_ref:
        return reverse("scheduling:tutor_booking", kwargs={"class_id": class_id, "tutor_id": link.target_ref})
    if link is not None and link.target == ResourceLink.Target.BOOKING:
        return reverse("scheduling:class_booking", kwargs={"class_id": class_id})
    # A placed course of another integration (a SCORM package): opens what it names
    # in this class, or the class page when it is gone.
    activity = str((link.custom or {}).get(services.CUSTOM_ACTIVITY, "")) if link is not None else ""
    if activity and link is not None:
        placeable = placeable_get(tenant_id=link.tenant_id, class_id=class_id, key=activity)
        if placeable is not None:
            return placeable.path
    return url


@csrf_exempt  # the LMS posts the id_token cross-site; the state/nonce pair is the CSRF defence
@never_cache
@require_POST
def launch(request: HttpRequest) -> HttpResponse:
    state = request.POST.get("state", "")
    launch_obj = HubMessageLaunch(request)
    try:
        url, _summary = _finish(request, launch_obj)
    except LaunchRejected as exc:
        if exc.code == "state_unbound":
            return _cookieless(request, state, exc)
        return _rejected(request, exc, "launch")
    response = HttpResponse(status=302)
    response["Location"] = url
    _expire_state_cookie(request, response, state)
    return response


def _expire_state_cookie(request: HttpRequest, response: HttpResponse, state: str) -> None:
    """A used state cookie is dead weight: someone launching all day would otherwise
    carry dozens of them (and overflow header limits) until they expire."""
    cookies = HubCookieService(request)
    cookies.set_cookie(state, "", 0)
    cookies.apply(response)


def _cookieless(request: HttpRequest, state: str, exc: LaunchRejected) -> HttpResponse:
    """The state cookie did not come back: the browser blocks cookies in this frame."""
    storage_target = request.POST.get("lti_storage_target", "")
    if storage_target:
        stored = state_record(state) or {}
        registration = (
            PlatformRegistration.objects.filter(pk=stored["registration"]).first()
            if stored.get("registration")
            else None
        )
        if registration is not None:
            from urllib.parse import urlsplit

            auth = urlsplit(registration.auth_login_url)
            return render(
                request,
                "lti_tool/launch_storage.html",
                {
                    "storage": {
                        "target": storage_target,
                        "origin": f"{auth.scheme}://{auth.netloc}",
                        "state": state,
                        "id_token": request.POST.get("id_token", ""),
                        "verify_url": reverse("lti_tool:launch_storage"),
                    }
                },
            )
    record = state_record(state)
    if record is None:
        return _rejected(request, exc, "launch")
    params = {k: v for k, v in record["login"].items() if v}
    params["lti1p3_new_window"] = "1"
    logger.info("LTI launch without cookies; offering a new window (state %s...)", state[:8])
    return render(
        request,
        "lti_tool/new_window.html",
        {"new_window_url": f"{login_url()}?{urlencode(params)}"},
        status=200,
    )


@csrf_exempt  # protected by the custom header below: a cross-site form cannot set it
@never_cache
@require_POST
def launch_storage(request: HttpRequest) -> HttpResponse:
    """Second step of a platform-storage launch: our own page read the state back
    from the platform's storage and posts it with a header only same-origin script
    can send (a forged cross-site form cannot), so the state is bound to this browser."""
    if request.META.get(STORAGE_HEADER) != "1":
        return JsonResponse({"error": "This endpoint is only for the tool's own launch page."}, status=403)
    stored = request.POST.get("stored_state", "")
    state = request.POST.get("state", "")
    record = state_record(state)
    launch_obj = HubMessageLaunch(request, storage_state=stored)
    try:
        url, _summary = _finish(request, launch_obj)
    except LaunchRejected as exc:
        logger.warning("LTI storage launch rejected: %s (%s)", exc.code, exc.message)
        return JsonResponse({"error": exc.message, "code": exc.code}, status=exc.status)
    # The launch is verified and the person signed in; whether this frame can keep
    # the session cookie is the browser's call. The page checks, and offers a new
    # window (a fresh launch, first-party there) when it cannot.
    params = {k: v for k, v in (record or {}).get("login", {}).items() if v}
    params["lti1p3_new_window"] = "1"
    return JsonResponse(
        {
            "redirect": url,
            "session_check": reverse("lti_tool:session_check"),
            "new_window": f"{login_url()}?{urlencode(params)}",
        }
    )


@never_cache
@require_GET
def session_check(request: HttpRequest) -> JsonResponse:
    """Whether this browser context kept the session cookie (used inside LMS frames)."""
    return JsonResponse({"authenticated": bool(request.user.is_authenticated)})


# --- Deep linking -------------------------------------------------------------------


def _deep_link_key(token: uuid.UUID) -> str:
    return f"lti:dl:{token}"


def _deep_link_for_user(request: HttpRequest, session_id: uuid.UUID) -> dict[str, Any]:
    """The pending deep-linking request, if it belongs to the signed-in person; 404
    otherwise (another person's or tenant's request looks like nothing at all)."""
    record = cache.get(_deep_link_key(session_id))
    user = request.user
    if (
        record is None
        or not user.is_authenticated
        or record["user"] != str(user.pk)
        or record["tenant"] != str(getattr(user, "tenant_id", ""))
    ):
        raise Http404("No such deep-linking request.")
    return record


def _choices(record: dict[str, Any]) -> tuple[ClassInfo | None, list[dict[str, str]]]:
    klass = None
    options = []
    if record.get("class_id"):
        klass = class_info(tenant_id=record["tenant"], class_id=record["class_id"])
    if klass is not None:
        options.append({"value": "class", "title": f"{klass.title}: tutoring", "kind": "Class tutoring page"})
        options.append({"value": "booking", "title": f"{klass.title}: book a tutor", "kind": "Booking page"})
        tutors: dict[str, str] = {}
        for member in class_member_list(tenant_id=klass.tenant_id, class_id=klass.id, role=Role.TUTOR):
            tutors[str(member.user_id)] = member.name
        # Tutors who serve the class through scheduling (issue 12), enrolled or not.
        for info in tutors_for_class(tenant_id=klass.tenant_id, class_id=klass.id):
            tutors.setdefault(str(info.person_id), info.name or info.email)
        for pk, name in tutors.items():
            options.append({"value": f"tutor:{pk}", "title": f"Tutoring with {name}", "kind": "Tutor's page"})
        # What other integrations offer in the class (SCORM courses), through progress.api.
        for placeable in placeables_for_class(tenant_id=klass.tenant_id, class_id=klass.id):
            options.append(
                {
                    "value": placeable.key,
                    "title": placeable.title,
                    "kind": placeable.kind,
                    "activity_key": placeable.activity_key if placeable.gradable else "",
                }
            )
    return klass, options


@never_cache
@require_http_methods(["GET", "POST"])
def deep_link(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    record = _deep_link_for_user(request, session_id)
    klass, options = _choices(record)
    dl_settings = record["settings"]
    accept_multiple = dl_settings.get("accept_multiple", True) not in (False, "false")
    context = {"options": options, "klass": klass, "accept_multiple": accept_multiple, "error": ""}
    if request.method == "GET":
        return render(request, "lti_tool/deep_link.html", context)

    chosen = request.POST.getlist("item")
    by_value = {option["value"]: option for option in options}
    unknown = [value for value in chosen if value not in by_value]
    error = ""
    if not chosen:
        error = "Choose at least one page to place."
    elif unknown:
        error = "One of the chosen pages is not available in this course any more; reload and choose again."
    elif len(chosen) > 1 and not accept_multiple:
        error = "This LMS accepts one item at a time here; choose a single page."
    return_url = str(dl_settings.get("deep_link_return_url", ""))
    if not error and not return_url.startswith(("https://", "http://")):
        error = "The LMS gave no usable return address for this placement; start again from the LMS."
    if error:
        return render(request, "lti_tool/deep_link.html", {**context, "error": error}, status=400)

    gradable = set(request.POST.getlist("gradable"))
    registration = PlatformRegistration.objects.get(pk=record["registration"], tenant_id=record["tenant"])
    # One response per request, claimed before anything is written: a form posted
    # twice (a double click) plans its columns once.
    if not cache.delete(_deep_link_key(session_id)):
        raise Http404("No such deep-linking request.")
    resources = []
    planned: dict[str, str] = {}
    with transaction.atomic():
        for value in chosen:
            option = by_value[value]
            target, _, ref = value.partition(":")
            custom = {services.CUSTOM_TARGET: target}
            if "activity_key" in option:
                # Another integration's placeable: the link opens it inside the class.
                custom = {services.CUSTOM_TARGET: ResourceLink.Target.CLASS, services.CUSTOM_ACTIVITY: value}
            elif ref:
                custom[services.CUSTOM_TUTOR] = ref
            resource = DeepLinkResource().set_url(launch_url()).set_title(option["title"])
            if value in gradable and klass is not None:
                # The column shows on the class's grades page now (issue 11): the
                # platform makes its own from this lineItem, and the placed link's
                # first launch binds the two through the custom parameter.
                placement = uuid.uuid4().hex
                placement_plan(
                    tenant=registration.tenant,
                    registration_id=registration.pk,
                    class_id=klass.id,
                    placement_ref=placement,
                    title=option["title"],
                    context_id=record.get("context_id", ""),
                    lineitems_url=record.get("lineitems", ""),
                    # A placeable's results are recorded under its own activity key:
                    # the column attaches there.
                    activity_key=option.get("activity_key", ""),
                )
                custom[services.CUSTOM_PLACEMENT] = placement
                planned[value] = placement
                resource.set_lineitem(
                    LineItem().set_score_maximum(100).set_label(option["title"]).set_resource_id(placement)
                )
            resources.append(resource.set_custom_params(custom))
        audit_record(
            tenant=registration.tenant,
            actor=request.user if isinstance(request.user, User) else None,
            action="lti.deep_link.respond",
            target=registration,
            details={"items": chosen, "gradable": sorted(gradable), "placements": planned},
        )
    deep_link_obj = DeepLink(HubRegistration(registration), record["deployment_id"], dl_settings)  # type: ignore[arg-type]
    response_jwt = deep_link_obj.get_response_jwt(resources)
    return render(
        request,
        "lti_tool/deep_link_return.html",
        {"return_url": return_url, "jwt": response_jwt},
    )


# --- Configuration for LMS admins ---------------------------------------------------


@require_GET
def canvas_config(request: HttpRequest) -> JsonResponse:
    """Canvas developer-key JSON ("Enter URL" in Canvas's LTI key form)."""
    base = settings.PUBLIC_BASE_URL
    domain = base.split("://", 1)[-1]
    config = {
        "title": settings.LTI_TOOL_TITLE,
        "description": "Tutoring, booking and progress for your classes.",
        "oidc_initiation_url": login_url(),
        "target_link_uri": launch_url(),
        "public_jwk_url": base + reverse("lti_tool:jwks"),
        "scopes": [
            "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
            "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
            "https://purl.imsglobal.org/spec/lti-ags/scope/score",
            "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
        ],
        "extensions": [
            {
                "domain": domain,
                "platform": "canvas.instructure.com",
                "privacy_level": "public",
                "settings": {
                    "placements": [
                        {
                            "placement": "course_navigation",
                            "message_type": "LtiResourceLinkRequest",
                            "target_link_uri": launch_url(),
                        },
                        {
                            "placement": "link_selection",
                            "message_type": "LtiDeepLinkingRequest",
                            "target_link_uri": launch_url(),
                        },
                        {
                            "placement": "assignment_selection",
                            "message_type": "LtiDeepLinkingRequest",
                            "target_link_uri": launch_url(),
                        },
                    ]
                },
            }
        ],
        "custom_fields": {"canvas_course_id": "$Canvas.course.id"},
    }
    return JsonResponse(config, json_dumps_params={"indent": 2})


def tool_urls() -> dict[str, str]:
    """What an LMS admin pastes into the LMS (also printed by lti_platform_add)."""
    base = settings.PUBLIC_BASE_URL
    return {
        "login_url": login_url(),
        "launch_url": launch_url(),
        "jwks_url": base + reverse("lti_tool:jwks"),
        "deep_linking_url": launch_url(),
        "canvas_config_url": base + reverse("lti_tool:canvas_config"),
    }


# --- Dynamic registration -------------------------------------------------------------


@never_cache
def dynamic_registration(request: HttpRequest, token: str) -> HttpResponse:
    """LTI Dynamic Registration initiation: the LMS opens this URL (per tenant, signed)
    with ``openid_configuration`` and ``registration_token``."""
    from lti_tool import dynamic_registration as dr
    from lti_tool.errors import RegistrationInvalid
    from tutoring_core.accounts.api import tenant_by_id

    tenant = tenant_by_id(dr.tenant_for_token(token))
    if tenant is None:
        raise Http404("This registration link is unknown or has expired; ask for a new one.")
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    config_url = request.GET.get("openid_configuration", "")
    if not config_url.startswith(("https://", "http://")):
        return render(
            request,
            "lti_tool/error.html",
            {"code": "openid_configuration_missing", "stage": "registration",
             "message": "Open this link from your LMS's \"register a tool by URL\" page; it adds the "
             "openid_configuration parameter this page needs."},
            status=400,
        )  # fmt: skip
    try:
        registration = dr.register(
            tenant=tenant,
            openid_configuration_url=config_url,
            registration_token=request.GET.get("registration_token") or None,
        )
    except RegistrationInvalid as exc:
        logger.warning("dynamic registration for %s failed: %s", tenant.slug, exc)
        return render(
            request,
            "lti_tool/error.html",
            {"code": "registration_refused", "stage": "registration", "message": str(exc)},
            status=400,
        )
    return render(request, "lti_tool/registered.html", {"registration": registration})
