"""Periodic SSO upkeep: IdP metadata refresh, certificate expiry warnings, and
purging the replay cache."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.utils import timezone

from sso import services
from sso.models import IdentityProvider, ServiceProviderKey
from tutoring_core.http import OutboundHTTPError

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="sso.saml_metadata_refresh", max_retries=4, ignore_result=True)
def saml_metadata_refresh(self: Any, provider_id: str) -> str:
    idp = IdentityProvider.objects.filter(pk=provider_id, protocol=IdentityProvider.Protocol.SAML).first()
    if idp is None or not idp.metadata_url:
        return "skipped"
    try:
        changed = services.saml_metadata_refresh(idp=idp)
    except OutboundHTTPError as exc:
        if exc.transient and self.request.retries < self.max_retries:
            raise self.retry(exc=exc, countdown=exc.retry_after or 60 * 2**self.request.retries) from None
        # Terminal: the last good copy stays in use; the error is on the row for the admin.
        logger.warning("metadata refresh for %s gave up: %s", provider_id, exc)
        return "failed"
    services.certificate_expiry_warn(idp=idp)
    return "refreshed" if changed else "kept-last-good"


@shared_task(name="sso.saml_metadata_refresh_all", ignore_result=True)
def saml_metadata_refresh_all() -> int:
    ids = list(
        IdentityProvider.objects.enabled()
        .filter(protocol=IdentityProvider.Protocol.SAML)
        .exclude(metadata_url="")
        .values_list("pk", flat=True)
    )
    for pk in ids:
        saml_metadata_refresh.delay(str(pk))
    return len(ids)


@shared_task(name="sso.certificate_expiry_check", ignore_result=True)
def certificate_expiry_check() -> int:
    warned = 0
    for idp in (
        IdentityProvider.objects.enabled()
        .filter(protocol=IdentityProvider.Protocol.SAML)
        .select_related("tenant")
    ):
        warned += int(services.certificate_expiry_warn(idp=idp))
    for key in ServiceProviderKey.objects.select_related("tenant"):
        warned += int(services.sp_certificate_expiry_warn(key=key))
    return warned


@shared_task(name="sso.purge_expired", ignore_result=True)
def purge_expired() -> dict[str, int]:
    counts = services.purge_expired()
    logger.info("sso purge at %s: %s", timezone.now().isoformat(), counts)
    return counts
