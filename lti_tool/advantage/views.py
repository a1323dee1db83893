"""The class page's grades and class list: teachers and tutors enter or override
scores, see each score's delivery to the LMS, and sync the class list."""

from __future__ import annotations

import uuid
from functools import partial

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from lti_tool.advantage import platforms, selectors, services, tasks
from lti_tool.advantage.forms import ScoreEntryForm
from tutoring_core.accounts.api import Tenant, User, audit_record, client_ip, is_district_admin
from tutoring_core.classes import api as classes
from tutoring_core.progress import api as progress

STAFF_ROLES = {"teacher", "tutor"}


def _tenant(request: HttpRequest) -> Tenant:
    tenant = getattr(request.user, "tenant", None)
    if tenant is None:  # platform staff without a tenant use the admin instead
        raise Http404("No such class.")
    return tenant  # type: ignore[no-any-return]


def get_class_for_staff(request: HttpRequest, class_id: uuid.UUID) -> classes.ClassInfo:
    """The class, if the signed-in person teaches or tutors it (or is a district
    admin of its tenant); 404 otherwise, so other tenants learn nothing."""
    user: User = request.user  # type: ignore[assignment]
    klass = classes.class_info(tenant_id=_tenant(request).pk, class_id=class_id)
    if klass is None:
        raise Http404("No such class.")
    if is_district_admin(user):
        return klass
    if (
        classes.class_member_roles(tenant_id=klass.tenant_id, class_id=klass.id, user_id=user.pk)
        & STAFF_ROLES
    ):
        return klass
    raise Http404("No such class.")


def _page(
    request: HttpRequest, klass: classes.ClassInfo, form: ScoreEntryForm | None = None, status: int = 200
) -> HttpResponse:
    tenant = _tenant(request)
    members = classes.class_member_list(tenant_id=tenant.pk, class_id=klass.id)
    students = [member for member in members if member.role == "student"]
    activities = progress.activities_for_class(tenant=tenant, class_id=klass.id)
    latest = progress.latest_results(tenant=tenant, activity_ids=[a.id for a in activities])
    line_items = list(selectors.line_items_for_class(tenant_id=tenant.pk, class_id=klass.id))
    by_activity = {item.activity_id: item for item in line_items}
    columns = [{"activity": a, "line_item": by_activity.get(a.id)} for a in activities]
    rows = [
        {
            "student": student,
            "cells": [{"activity": a, "result": latest.get((a.id, student.user_id))} for a in activities],
        }
        for student in students
    ]
    return render(
        request,
        "lti_advantage/class_grades.html",
        {
            "klass": klass,
            "activities": activities,
            "columns": columns,
            "rows": rows,
            "members": members,
            "form": form or ScoreEntryForm(),
            "sync": selectors.latest_membership_sync(tenant_id=tenant.pk, class_id=klass.id),
            "can_sync": bool(platforms.memberships_for_class(tenant=tenant, class_id=klass.id)),
            "unplaced": len(platforms.gradable_links_for_class(tenant=tenant, class_id=klass.id))
            - len(line_items),
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def class_grades(request: HttpRequest, class_id: uuid.UUID) -> HttpResponse:
    klass = get_class_for_staff(request, class_id)
    if request.method == "GET":
        return _page(request, klass)
    user: User = request.user  # type: ignore[assignment]
    form = ScoreEntryForm(request.POST)
    if not form.is_valid():
        return _page(request, klass, form, status=400)
    activity = progress.activity_get(tenant=_tenant(request), activity_id=form.cleaned_data["activity"])
    if activity is None or activity.class_id != klass.id:
        form.add_error("activity", "That activity is not placed in this class.")
        return _page(request, klass, form, status=400)
    try:
        with transaction.atomic():
            recorded = progress.result_record(
                tenant=_tenant(request),
                activity_id=activity.id,
                user_id=form.cleaned_data["student"],
                score_given=form.cleaned_data["score"],
                comment=form.cleaned_data["comment"],
                source=progress.ResultSource.TEACHER,
                recorded_by=user,
            )
            audit_record(
                tenant=_tenant(request),
                actor=user,
                action="grades.score_entered",
                target=classes.class_audit_target(klass),
                ip_address=client_ip(request),
                details={
                    "result": str(recorded.id),
                    "activity": str(activity.id),
                    "student": str(form.cleaned_data["student"]),
                },
            )
    except progress.ProgressError as exc:
        form.add_error(None, str(exc))
        return _page(request, klass, form, status=400)
    messages.success(request, "Score saved. It is on its way to the LMS gradebook.")
    return redirect("lti_advantage:class_grades", class_id=klass.id)


@login_required
def class_grades_setup(request: HttpRequest, class_id: uuid.UUID) -> HttpResponse:
    """Make every gradable placement of the class a column this page can fill."""
    klass = get_class_for_staff(request, class_id)  # 404 before 405: ids stay secret
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    made = 0
    for link in platforms.gradable_links_for_class(tenant=_tenant(request), class_id=klass.id):
        assert link.ags is not None
        line_item = services.placement_register(
            tenant=_tenant(request),
            registration_id=link.registration_id,
            class_id=klass.id,
            resource_link_id=link.resource_link_id,
            title=link.title or "Activity",
            context_id=link.context_id or "",
            lineitem_url=link.ags.lineitem_url,
            lineitems_url=link.ags.lineitems_url,
        )
        if not line_item.url:
            transaction.on_commit(partial(tasks.sync_line_item.delay, str(line_item.pk)))
        made += 1
    messages.success(request, f"{made} gradable activit{'y' if made == 1 else 'ies'} ready.")
    return redirect("lti_advantage:class_grades", class_id=klass.id)


@login_required
def class_roster_sync(request: HttpRequest, class_id: uuid.UUID) -> HttpResponse:
    klass = get_class_for_staff(request, class_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    user: User = request.user  # type: ignore[assignment]
    sources = platforms.memberships_for_class(tenant=_tenant(request), class_id=klass.id)
    if not sources:
        messages.error(
            request, "This class's LMS course has not shared its class list (no NRPS claim at launch yet)."
        )
        return redirect("lti_advantage:class_grades", class_id=klass.id)
    source = sources[0]
    sync, created = services.membership_sync_request(
        tenant=_tenant(request),
        class_id=klass.id,
        registration_id=source.registration_id,
        memberships_url=source.memberships_url,
        requested_by=user,
    )
    if created:
        transaction.on_commit(partial(tasks.sync_membership.delay, str(sync.pk)))
        messages.success(request, "Class list sync started.")
    else:
        messages.info(request, "A class list sync is already running.")
    return redirect("lti_advantage:class_grades", class_id=klass.id)
