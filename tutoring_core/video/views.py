"""The room page, its join-token endpoint and the tutor's attendance page (issue 15)."""

from __future__ import annotations

import uuid
import zoneinfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from tutoring_core.accounts.models import User
from tutoring_core.video import services
from tutoring_core.video.data import RoomAccess
from tutoring_core.video.errors import NotFound, VideoError
from tutoring_core.video.models import VideoPolicy
from tutoring_core.video.protocol.attendance import OUTCOMES

# The room page may use the camera, microphone and screen capture for itself and in an LMS
# frame that delegates them (allow="camera; microphone; display-capture").
PERMISSIONS = "camera=(self), microphone=(self), display-capture=(self)"
OUTCOME_LABELS = {"attended": "Attended", "late": "Late", "left_early": "Left early", "no_show": "No-show"}


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _refused(request: HttpRequest, exc: VideoError) -> HttpResponse:
    if isinstance(exc, NotFound):
        raise Http404(exc.reason)
    return render(request, "video/refused.html", {"reason": exc.reason}, status=exc.http_status)


def _access(request: HttpRequest, video_session_id: uuid.UUID) -> RoomAccess:
    return services.room_access(user=_user(request), session_id=video_session_id)


@login_required
def room(request: HttpRequest, video_session_id: uuid.UUID) -> HttpResponse:
    try:
        access = _access(request, video_session_id)
    except VideoError as exc:
        return _refused(request, exc)
    zone = zoneinfo.ZoneInfo(_user(request).time_zone or "UTC")
    if access.provider != "builtin":
        with timezone.override(zone):
            response = render(
                request,
                "video/provider_room.html",
                {
                    "access": access,
                    "provider_label": dict(VideoPolicy.Provider.choices)[access.provider],
                    "config": {
                        "statusUrl": reverse("video:status", kwargs={"video_session_id": video_session_id})
                    },
                    "zone_name": str(zone),
                    "attendance_url": reverse(
                        "video:attendance", kwargs={"video_session_id": video_session_id}
                    )
                    if access.role == "tutor"
                    else "",
                },
            )
        response["Permissions-Policy"] = PERMISSIONS
        return response
    with timezone.override(zone):
        response = render(
            request,
            "video/room.html",
            {
                "access": access,
                "config": {
                    "tokenUrl": reverse("video:token", kwargs={"video_session_id": video_session_id}),
                    "role": access.role,
                    "name": access.person_name,
                },
                "attendance_url": reverse("video:attendance", kwargs={"video_session_id": video_session_id})
                if access.role == "tutor"
                else "",
                "zone_name": str(zone),
            },
        )
    response["Permissions-Policy"] = PERMISSIONS
    return response


@login_required
def token(request: HttpRequest, video_session_id: uuid.UUID) -> HttpResponse:
    """A fresh join token and ICE servers (with short-lived TURN credentials), asked for at join
    time so the token's two minutes start then, not when the page loaded."""
    try:
        access = _access(request, video_session_id)
    except VideoError as exc:
        if isinstance(exc, NotFound):
            raise Http404(exc.reason) from None
        return JsonResponse({"code": exc.close_code, "reason": exc.reason}, status=exc.http_status)
    if request.method != "POST":  # after the 404: the method tells nothing about other tenants
        return HttpResponseNotAllowed(["POST"])
    return JsonResponse(
        {
            "token": services.join_token_issue(access=access),
            "wsPath": f"/ws/video/rooms/{access.room_id}/",
            "iceServers": services.ice_servers_for(person_id=access.person_id),
        }
    )


@login_required
@require_http_methods(["GET", "POST"])
def attendance(request: HttpRequest, video_session_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    try:
        info = services._session(video_session_id, user.tenant_id)
    except VideoError as exc:
        return _refused(request, exc)
    if info.tutor_id != user.pk:
        return render(
            request,
            "video/refused.html",
            {"reason": "Only the session's tutor sees its attendance."},
            status=403,
        )
    room_row = services._room(info)
    if request.method == "POST":
        try:
            services.attendance_correct(
                actor=user,
                room_id=room_row.pk,
                person_id=request.POST.get("person", ""),
                outcome=request.POST.get("outcome", ""),
            )
        except VideoError as exc:
            return render(request, "video/refused.html", {"reason": exc.reason}, status=exc.http_status)
        messages.success(request, "Attendance corrected.")
        return redirect(request.path)
    recorded = {a.person_id: a for a in services.attendance_list(room_id=room_row.pk)}
    rows = [
        {"person_id": p.person_id, "name": p.name, "record": recorded.get(p.person_id)}
        for p in info.participants
        if p.status == "booked"
    ]
    zone = zoneinfo.ZoneInfo(user.time_zone or "UTC")
    with timezone.override(zone):
        return render(
            request,
            "video/attendance.html",
            {
                "info": info,
                "rows": rows,
                "outcomes": [(o, OUTCOME_LABELS[o]) for o in OUTCOMES],
                "zone_name": str(zone),
            },
        )


def _json_refusal(exc: VideoError) -> HttpResponse:
    if isinstance(exc, NotFound):
        raise Http404(exc.reason)
    return JsonResponse({"code": exc.close_code, "reason": exc.reason}, status=exc.http_status)


@login_required
def join(request: HttpRequest, video_session_id: uuid.UUID) -> HttpResponse:
    """Into the provider's meeting (BigBlueButton, Jitsi, LiveKit): the hub's checks first,
    then a join URL made for this person, followed at once."""
    try:
        access = _access(request, video_session_id)
    except VideoError as exc:
        return _refused(request, exc)
    if request.method != "POST":  # after the 404: the method tells nothing about other tenants
        return HttpResponseNotAllowed(["POST"])
    try:
        url = services.provider_join(access=access)
    except VideoError as exc:
        return _refused(request, exc)
    return redirect(url)


@login_required
def end(request: HttpRequest, video_session_id: uuid.UUID) -> HttpResponse:
    """The tutor ends a provider room for everyone; attendance is recorded."""
    user = _user(request)
    try:
        services._session(video_session_id, user.tenant_id)
    except VideoError as exc:
        return _refused(request, exc)
    if request.method != "POST":  # after the 404: the method tells nothing about other tenants
        return HttpResponseNotAllowed(["POST"])
    try:
        services.provider_room_end(actor=user, session_id=video_session_id)
    except VideoError as exc:
        return _refused(request, exc)
    messages.success(request, "The session has ended; attendance is recorded.")
    return redirect("video:attendance", video_session_id=video_session_id)


@login_required
def status(request: HttpRequest, video_session_id: uuid.UUID) -> HttpResponse:
    """What the provider room page polls: still open, and whether the meeting records."""
    try:
        access = _access(request, video_session_id)
    except VideoError as exc:
        if isinstance(exc, NotFound):
            raise Http404(exc.reason) from None
        return JsonResponse({"open": False, "reason": exc.reason, "recorded": False})
    return JsonResponse({"open": True, "reason": "", "recorded": access.recorded})


@login_required
@require_http_methods(["GET", "POST"])
def recording(request: HttpRequest, video_session_id: uuid.UUID) -> HttpResponse:
    """The session's recording: the tutor asks for it; students or guardians (by the tenant's
    policy) give or withdraw consent beforehand; everyone sees who has consented."""
    user = _user(request)
    try:
        info = services._session(video_session_id, user.tenant_id)
    except VideoError as exc:
        return _refused(request, exc)
    mine = services.consent_students_for(user=user, info=info)
    if user.pk != info.tutor_id and not mine:
        return render(
            request,
            "video/refused.html",
            {"reason": "Only the session's tutor, and whoever consents for its students, see its recording."},
            status=403,
        )
    if request.method == "POST":
        try:
            if "request" in request.POST:
                services.recording_request(actor=user, session_id=info.id, on=request.POST["request"] == "on")
            else:
                services.consent_set(
                    actor=user,
                    session_id=info.id,
                    student_id=request.POST.get("student", ""),
                    given=request.POST.get("consent") == "give",
                )
        except VideoError as exc:
            return render(request, "video/refused.html", {"reason": exc.reason}, status=exc.http_status)
        messages.success(request, "Saved.")
        return redirect(request.path)
    room_row = services._room(info)
    policy = services.providers.policy_for(info.tenant_id)
    provider = services.providers.provider_named(room_row.provider, policy)
    given = services.consents_of(session_id=info.id)
    zone = zoneinfo.ZoneInfo(user.time_zone or "UTC")
    with timezone.override(zone):
        return render(
            request,
            "video/recording.html",
            {
                "info": info,
                "is_tutor": user.pk == info.tutor_id,
                "requested": room_row.recording_requested_by_id is not None,
                "started": room_row.provider_started_at is not None,
                "recorded": room_row.recorded,
                "blockers": services.recording_blockers(info=info, policy=policy, provider=provider),
                "students": [
                    {
                        "id": p.person_id,
                        "name": p.name,
                        "consent": given.get(p.person_id),
                        "mine": p.person_id in mine,
                    }
                    for p in info.participants
                    if p.status == "booked"
                ],
                "consent_from": policy.get_consent_from_display(),
                "zone_name": str(zone),
                "recordings": services.recordings_of(room_id=room_row.pk),
            },
        )


@csrf_exempt
@require_http_methods(["POST"])
def bbb_recording_ready(request: HttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
    """BigBlueButton's recording-ready callback (machine to machine; its JWT is the proof)."""
    try:
        outcome = services.bbb_recording_ready(
            tenant_id=tenant_id, signed_parameters=request.POST.get("signed_parameters", "")
        )
    except VideoError as exc:
        return _json_refusal(exc)
    return JsonResponse({"outcome": outcome})


@csrf_exempt
@require_http_methods(["POST"])
def bbb_events(request: HttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
    """bbb-webhooks' callback (machine to machine; the checksum over URL, body and the shared
    secret is the proof)."""
    try:
        body = request.body.decode()
    except UnicodeDecodeError:
        return JsonResponse({"reason": "The body is not UTF-8."}, status=400)
    try:
        outcome = services.bbb_hook_events(
            tenant_id=tenant_id, body=body, checksum=request.GET.get("checksum", "")
        )
    except VideoError as exc:
        return _json_refusal(exc)
    return JsonResponse({"outcome": outcome})


@csrf_exempt
@require_http_methods(["POST"])
def livekit_webhook(request: HttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
    """LiveKit's webhook (machine to machine; the Authorization JWT signs the body)."""
    try:
        body = request.body.decode()
    except UnicodeDecodeError:
        return JsonResponse({"reason": "The body is not UTF-8."}, status=400)
    try:
        outcome = services.livekit_webhook(
            tenant_id=tenant_id, body=body, authorization=request.headers.get("Authorization", "")
        )
    except VideoError as exc:
        return _json_refusal(exc)
    return JsonResponse({"outcome": outcome})
