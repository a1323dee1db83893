"""Payments pages (issue 16) and Stripe's webhook endpoint.

A payer (a family's guardian, or a district admin for a school's or program's account)
buys packages after reading the price and the cancellation policy, pays by card through
Stripe Elements (the card goes from the browser to Stripe; the hub sees ids only), saves a
card through a SetupIntent, orders on invoice or purchase order, and reads a statement.
Views authorise through selectors.payer_for_user / purchase_for_user (404 outside the
viewer's tenant or accounts), call one service and show its refusal beside its field.
"""

from __future__ import annotations

from typing import Any

import stripe
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from tutoring_core.accounts.api import is_district_admin
from tutoring_core.accounts.models import User
from tutoring_core.payments import selectors, services
from tutoring_core.payments.errors import NotFound, PaymentError
from tutoring_core.payments.models import Package, PaymentSettings, Purchase
from tutoring_core.payments.protocol.ledger import format_amount, policy_text
from tutoring_core.scheduling.errors import SchedulingError


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def get_payer_for_user(request: HttpRequest, payer_id: Any) -> Any:
    try:
        return selectors.payer_for_user(user=_user(request), payer_id=payer_id)
    except NotFound:
        raise Http404("No such payer account.") from None


def get_purchase_for_user(request: HttpRequest, purchase_id: Any) -> Purchase:
    try:
        return selectors.purchase_for_user(user=_user(request), purchase_id=purchase_id)
    except NotFound:
        raise Http404("No such purchase.") from None


def _notice_hours(tenant_id: Any) -> int:
    from tutoring_core.scheduling.models import SchedulingPolicy

    policy = SchedulingPolicy.objects.filter(tenant_id=tenant_id).first()
    return int(getattr(policy, "cancel_notice_hours", 24) if policy else 24)


@login_required
def payer_list(request: HttpRequest) -> HttpResponse:
    payers = selectors.payers_for_user(_user(request))
    if len(payers) == 1 and not is_district_admin(_user(request)):
        return redirect("payments:statement", payer_id=payers[0].pk)
    return render(request, "payments/payers.html", {"payers": payers})


@login_required
@require_http_methods(["GET", "POST"])
def buy(request: HttpRequest, payer_id: Any) -> HttpResponse:
    payer = get_payer_for_user(request, payer_id)
    policy = services.settings_for(payer.tenant_id)
    packages = list(Package.objects.filter(tenant_id=payer.tenant_id, is_active=True))
    context: dict[str, Any] = {
        "payer": payer,
        "packages": [(p, format_amount(p.amount_minor, p.currency)) for p in packages],
        "provider": policy.provider,
        "policy_text": policy_text(
            requires=policy.booking_requires if policy.booking_requires != "none" else "credit",
            late_cancel_percent=policy.late_cancel_forfeit_percent,
            no_show_percent=policy.no_show_forfeit_percent,
            notice_hours=_notice_hours(payer.tenant_id),
        ),
        "error": "",
        "field": "",
        "chosen": request.POST.get("package_id", ""),
        "purchase_order": request.POST.get("purchase_order", ""),
    }
    if request.method == "POST":
        if request.POST.get("policy_read") != "yes":
            context.update(error="Confirm that you have read the cancellation policy.", field="policy_read")
            return render(request, "payments/buy.html", context, status=400)
        try:
            purchase = services.purchase_start(
                actor=_user(request),
                payer_id=payer.pk,
                package_id=request.POST.get("package_id", ""),
                purchase_order=request.POST.get("purchase_order", "").strip(),
            )
        except SchedulingError as exc:
            context.update(error=exc.reason, field=exc.field)
            return render(request, "payments/buy.html", context, status=exc.http_status)
        if (
            purchase.provider == PaymentSettings.Provider.STRIPE
            and purchase.status == Purchase.Status.PENDING
        ):
            return redirect("payments:pay", purchase_id=purchase.pk)
        if purchase.status == Purchase.Status.INVOICED:
            messages.success(request, f"Ordered on invoice {purchase.provider_ref}; the credit is yours now.")
        else:
            messages.success(request, f"{purchase.package.name}: the credit is yours now.")
        return redirect("payments:statement", payer_id=payer.pk)
    return render(request, "payments/buy.html", context)


def _stripe_context(payer: Any) -> dict[str, Any]:
    return {"publishable_key": settings.STRIPE_PUBLISHABLE_KEY, "stripe_js": settings.STRIPE_JS_URL}


@login_required
def pay(request: HttpRequest, purchase_id: Any) -> HttpResponse:
    purchase = get_purchase_for_user(request, purchase_id)
    if purchase.status != Purchase.Status.PENDING or purchase.provider != "stripe":
        return redirect("payments:statement", payer_id=purchase.payer_id)
    try:
        setup = services.card_setup_start(
            actor=_user(request), payer_id=purchase.payer_id, purchase_id=purchase.pk
        )
    except PaymentError as exc:
        return render(
            request,
            "payments/refused.html",
            {"error": exc.reason, "payer": purchase.payer},
            status=exc.http_status,
        )
    return render(
        request,
        "payments/pay.html",
        {
            "purchase": purchase,
            "payer": purchase.payer,
            "amount": format_amount(purchase.amount_minor, purchase.currency),
            "setup": setup,
            "saved": bool(purchase.payer.stripe_payment_method_id),
            **_stripe_context(purchase.payer),
        },
    )


def _post_only(request: HttpRequest) -> HttpResponse | None:
    # Checked after the tenant-scoped lookup, so another tenant's id is a 404 whatever the method.
    return None if request.method == "POST" else HttpResponseNotAllowed(["POST"])


@login_required
def pay_confirm(request: HttpRequest, purchase_id: Any) -> HttpResponse:
    """Called by the page's script after Stripe.js confirmed the card setup: pays with it.
    Answers JSON: the status, and the client secret when 3-D Secure is needed."""
    purchase = get_purchase_for_user(request, purchase_id)
    if refused := _post_only(request):
        return refused
    try:
        step = services.purchase_pay_card(
            actor=_user(request),
            purchase_id=purchase.pk,
            setup_intent_id=request.POST.get("setup_intent", ""),
            use_saved=request.POST.get("use_saved") == "1",
            save_card=request.POST.get("save_card") == "1",
        )
    except SchedulingError as exc:
        return JsonResponse({"error": exc.reason, "field": exc.field}, status=exc.http_status)
    return JsonResponse(
        {"status": step.status, "client_secret": step.client_secret, "purchase_status": step.purchase_status}
    )


@login_required
def pay_done(request: HttpRequest, purchase_id: Any) -> HttpResponse:
    """After the browser's last Stripe.js step: re-read the payment from Stripe and show the result."""
    purchase = get_purchase_for_user(request, purchase_id)
    if refused := _post_only(request):
        return refused
    if purchase.provider == "stripe" and purchase.status == Purchase.Status.PENDING:
        try:
            purchase = services.purchase_sync(purchase_id=purchase.pk)
        except PaymentError as exc:
            messages.error(request, exc.reason)
    if purchase.status == Purchase.Status.PAID:
        messages.success(
            request,
            f"Paid {format_amount(purchase.amount_minor, purchase.currency)}: the credit is yours now.",
        )
        return redirect("payments:statement", payer_id=purchase.payer_id)
    messages.error(
        request, "The payment has not gone through; nothing was charged. Try again or use another card."
    )
    return redirect("payments:pay", purchase_id=purchase.pk)


@login_required
@require_http_methods(["GET", "POST"])
def card(request: HttpRequest, payer_id: Any) -> HttpResponse:
    """Save a card for bookings that authorise a card (SetupIntent, confirmed by Stripe.js)."""
    payer = get_payer_for_user(request, payer_id)
    if request.method == "POST":
        try:
            services.card_setup_finish(
                actor=_user(request),
                payer_id=payer.pk,
                setup_intent_id=request.POST.get("setup_intent", ""),
                save=True,
            )
        except SchedulingError as exc:
            return JsonResponse({"error": exc.reason, "field": exc.field}, status=exc.http_status)
        messages.success(request, "Your card is saved for booking.")
        return JsonResponse({"next": reverse("payments:statement", kwargs={"payer_id": payer.pk})})
    if services.settings_for(payer.tenant_id).provider != PaymentSettings.Provider.STRIPE:
        raise Http404("Cards are not used here.")
    try:
        setup = services.card_setup_start(actor=_user(request), payer_id=payer.pk)
    except PaymentError as exc:
        return render(
            request, "payments/refused.html", {"error": exc.reason, "payer": payer}, status=exc.http_status
        )
    return render(request, "payments/card.html", {"payer": payer, "setup": setup, **_stripe_context(payer)})


def _page_window(page: int, pages: int) -> list[int | None]:
    """The first and last page and two either side of this one; None where pages are left out."""
    wanted = sorted({1, pages, *range(page - 2, page + 3)} & set(range(1, pages + 1)))
    shown: list[int | None] = []
    for number in wanted:
        if shown and number - (shown[-1] or 0) > 1:
            shown.append(None)
        shown.append(number)
    return shown


@login_required
def statement(request: HttpRequest, payer_id: Any) -> HttpResponse:
    payer = get_payer_for_user(request, payer_id)
    page = request.GET.get("page", "1")
    # A page that is not a number, or past the last, shows the nearest page (the selector clamps).
    found = selectors.statement(payer=payer, page=int(page) if page.isdigit() and len(page) < 8 else 1)
    policy = services.settings_for(payer.tenant_id)
    return render(
        request,
        "payments/statement.html",
        {
            "payer": payer,
            "statement": found,
            "purchases": [
                (p, format_amount(p.amount_minor, p.currency), format_amount(p.refunded_minor, p.currency))
                for p in found.purchases
            ],
            "charges": [
                (c, format_amount(c.amount, c.unit), format_amount(c.consumed, c.unit)) for c in found.charges
            ],
            "page_numbers": _page_window(found.page, found.pages),
            "card_payments": policy.provider == PaymentSettings.Provider.STRIPE,
            "saved_card": bool(payer.stripe_payment_method_id),
        },
    )


@login_required
def document(request: HttpRequest, purchase_id: Any) -> HttpResponse:
    """The purchase's invoice (owed, or ordered on invoice) or receipt, as PDF."""
    from tutoring_core.payments.documents import purchase_document

    purchase = get_purchase_for_user(request, purchase_id)
    if purchase.status not in (Purchase.Status.INVOICED, Purchase.Status.PAID):
        raise Http404("This purchase has no invoice or receipt yet.")
    name, body = purchase_document(
        purchase=purchase,
        policy=services.settings_for(purchase.tenant_id),
        tenant_name=_user(request).tenant.name,  # type: ignore[union-attr]
    )
    response = HttpResponse(body, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- Stripe's webhook --------------------------------------------------------------------------


@csrf_exempt  # machine-to-machine: authenticated by Stripe's signature, not a session
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    if not settings.STRIPE_WEBHOOK_SECRET:
        return JsonResponse({"error": "Stripe webhooks are not set up here."}, status=404)
    try:
        event = stripe.Webhook.construct_event(
            request.body, request.headers.get("Stripe-Signature", ""), settings.STRIPE_WEBHOOK_SECRET
        )
    except ValueError:
        return JsonResponse({"error": "The body is not a JSON event."}, status=400)
    except stripe.SignatureVerificationError:
        return JsonResponse({"error": "The Stripe-Signature does not match this body."}, status=400)
    payload = event.to_dict()
    obj = (payload.get("data") or {}).get("object") or {}
    if not payload.get("id") or not payload.get("type") or not isinstance(obj, dict):
        return JsonResponse({"error": "The event has no id, type or object."}, status=400)
    row = services.webhook_record(
        provider="stripe",
        event_id=str(payload["id"]),
        type=str(payload["type"]),
        object_id=str(obj.get("id", "")),
    )
    if row is None:
        return JsonResponse({"status": "duplicate"})
    from tutoring_core.payments.tasks import webhook_process

    # The handler re-reads the object from Stripe, so events may be processed late or out of order.
    event_pk = row.pk
    transaction.on_commit(lambda: webhook_process.delay(event_pk))
    return JsonResponse({"status": "accepted"})


# --- tutor pay ---------------------------------------------------------------------------------


def get_run_for_user(request: HttpRequest, run_id: Any) -> Any:
    """The pay run of the viewer's tenant, for a district admin or a tutor paid in it; 404 otherwise."""
    from tutoring_core.payments.models import PayLine, PayRun

    user = _user(request)
    run = PayRun.objects.filter(tenant_id=user.tenant_id, pk=run_id).first() if user.tenant_id else None
    if run is None:
        raise Http404("No such pay run.")
    if is_district_admin(user) or PayLine.objects.filter(run=run, tutor=user).exists():
        return run
    raise Http404("No such pay run.")


def _pay_rows(lines: list[Any]) -> list[tuple[Any, str]]:
    return [(line, format_amount(line.amount_minor, line.currency)) for line in lines]


@login_required
@require_http_methods(["GET", "POST"])
def payruns(request: HttpRequest) -> HttpResponse:
    """A district admin's pay runs: run a period (again: nothing is paid twice)."""
    import datetime as dt

    from tutoring_core.payments import payroll
    from tutoring_core.payments.models import PayRun

    user = _user(request)
    if not is_district_admin(user) or user.tenant_id is None:
        raise Http404("Not found.")
    context: dict[str, Any] = {
        "runs": PayRun.objects.filter(tenant_id=user.tenant_id).order_by("-period_start")[:50],
        "error": "",
        "field": "",
        "values": request.POST,
    }
    if request.method == "POST":
        try:
            start = dt.date.fromisoformat(request.POST.get("period_start", ""))
            end = dt.date.fromisoformat(request.POST.get("period_end", ""))
        except ValueError:
            context.update(error="Give both days as dates (YYYY-MM-DD).", field="period_start")
            return render(request, "payments/payruns.html", context, status=400)
        try:
            result = payroll.payrun_execute(actor=user, period_start=start, period_end=end)
        except SchedulingError as exc:
            context.update(error=exc.reason, field=exc.field)
            return render(request, "payments/payruns.html", context, status=exc.http_status)
        messages.success(
            request,
            f"{result.paid_sessions} session(s) paid; {result.awaiting_outcome} await an outcome; "
            f"{result.unpriced_sessions} have no rate or price.",
        )
        return redirect("payments:payrun", payrun_id=result.run.pk)
    return render(request, "payments/payruns.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def payrun(request: HttpRequest, payrun_id: Any) -> HttpResponse:
    from tutoring_core.payments import payroll

    run = get_run_for_user(request, payrun_id)
    user = _user(request)
    admin = is_district_admin(user)
    if request.method == "POST":
        if not admin:
            raise Http404("No such pay run.")
        try:
            done = payroll.payrun_payout(actor=user, run_id=run.pk)
        except SchedulingError as exc:
            messages.error(request, exc.reason)
        else:
            messages.success(request, f"{len(done)} transfer(s) sent.")
        return redirect("payments:payrun", payrun_id=run.pk)
    lines = list(run.lines.select_related("tutor").order_by("tutor__last_name", "tutor_id", "session_start"))
    if not admin:
        lines = [line for line in lines if line.tutor_id == user.pk]
    tutors: dict[Any, dict[str, Any]] = {}
    for line in lines:
        entry = tutors.setdefault(line.tutor_id, {"tutor": line.tutor, "lines": [], "total": {}})
        entry["lines"].append((line, format_amount(line.amount_minor, line.currency)))
        entry["total"][line.currency] = entry["total"].get(line.currency, 0) + line.amount_minor
    for entry in tutors.values():
        entry["total_shown"] = (
            ", ".join(format_amount(v, k) for k, v in sorted(entry["total"].items())) or "—"
        )
    return render(
        request,
        "payments/payrun.html",
        {
            "run": run,
            "tutors": list(tutors.values()),
            "admin": admin,
            "transfers": run.transfers.all(),
            "reversals": run.reversals.select_related("transfer", "tutor"),
        },
    )


@login_required
def payrun_statement(request: HttpRequest, payrun_id: Any, tutor_id: Any) -> HttpResponse:
    """A tutor's pay statement of one run, as PDF (the tutor, or a district admin)."""
    from tutoring_core.payments import payroll
    from tutoring_core.payments.documents import pay_statement

    run = get_run_for_user(request, payrun_id)
    user = _user(request)
    if tutor_id != user.pk and not is_district_admin(user):
        raise Http404("No such statement.")
    lines = payroll.tutor_lines(tenant_id=run.tenant_id, tutor_id=tutor_id, run=run)
    if not lines:
        raise Http404("No such statement.")
    tutor = lines[0].tutor
    body = pay_statement(
        run=run,
        tutor_name=tutor.full_name or tutor.username,
        lines=lines,
        policy=services.settings_for(run.tenant_id),
        tenant_name=user.tenant.name,  # type: ignore[union-attr]
    )
    response = HttpResponse(body, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="pay-{run.period_start}-{run.period_end}.pdf"'
    return response


@login_required
def my_pay(request: HttpRequest) -> HttpResponse:
    """A tutor's own pay: each run's sessions and totals, what is owed, the statements."""
    from tutoring_core.payments import payroll
    from tutoring_core.payments.models import LedgerAccount

    user = _user(request)
    if user.tenant_id is None:
        raise Http404("Not found.")
    lines = payroll.tutor_lines(tenant_id=user.tenant_id, tutor_id=user.pk)
    runs: dict[Any, dict[str, Any]] = {}
    for line in lines:
        entry = runs.setdefault(
            line.run_id, {"run": line.run, "lines": [], "total": 0, "currency": line.currency}
        )
        entry["lines"].append((line, format_amount(line.amount_minor, line.currency)))
        entry["total"] += line.amount_minor
    for entry in runs.values():
        entry["total_shown"] = format_amount(entry["total"], entry["currency"])
    owed = [
        format_amount(row.balance, row.unit)
        for row in LedgerAccount.objects.filter(
            tenant_id=user.tenant_id, owner=f"tutor:{user.pk}", purpose=LedgerAccount.Purpose.TUTOR_PAYABLE
        )
        if row.balance
    ]
    return render(request, "payments/my_pay.html", {"runs": list(runs.values()), "owed": owed})
