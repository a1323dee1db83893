"""The teacher's SCORM pages: upload a package, list the tenant's packages, see one.

The player's pages live apart (scorm/player_views.py)."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from scorm.errors import PackageRejected
from scorm.forms import PackageUploadForm, UploadLimitHandler
from scorm.selectors import package_get_for_tenant, package_info, packages_for_tenant
from scorm.services import package_import
from tutoring_core.accounts import api as accounts
from tutoring_core.classes import api as classes

# Who may bring content into the tenant: the people who teach and the district's admins.
_IMPORTER_ROLES = {
    accounts.Role.TEACHER,
    accounts.Role.TUTOR,
    accounts.Role.SCHOOL_ADMIN,
    accounts.Role.DISTRICT_ADMIN,
}


def _importer(request: HttpRequest) -> accounts.User:
    user = request.user
    if not isinstance(user, accounts.User) or user.tenant_id is None:
        raise PermissionDenied("SCORM packages belong to a district; sign in with a district account.")
    if not _IMPORTER_ROLES & accounts.user_roles(user=user):
        raise PermissionDenied("Only teachers, tutors and administrators can manage SCORM packages.")
    return user


@csrf_exempt
def package_list(request: HttpRequest) -> HttpResponse:
    # The size limit must sit in front of the handlers that spool the file, before
    # anything reads the body (CSRF included); CSRF is checked just after.
    limit = UploadLimitHandler(request)
    request.upload_handlers.insert(0, limit)
    return _package_list(request, limit)


@csrf_protect
@login_required
def _package_list(request: HttpRequest, limit: UploadLimitHandler) -> HttpResponse:
    user = _importer(request)
    assert user.tenant_id is not None
    form = PackageUploadForm()
    status = 200
    if request.method == "POST":
        form = PackageUploadForm(request.POST, request.FILES, too_large=limit.exceeded)
        if form.is_valid():
            upload = form.cleaned_data["package"]
            try:
                info = package_import(
                    tenant_id=user.tenant_id, actor_id=user.pk, fileobj=upload, filename=upload.name
                )
            except PackageRejected as exc:
                form.add_error("package", f"This package cannot be imported. {exc.reason}")
                status = 400
            else:
                if info.created:
                    messages.success(request, f"Imported “{info.title}” (SCORM {info.version}).")
                else:
                    messages.info(request, f"“{info.title}” was imported before; nothing changed.")
                return redirect("scorm:package_detail", package_id=info.id)
        else:
            status = 400
    context = {"form": form, "packages": packages_for_tenant(tenant_id=user.tenant_id)}
    return render(request, "scorm/package_list.html", context, status=status)


@login_required
def package_detail(request: HttpRequest, package_id: uuid.UUID) -> HttpResponse:
    user = _importer(request)
    assert user.tenant_id is not None
    package = package_get_for_tenant(tenant_id=user.tenant_id, package_id=package_id)
    # Where the importer can open it now: the classes they teach or tutor (a district
    # admin opens it from a class's SCORM attempts page; the LMS places it by deep linking).
    taught = {}
    for summary in classes.classes_for_user(user=user):
        if summary.role in (accounts.Role.TEACHER, accounts.Role.TUTOR):
            taught[summary.id] = summary
    return render(
        request,
        "scorm/package_detail.html",
        {"package": package_info(package), "classes": list(taught.values())},
    )
