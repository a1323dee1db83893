from __future__ import annotations

import stripe
from celery import shared_task

from tutoring_core import http
from tutoring_core.payments import services


@shared_task(
    name="payments.booking_capture",
    ignore_result=True,
    autoretry_for=(stripe.APIConnectionError, http.OutboundHTTPError),
    retry_backoff=30,
    max_retries=8,
)
def booking_capture(charge_id: int) -> None:
    services.booking_capture(charge_id=charge_id)


@shared_task(
    name="payments.webhook_process",
    ignore_result=True,
    autoretry_for=(stripe.APIConnectionError, http.OutboundHTTPError),
    retry_backoff=10,
    max_retries=8,
)
def webhook_process(event_pk: int) -> None:
    services.webhook_process(event_pk=event_pk)


@shared_task(
    name="payments.reconcile",
    ignore_result=True,
    autoretry_for=(stripe.APIConnectionError, http.OutboundHTTPError),
    retry_backoff=60,
    max_retries=5,
)
def reconcile() -> None:
    """Nightly: compare every Stripe tenant's ledger with Stripe and store each difference."""
    from tutoring_core.payments.reconciliation import reconcile_all

    reconcile_all()
