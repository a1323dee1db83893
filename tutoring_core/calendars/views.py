"""The secret iCal feed and the person's calendar settings page (issue 12)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from tutoring_core.accounts.api import audit_record
from tutoring_core.accounts.models import User
from tutoring_core.calendars import services
from tutoring_core.calendars.models import CalDAVAccount


def feed(request: HttpRequest, feed_token: str) -> HttpResponse:
    """GET /calendar/<token>.ics: no sign-in (calendar apps cannot); the token is the key.
    An unknown token is 404 whatever the method, so the URL space says nothing."""
    person = services.feed_person(feed_token)
    if person is None:
        raise Http404("No such calendar.")
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    response = HttpResponse(services.feed_text(person), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="tutoring.ics"'
    # The URL is a secret: no shared cache may keep it, and no page may leak it on.
    response["Cache-Control"] = "private, max-age=300"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request: HttpRequest) -> HttpResponse:
    """Show the feed URL (reset it), and connect or disconnect a CalDAV calendar."""
    user: User = request.user  # type: ignore[assignment]
    if user.tenant_id is None:
        raise Http404("Calendars belong to a district.")
    errors: dict[str, str] = {}
    form = {"collection_url": "", "username": ""}
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action == "reset":
            services.feed_token_reset(person=user)
            audit_record(tenant=user.tenant, actor=user, action="calendars.feed.reset", target=user)
            messages.success(request, "Your calendar address was changed; the old one no longer works.")
            return redirect("calendars:settings")
        if action == "disconnect":
            if services.caldav_account_disconnect(person=user):
                audit_record(
                    tenant=user.tenant, actor=user, action="calendars.caldav.disconnect", target=user
                )
            messages.success(request, "Your CalDAV calendar was disconnected.")
            return redirect("calendars:settings")
        if action == "connect":
            form = {
                "collection_url": request.POST.get("collection_url", ""),
                "username": request.POST.get("username", ""),
            }
            try:
                services.caldav_account_set(
                    person=user,
                    collection_url=form["collection_url"],
                    username=form["username"],
                    password=request.POST.get("password", ""),
                )
            except services.CalendarError as exc:
                errors[exc.field or "form"] = exc.reason
            else:
                audit_record(tenant=user.tenant, actor=user, action="calendars.caldav.connect", target=user)
                messages.success(request, "Your CalDAV calendar is connected; new changes will appear in it.")
                return redirect("calendars:settings")
        else:
            errors["form"] = "Choose what to do."
    account = CalDAVAccount.objects.filter(person=user).first()
    if account is not None and not form["collection_url"]:
        form = {"collection_url": account.collection_url, "username": account.username}
    token = services.feed_token_of(user)
    feed_url = request.build_absolute_uri(reverse("calendars:feed", kwargs={"feed_token": token}))
    response = render(
        request,
        "calendars/settings.html",
        {"feed_url": feed_url, "account": account, "form": form, "errors": errors},
        status=400 if errors else 200,
    )
    # The page shows the secret URL: no referrer to other sites. (Not "no-referrer":
    # the browser would then send "Origin: null" with the page's own forms, and CSRF
    # protection would refuse them.)
    response["Referrer-Policy"] = "same-origin"
    return response
