"""JSON API: payer balances and statements, packages on sale, buying a package, and the
refund a cancellation would give now (issue 16).

Mounted by config/api.py. Each operation finds its ids in the caller's tenant through the
same selectors as the pages (another district's ids answer 404) and calls the services the
pages call; refusals are ``{"error", "field"}`` with the service's HTTP status.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Header, Query, Router, Schema
from ninja.responses import Status
from pydantic import Field

from tutoring_core.accounts.api import is_district_admin
from tutoring_core.apiauth.auth import request_person
from tutoring_core.apiauth.schemas import ErrorOut, errors, utc_text
from tutoring_core.apiauth.services import Answer
from tutoring_core.payments import selectors, services
from tutoring_core.payments.errors import NotFound
from tutoring_core.payments.models import BookingCharge, Package, PayerMember, Purchase
from tutoring_core.payments.protocol.ledger import policy_text
from tutoring_core.scheduling.endpoints import IDEMPOTENCY_DOC, IDEMPOTENCY_HEADER, _once, _respond

router = Router(tags=["payments"])
__all__ = ["ErrorOut", "router"]


class BalanceOut(Schema):
    purpose: str = Field(description="Spendable credit, Reserved for booked sessions, Owed on invoices.")
    unit: str = Field(description="A currency (minor units) or session / minute credits.")
    amount: int


class PayerOut(Schema):
    id: uuid.UUID
    name: str
    kind: str
    balances: list[BalanceOut]


class EntryOut(Schema):
    at: str = Field(description="UTC, ISO 8601 with Z.")
    kind: str
    memo: str
    account: str
    unit: str
    amount: int
    balance_after: int


class StatementOut(Schema):
    page: int
    pages: int
    total: int
    entries: list[EntryOut] = Field(description="Newest first.")


class StatementQuery(Schema):
    page: int = Field(1, ge=1, le=1_000_000, description="1 is the newest entries.")
    per_page: int = Field(selectors.STATEMENT_PAGE, ge=1, le=500)


class PackageOut(Schema):
    id: uuid.UUID
    name: str
    unit: str
    quantity: int
    amount_minor: int
    currency: str


class PackagesOut(Schema):
    packages: list[PackageOut]
    policy: str = Field(description="The cancellation and no-show policy, shown before paying.")


class PurchaseIn(Schema):
    package_id: uuid.UUID
    purchase_order: str = Field("", max_length=100)


class PurchaseOut(Schema):
    id: uuid.UUID
    status: str = Field(description="paid, invoiced, or pending (a card payment the payer completes).")
    provider: str
    amount_minor: int
    currency: str
    invoice: str = Field(description="The invoice number when ordered on invoice.")
    pay_url: str = Field(description="Where the payer pays a pending card purchase (Stripe Elements).")


class RefundQuoteQuery(Schema):
    student: uuid.UUID | None = Field(None, description="The student whose place; default: the caller.")


class RefundQuoteOut(Schema):
    unit: str
    held: int
    refund: int = Field(description="What cancelling now gives back.")
    late: bool
    notice_hours: int
    policy: str


def _tenant(actor: Any) -> uuid.UUID:
    if actor.tenant_id is None:  # API tokens belong to people of a district; defensive
        raise Http404("Not found.")
    return uuid.UUID(str(actor.tenant_id))


def _payer(request: HttpRequest, payer_id: uuid.UUID) -> Any:
    try:
        return selectors.payer_for_user(user=request_person(request), payer_id=payer_id)
    except NotFound:
        raise Http404("No such payer account.") from None


@router.get("/payers/{payer_id}", response={200: PayerOut, **errors(404)}, url_name="api_payer_get")
def payer_get(request: HttpRequest, payer_id: uuid.UUID) -> dict[str, Any]:
    """A payer account's balances (its members, or a district admin)."""
    payer = _payer(request, payer_id)
    found = selectors.statement(payer=payer, limit=1)
    return {
        "id": payer.pk,
        "name": payer.name,
        "kind": payer.kind,
        "balances": [
            {"purpose": label, "unit": unit, "amount": amount} for label, unit, amount, _ in found.balances
        ],
    }


@router.get(
    "/payers/{payer_id}/statement",
    response={200: StatementOut, **errors(404)},
    url_name="api_payer_statement",
)
def payer_statement(
    request: HttpRequest, payer_id: uuid.UUID, query: Query[StatementQuery]
) -> dict[str, Any]:
    """The payer's account activity, newest first, a page at a time."""
    payer = _payer(request, payer_id)
    found = selectors.statement(payer=payer, limit=query.per_page, page=query.page)
    return {
        "page": found.page,
        "pages": found.pages,
        "total": found.total_entries,
        "entries": [
            {
                "at": utc_text(entry.at),
                "kind": entry.kind,
                "memo": entry.memo,
                "account": entry.purpose,
                "unit": entry.unit,
                "amount": entry.amount,
                "balance_after": entry.balance_after,
            }
            for entry in found.entries
        ],
    }


@router.get("/packages", response={200: PackagesOut, **errors(404)}, url_name="api_packages_list")
def packages_list(request: HttpRequest) -> dict[str, Any]:
    """The packages on sale in the caller's district, with the policy a buyer agrees to."""
    actor = request_person(request)
    tenant_id = _tenant(actor)
    policy = services.settings_for(tenant_id)
    packages = Package.objects.filter(tenant_id=tenant_id, is_active=True).order_by("amount_minor", "name")
    return {
        "packages": [
            {
                "id": p.pk,
                "name": p.name,
                "unit": p.unit,
                "quantity": p.quantity,
                "amount_minor": p.amount_minor,
                "currency": p.currency,
            }
            for p in packages
        ],
        "policy": policy_text(
            requires=policy.booking_requires if policy.booking_requires != "none" else "credit",
            late_cancel_percent=policy.late_cancel_forfeit_percent,
            no_show_percent=policy.no_show_forfeit_percent,
            notice_hours=_notice_hours(tenant_id),
        ),
    }


def _notice_hours(tenant_id: Any) -> int:
    from tutoring_core.scheduling.models import SchedulingPolicy

    policy = SchedulingPolicy.objects.filter(tenant_id=tenant_id).first()
    return int(policy.cancel_notice_hours) if policy else 24


def _session_notice_hours(session: Any) -> int:
    """The notice a cancellation of this session needs, as scheduling decides lateness: the
    tutor's own notice when they set one, else the district's."""
    from tutoring_core.scheduling.models import TutorProfile

    own = (
        TutorProfile.objects.filter(user_id=session.tutor_id)
        .values_list("cancel_notice_hours", flat=True)
        .first()
    )
    return int(own) if own is not None else _notice_hours(session.tenant_id)


def purchase_body(purchase: Purchase) -> dict[str, Any]:
    from django.urls import reverse

    pending_card = purchase.status == Purchase.Status.PENDING and purchase.provider == "stripe"
    return {
        "id": str(purchase.pk),
        "status": purchase.status,
        "provider": purchase.provider,
        "amount_minor": purchase.amount_minor,
        "currency": purchase.currency,
        "invoice": purchase.provider_ref if purchase.status == Purchase.Status.INVOICED else "",
        "pay_url": reverse("payments:pay", kwargs={"purchase_id": purchase.pk}) if pending_card else "",
    }


@router.post(
    "/payers/{payer_id}/purchases",
    response={201: PurchaseOut, **errors(402, 403, 404, 422)},
    url_name="api_purchase_create",
)
def purchase_create(
    request: HttpRequest,
    payer_id: uuid.UUID,
    payload: PurchaseIn,
    response: HttpResponse,
    idempotency_key: str | None = Header(None, alias=IDEMPOTENCY_HEADER, description=IDEMPOTENCY_DOC),  # type: ignore[type-arg]
) -> Status:
    """Buy a package for the payer with the district's method: granted at once (grant-funded),
    on invoice, or a pending card payment the payer completes at ``pay_url``."""
    actor = request_person(request)
    payer = _payer(request, payer_id)

    def work() -> Answer:
        purchase = services.purchase_start(
            actor=actor,
            payer_id=payer.pk,
            package_id=payload.package_id,
            purchase_order=payload.purchase_order,
        )
        return Answer(201, purchase_body(purchase))

    return _respond(response, _once(request, actor, idempotency_key, payload.model_dump(mode="json"), work))


@router.get(
    "/bookings/{session_id}/refund-quote",
    response={200: RefundQuoteOut, **errors(404)},
    url_name="api_booking_refund_quote",
)
def booking_refund_quote(
    request: HttpRequest, session_id: uuid.UUID, query: Query[RefundQuoteQuery]
) -> dict[str, Any]:
    """What cancelling the student's place now would give back, by the district's policy
    (the student, a member of the paying account, or a district admin)."""
    from tutoring_core.scheduling.models import Session

    actor = request_person(request)
    session = Session.objects.filter(tenant_id=_tenant(actor), pk=session_id).first()
    if session is None:
        raise Http404("No such session.")
    student_id = query.student or actor.pk
    charge = BookingCharge.objects.filter(session=session, student_id=student_id).first()
    allowed = (
        is_district_admin(actor)
        or student_id == actor.pk
        or (charge is not None and PayerMember.objects.filter(payer_id=charge.payer_id, user=actor).exists())
    )
    if not allowed or not session.participants.filter(student_id=student_id).exists():
        raise Http404("No such booking.")
    policy = services.settings_for(session.tenant_id)
    hours = _session_notice_hours(session)
    quote = selectors.refund_quote(
        charge=charge,
        start=session.start,
        now=timezone.now(),
        notice_hours=hours,
        late_cancel_percent=policy.late_cancel_forfeit_percent,
    )
    return {
        "unit": quote.unit,
        "held": quote.held,
        "refund": quote.refund,
        "late": quote.late,
        "notice_hours": quote.notice_hours,
        "policy": policy_text(
            requires=policy.booking_requires,
            late_cancel_percent=policy.late_cancel_forfeit_percent,
            no_show_percent=policy.no_show_forfeit_percent,
            notice_hours=hours,
        ),
    }
