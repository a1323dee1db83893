"""Stripe's webhook endpoint: verified on the raw body, recorded once per event id."""

from __future__ import annotations

import stripe
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from tutoring_core.payments import services


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
