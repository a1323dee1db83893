from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse

from tutoring_core.accounts.api import audit_record, client_ip, is_district_admin, user_roles
from tutoring_core.accounts.models import Role, User
from tutoring_core.accounts.selectors import wards_of
from tutoring_core.classes.models import Class
from tutoring_core.classes.selectors import class_members, classes_for_user
from tutoring_core.progress import api as progress

# The shape of a tenant slug (Django's slug), which is what a district code is.
DISTRICT_CODE = re.compile(r"[-a-z0-9_]{1,63}")


class SignInView(auth_views.LoginView):
    template_name = "web/signin.html"
    redirect_authenticated_user = True

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        response = super().form_valid(form)
        user = form.get_user()
        audit_record(
            tenant=user.tenant,
            actor=user,
            action="auth.sign_in",
            target=user,
            ip_address=client_ip(self.request),
            details={"method": "password"},
        )
        return response


def district_sign_in(request: HttpRequest) -> HttpResponse:
    """Send a person to their district's single sign-on page by district code.

    The answer never depends on whether a district uses the code: any well-formed
    code gets the same redirect, with no lookup (issue 11: a 404 here told anyone
    which codes exist). The SSO page it leads to says when no district matches.
    The core knows only the URL shape (settings.DISTRICT_SIGN_IN_URL), not the SSO app.
    """
    code = request.GET.get("district", "").strip().lower()
    if code and DISTRICT_CODE.fullmatch(code):
        return redirect(settings.DISTRICT_SIGN_IN_URL.format(slug=code))
    form = AuthenticationForm(request)
    return render(
        request,
        "web/signin.html",
        {
            "form": form,
            "district": code,
            "district_error": "A district code has only letters, digits, hyphens and underscores."
            if code
            else "Enter your district's code.",
        },
        status=400,
    )


# A step is its text, or (text, URL name) when a page of the hub does it. A step
# whose URL name does not resolve (its app is not installed, or its page is not
# built yet) is not shown: the home page offers only what the hub can do today.
# Admin URL names are strings, not imports: the core names no integration module.
NEXT_STEPS: dict[str, list[str | tuple[str, str]]] = {
    Role.DISTRICT_ADMIN: [
        (
            "Connect your student information system (roster sync).",
            "admin:oneroster_rosterconnection_changelist",
        ),
        ("Register your LMS (LTI 1.3).", "admin:lti_tool_platformregistration_changelist"),
        ("Register your identity provider (single sign-on).", "admin:sso_identityprovider_changelist"),
        ("Review the audit log.", "admin:accounts_auditlog_changelist"),
        ("Make people tutors and set what they teach.", "scheduling:tutor_list"),
        ("Buy tutoring for schools and programs; see every payer's statement.", "payments:payers"),
        ("Pay tutors for a period's sessions.", "payments:payruns"),
        ("Import SCORM courses from your authoring tools.", "scorm:package_list"),
    ],
    Role.SCHOOL_ADMIN: ["Check that every class at your school has its teachers and students."],
    Role.TEACHER: [
        "Add the tutoring hub to your LMS course to place activities.",
        "Review your classes' rosters below.",
        ("See the tutoring sessions you booked; book a tutor from a class's page.", "scheduling:my_sessions"),
        ("Import SCORM courses from your authoring tools.", "scorm:package_list"),
    ],
    Role.TUTOR: [
        ("Set your weekly availability so students can book you.", "scheduling:my_availability"),
        ("See your sessions this week.", "scheduling:my_week"),
        ("See your pay and pay statements.", "payments:my_pay"),
        ("Import SCORM courses from your authoring tools.", "scorm:package_list"),
    ],
    Role.STUDENT: [
        "Open a class below to book a tutor.",
        ("See your upcoming tutoring sessions.", "scheduling:my_sessions"),
    ],
    Role.GUARDIAN: [
        "See your children's classes below.",
        ("See your children's upcoming tutoring sessions.", "scheduling:my_sessions"),
        ("Buy tutoring and see your family's statement.", "payments:payers"),
    ],
}


def _resolve(name: str) -> str:
    """The URL of a URL name, or "" when it names no page of this deployment."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def _steps(roles: Sequence[str]) -> list[dict[str, str]]:
    steps = []
    for role in roles:
        for step in NEXT_STEPS[role]:
            if isinstance(step, str):
                steps.append({"text": step, "url": ""})
            elif url := _resolve(step[1]):
                steps.append({"text": step[0], "url": url})
    return list({step["text"]: step for step in steps}.values())


def _demo_links() -> list[dict[str, str]]:
    """In demo mode, the pages settings.DEMO_HOME_LINKS names (the launch simulator),
    each as (label, URL name); the core imports none of the apps behind them."""
    if not settings.DEMO_MODE:
        return []
    links = [{"text": label, "url": _resolve(name)} for label, name in settings.DEMO_HOME_LINKS]
    return [link for link in links if link["url"]]


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    roles = user_roles(user=user)
    ordered = [role for role in Role if role in roles]
    wards = [{"user": ward, "classes": classes_for_user(user=ward)} for ward in wards_of(guardian=user)]
    return render(
        request,
        "web/home.html",
        {
            "roles": [Role(role).label for role in ordered],
            "next_steps": _steps(ordered),
            "classes": classes_for_user(user=user),
            "wards": wards,
            "is_district_admin": is_district_admin(user),
            "demo_links": _demo_links(),
        },
    )


def get_class_for_user(request: HttpRequest, class_id: uuid.UUID) -> Class:
    """The class, if the signed-in person may see it; 404 otherwise (never 403, so
    another tenant cannot learn that an id exists)."""
    user: User = request.user  # type: ignore[assignment]
    if user.tenant_id is None:
        raise Http404("No such class.")
    try:
        klass = Class.objects.select_related("school").get(pk=class_id, tenant_id=user.tenant_id)
    except Class.DoesNotExist:
        raise Http404("No such class.") from None
    if is_district_admin(user) or klass.enrollments.filter(user=user, status="active").exists():
        return klass
    if klass.enrollments.filter(user__in=wards_of(guardian=user), status="active").exists():
        return klass
    raise Http404("No such class.")


@login_required
def class_detail(request: HttpRequest, class_id: uuid.UUID) -> HttpResponse:
    klass = get_class_for_user(request, class_id)
    user: User = request.user  # type: ignore[assignment]
    my_roles = set(klass.enrollments.filter(user=user, status="active").values_list("role", flat=True))
    staff_view = bool(my_roles & {Role.TEACHER, Role.TUTOR}) or is_district_admin(user)
    members = list(class_members(klass=klass)) if staff_view else []
    if staff_view:
        named = settings.CLASS_STAFF_LINKS
    elif Role.STUDENT in my_roles:
        named = settings.CLASS_STUDENT_LINKS
    else:
        named = []
    links = [(label, reverse(name, kwargs={"class_id": klass.pk})) for label, name in named]
    # Attendance of the class's tutoring sessions (issue 15 point 4): staff see every student's,
    # a student their own, a guardian their children's in this class.
    if staff_view:
        shown = [e.user for e in members if e.role == Role.STUDENT]
    elif Role.STUDENT in my_roles:
        shown = [user]
    else:
        shown = list(
            wards_of(guardian=user).filter(
                enrollments__klass=klass, enrollments__status="active", enrollments__role=Role.STUDENT
            )
        )
    summaries = progress.attendance_summaries(
        tenant_id=klass.tenant_id, person_ids=[person.pk for person in shown], class_id=klass.pk
    )
    attendance = [(person, summaries[person.pk]) for person in shown]
    return render(
        request,
        "web/class_detail.html",
        {
            "klass": klass,
            "members": members,
            "staff_view": staff_view,
            "staff_links": links,
            "attendance": attendance,
        },
    )
