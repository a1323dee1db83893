"""The player: the app's page (inside the LMS frame) that opens an attempt, the
runtime page on the content origin that hosts scorm-again and the SCO, the commit
endpoint the runtime posts to across origins, and the attempts pages."""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from scorm import content
from scorm.models import ScormActivity, ScormAttempt, ScormPackage, ScormSco
from scorm.player_services import (
    MAX_ATTEMPTS_LIMIT,
    PlayerError,
    activity_attempts_set,
    activity_for_class,
    attempt_commit,
    attempt_for_launch,
    initial_values,
)
from tutoring_core.accounts import api as accounts
from tutoring_core.classes import api as classes

logger = logging.getLogger(__name__)
_STAFF = {accounts.Role.TEACHER, accounts.Role.TUTOR}
_ADMINS = {accounts.Role.SCHOOL_ADMIN, accounts.Role.DISTRICT_ADMIN}


def _member_role(request: HttpRequest, class_id: uuid.UUID) -> tuple[accounts.User, Any, str]:
    """(person, class, their role in it); 404 for another tenant's class, 403 for a
    person of the tenant who is not in the class."""
    user = request.user
    if not isinstance(user, accounts.User) or user.tenant_id is None:
        raise Http404("No such class.")
    klass = classes.class_info(tenant_id=user.tenant_id, class_id=class_id)
    if klass is None:
        raise Http404("No such class.")
    roles = {
        m.role
        for m in classes.class_member_list(tenant_id=user.tenant_id, class_id=class_id)
        if m.user_id == user.pk
    }
    if roles & _STAFF:
        return user, klass, accounts.Role.TEACHER
    if accounts.Role.STUDENT in roles:
        return user, klass, accounts.Role.STUDENT
    if accounts.user_roles(user=user) & _ADMINS:
        return user, klass, accounts.Role.DISTRICT_ADMIN
    raise PermissionDenied("You are not in this class.")


@login_required
@never_cache
def play(request: HttpRequest, class_id: uuid.UUID, package_id: uuid.UUID) -> HttpResponse:
    user, klass, role = _member_role(request, class_id)
    tenant = user.tenant
    assert tenant is not None  # _member_role refused tenantless people
    package = ScormPackage.objects.filter(tenant_id=tenant.pk, pk=package_id).first()
    if package is None:
        raise Http404("No such SCORM package.")
    scos = list(package.scos.order_by("order"))
    if not scos:
        raise Http404("This package has nothing to launch.")
    chosen = scos[0]
    wanted = request.GET.get("sco", "")
    if wanted:
        chosen = next((sco for sco in scos if str(sco.pk) == wanted), None)  # type: ignore[assignment]
        if chosen is None:
            raise Http404("No such item in this package.")
    context: dict[str, Any] = {"klass": klass, "package": package, "scos": scos, "sco": chosen, "error": ""}
    if not content.content_enabled():
        context["error"] = "Course playback is not set up on this server (SCORM_CONTENT_ORIGIN is empty)."
        return render(request, "scorm/player.html", context, status=503)
    activity = activity_for_class(tenant=tenant, class_id=klass.id, package=package)
    try:
        attempt = attempt_for_launch(activity=activity, sco=chosen, learner=user)
    except PlayerError as exc:
        context["error"] = exc.reason
        return render(request, "scorm/player.html", context, status=exc.status)
    context.update(
        {
            "attempt": attempt,
            "activity": activity,
            "player_url": content.player_url(attempt_id=attempt.pk),
            "is_staff": role != accounts.Role.STUDENT,
        }
    )
    return render(request, "scorm/player.html", context)


def player_wrapper(request: HttpRequest, token: str) -> HttpResponse:
    """On the content origin: scorm-again loaded with the attempt's data, the SCO in a
    frame of its own origin. No session here: the signed token is the authority."""
    attempt_id = content.player_token_attempt(token)
    attempt = (
        ScormAttempt.objects.select_related("sco__package", "learner").filter(pk=attempt_id).first()
        if attempt_id
        else None
    )
    if attempt is None:
        return HttpResponse(
            "This player link has expired or is not valid; open the activity again from your class.",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    sco: ScormSco = attempt.sco
    package: ScormPackage = sco.package
    config = {
        "version": package.version,
        "cmi": initial_values(attempt),
        "commitUrl": content.app_origin() + reverse("scorm:commit"),
        "token": content.commit_token(attempt_id=attempt.pk),
        "session": secrets.token_urlsafe(16),
        "autocommitSeconds": settings.SCORM_AUTOCOMMIT_SECONDS,
        "scoUrl": content.files_url(
            storage_root=package.storage_root, attempt_id=attempt.pk, path=_launch_path(sco)
        ),
    }
    response = render(request, "scorm/player_wrapper.html", {"config": config, "title": sco.title})
    response["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"connect-src {content.app_origin()}; frame-src 'self'; img-src 'self'; base-uri 'none'; "
        f"form-action 'none'; frame-ancestors {content.frame_ancestors()}"
    )
    response["Cache-Control"] = "no-store"
    return response


def _launch_path(sco: ScormSco) -> str:
    if not sco.parameters:
        return sco.href
    params = sco.parameters
    if params.startswith("?") and "?" in sco.href:
        return f"{sco.href}&{params[1:]}"
    if params.startswith(("?", "#")):
        return f"{sco.href}{params}"
    return f"{sco.href}{'&' if '?' in sco.href else '?'}{params}"


def _cors(response: HttpResponse) -> HttpResponse:
    # The content origin only, never with credentials: the token in the body is the
    # authority, and no other origin may read what this endpoint says.
    response["Access-Control-Allow-Origin"] = settings.SCORM_CONTENT_ORIGIN
    response["Vary"] = "Origin"
    return response


@csrf_exempt  # cross-origin from the content origin, authorised by the signed token, no cookies
@never_cache
def commit(request: HttpRequest) -> HttpResponse:
    if request.method == "OPTIONS":
        response = _cors(HttpResponse(status=204))
        response["Access-Control-Allow-Methods"] = "POST"
        response["Access-Control-Allow-Headers"] = "Content-Type"
        response["Access-Control-Max-Age"] = "600"
        return response
    if request.method != "POST":
        return _cors(JsonResponse({"result": False, "error": "POST a commit here."}, status=405))
    origin = request.META.get("HTTP_ORIGIN")
    if origin is not None and origin != settings.SCORM_CONTENT_ORIGIN:
        return _cors(
            JsonResponse({"result": False, "error": "Commits come from the course player only."}, status=403)
        )
    try:
        body = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _cors(JsonResponse({"result": False, "error": "The commit is not JSON."}, status=400))
    if not isinstance(body, dict):
        return _cors(JsonResponse({"result": False, "error": "The commit is not a JSON object."}, status=400))
    attempt_id = content.commit_token_attempt(str(body.get("token", "")))
    if attempt_id is None:
        return _cors(
            JsonResponse(
                {
                    "result": False,
                    "error": "The player's link has expired; reopen the activity to keep going.",
                },
                status=403,
            )
        )
    sequence = body.get("sequence")
    if sequence is not None and (isinstance(sequence, bool) or not isinstance(sequence, int)):
        return _cors(JsonResponse({"result": False, "error": "sequence must be a whole number."}, status=400))
    try:
        result = attempt_commit(
            attempt_id=attempt_id,
            session=str(body.get("session", "")),
            sequence=sequence,
            values=body.get("cmi"),
            terminate=body.get("terminate") is True,
        )
    except PlayerError as exc:
        logger.info("SCORM commit refused for attempt %s: %s", attempt_id, exc.reason)
        return _cors(
            JsonResponse(
                {"result": False, "error": exc.reason, "errors": [list(e) for e in exc.errors]},
                status=exc.status,
            )
        )
    return _cors(
        JsonResponse(
            {
                "result": True,
                "errorCode": 0,
                "applied": result.applied,
                "state": result.state,
                "completion": result.completion,
                "success": result.success,
                "score": None if result.score is None else str(result.score),
            }
        )
    )


def _attempts_policy_post(
    request: HttpRequest, user: accounts.User, tenant_id: uuid.UUID, class_id: uuid.UUID
) -> tuple[str, int]:
    """A teacher's change of a placed course's attempts policy: ("", 200) when done,
    else the reason and its status; nothing changes on a refusal."""
    try:
        activity_id = uuid.UUID(request.POST.get("activity", ""))
    except ValueError:
        return "Choose a course placed in this class.", 400
    activity = ScormActivity.objects.filter(tenant_id=tenant_id, klass_id=class_id, pk=activity_id).first()
    if activity is None:
        return "Choose a course placed in this class.", 400
    raw = request.POST.get("max_attempts", "").strip()
    if not raw.isdigit():
        return f"Attempts allowed must be a whole number from 0 (no limit) to {MAX_ATTEMPTS_LIMIT}.", 400
    try:
        changed = activity_attempts_set(activity=activity, max_attempts=int(raw), actor=user)
    except PlayerError as exc:
        return exc.reason, exc.status
    if changed:
        allowed = "any number of attempts" if int(raw) == 0 else f"{raw} attempt{'s' if raw != '1' else ''}"
        messages.success(request, f"“{activity.title}”: students now get {allowed}.")
    return "", 200


@login_required
@never_cache
def class_attempts(request: HttpRequest, class_id: uuid.UUID) -> HttpResponse:
    """Teachers (and the district's admins): every learner's attempts in the class, and
    each placed course's attempts policy. Students: their own."""
    user, klass, role = _member_role(request, class_id)
    tenant_id: uuid.UUID = klass.tenant_id
    is_staff = role != accounts.Role.STUDENT
    policy_error, status = "", 200
    if request.method == "POST":
        if not is_staff:
            raise PermissionDenied("Only the class's teachers can change its attempts policy.")
        policy_error, status = _attempts_policy_post(request, user, tenant_id, klass.id)
        if not policy_error:
            return redirect("scorm:class_attempts", class_id=klass.id)
    elif request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    attempts = ScormAttempt.objects.filter(tenant_id=tenant_id, activity__klass_id=klass.id).select_related(
        "activity", "sco", "learner"
    )
    if not is_staff:
        attempts = attempts.filter(learner=user)
    attempts = attempts.order_by(
        "activity__title", "learner__last_name", "learner__first_name", "sco__order", "number"
    )
    activities = ScormActivity.objects.filter(tenant_id=tenant_id, klass_id=klass.id).select_related(
        "package"
    )
    packages = ScormPackage.objects.filter(tenant_id=tenant_id).order_by("title") if is_staff else []
    return render(
        request,
        "scorm/attempts.html",
        {
            "klass": klass,
            "attempts": list(attempts),
            "activities": list(activities),
            "packages": list(packages),
            "is_staff": is_staff,
            "policy_error": policy_error,
            "max_attempts_limit": MAX_ATTEMPTS_LIMIT,
        },
        status=status,
    )
