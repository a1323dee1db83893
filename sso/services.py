"""Writes for SSO: SP keys, IdP metadata, SAML request/ticket bookkeeping,
replay cache, and linking or provisioning a person at sign-in."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from sso import saml, selectors
from sso.models import AssertionUse, IdentityProvider, SamlRequest, ServiceProviderKey, SignInTicket
from sso.protocol.errors import SignInRejected
from sso.protocol.mapping import IDP_GRANTABLE_ROLES, MappedPerson
from sso.saml import ValidatedAssertion
from tutoring_core import http
from tutoring_core.accounts import api as accounts

logger = logging.getLogger(__name__)

TICKET_LIFETIME = dt.timedelta(minutes=2)
REQUEST_LIFETIME = dt.timedelta(minutes=15)


# --- SP key -----------------------------------------------------------------------


def _new_key_pair(common_name: str) -> tuple[str, str, dt.datetime]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = dt.datetime.now(dt.UTC)
    not_after = now + dt.timedelta(days=settings.SSO_SP_CERT_DAYS)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), not_after


def sp_key_get_or_create(*, tenant: accounts.Tenant) -> ServiceProviderKey:
    """The tenant's SP signing key, made on first use. Race-safe (one per tenant)."""
    existing = ServiceProviderKey.objects.filter(tenant=tenant).first()
    if existing is not None:
        return existing
    key_pem, cert_pem, not_after = _new_key_pair(f"{tenant.slug} SAML SP")
    try:
        with transaction.atomic():
            return ServiceProviderKey.objects.create(
                tenant=tenant, certificate=cert_pem, private_key=key_pem, not_after=not_after
            )
    except IntegrityError:
        return ServiceProviderKey.objects.get(tenant=tenant)


# --- IdP metadata -------------------------------------------------------------------


def saml_metadata_apply(*, idp: IdentityProvider, xml: str) -> None:
    """Parse IdP metadata and take entity id, endpoints and every signing cert.

    Raises ``ValueError`` with a reason and changes nothing when the document is
    unusable, so a bad refresh never replaces the last good copy.
    """
    try:
        parsed = OneLogin_Saml2_IdPMetadataParser.parse(xml, entity_id=idp.entity_id or None)
    except Exception as exc:
        raise ValueError(f"The IdP metadata is not valid SAML metadata XML: {exc}") from None
    block = parsed.get("idp") or {}
    if not block.get("entityId"):
        wanted = f" for entity id {idp.entity_id!r}" if idp.entity_id else ""
        raise ValueError(f"The metadata has no IdP descriptor{wanted}.")
    sso = (block.get("singleSignOnService") or {}).get("url", "")
    if not sso:
        raise ValueError("The metadata offers no SingleSignOnService with the HTTP-Redirect binding.")
    certs = list((block.get("x509certMulti") or {}).get("signing") or [])
    if not certs and block.get("x509cert"):
        certs = [block["x509cert"]]
    if not certs:
        raise ValueError("The metadata contains no signing certificate.")
    pems = []
    for body in certs:
        pem = "-----BEGIN CERTIFICATE-----\n" + body.strip() + "\n-----END CERTIFICATE-----\n"
        try:
            x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            raise ValueError("A signing certificate in the metadata cannot be read.") from None
        if pem not in pems:
            pems.append(pem)
    idp.entity_id = block["entityId"]
    idp.sso_url = sso
    idp.slo_url = (block.get("singleLogoutService") or {}).get("url", "")
    idp.signing_certificates = pems
    idp.metadata_xml = xml
    idp.metadata_error = ""
    idp.metadata_fetched_at = timezone.now()


def saml_metadata_refresh(*, idp: IdentityProvider) -> bool:
    """Fetch ``idp.metadata_url``; keep the last good copy if the new one is bad.

    Returns True when the stored metadata was replaced. Raises OutboundHTTPError
    on a transient fetch failure so the task can retry.
    """
    try:
        xml = http.get(idp.metadata_url).text
    except http.OutboundHTTPError as exc:
        idp.metadata_error = f"{timezone.now():%Y-%m-%d %H:%M} UTC: fetch failed: {exc}"[:2000]
        idp.save(update_fields=["metadata_error", "updated_at"])
        raise
    try:
        saml_metadata_apply(idp=idp, xml=xml)
    except ValueError as exc:
        IdentityProvider.objects.filter(pk=idp.pk).update(
            metadata_error=f"{timezone.now():%Y-%m-%d %H:%M} UTC: {exc} (kept the last good copy)"[:2000],
            updated_at=timezone.now(),
        )
        logger.warning("metadata refresh for %s kept the last good copy: %s", idp.pk, exc)
        return False
    idp.save()
    return True


def certificates_expiring(*, idp: IdentityProvider, within: dt.timedelta) -> list[tuple[str, dt.datetime]]:
    """(subject, not-after) of each signing certificate expiring within ``within``."""
    found = []
    limit = timezone.now() + within
    for pem in idp.signing_certificates:
        cert = x509.load_pem_x509_certificate(pem.encode())
        if cert.not_valid_after_utc <= limit:
            found.append((cert.subject.rfc4514_string(), cert.not_valid_after_utc))
    return found


def certificate_expiry_warn(*, idp: IdentityProvider) -> bool:
    """Audit (once a day at most) that a signing certificate is about to expire."""
    expiring = certificates_expiring(idp=idp, within=dt.timedelta(days=settings.SSO_CERT_WARNING_DAYS))
    if not expiring:
        return False
    now = timezone.now()
    if idp.certificate_warning_sent_at and now - idp.certificate_warning_sent_at < dt.timedelta(hours=23):
        return False
    accounts.audit_record(
        tenant=idp.tenant,
        actor=None,
        action="sso.certificate_expiring",
        target=idp,
        details={"certificates": [[s, d.isoformat()] for s, d in expiring]},
    )
    logger.warning("IdP %s (%s) signing certificate expires soon: %s", idp.name, idp.tenant.slug, expiring)
    idp.certificate_warning_sent_at = now
    idp.save(update_fields=["certificate_warning_sent_at", "updated_at"])
    return True


@transaction.atomic
def sp_key_stage_next(*, tenant: accounts.Tenant) -> ServiceProviderKey:
    """Make the next SP key pair and publish it in metadata beside the current one.
    Idempotent: a staged key is kept."""
    key = ServiceProviderKey.objects.select_for_update().get(pk=sp_key_get_or_create(tenant=tenant).pk)
    if key.next_certificate:
        return key
    key_pem, cert_pem, not_after = _new_key_pair(f"{tenant.slug} SAML SP")
    key.next_certificate, key.next_private_key, key.next_not_after = cert_pem, key_pem, not_after
    key.save(update_fields=["next_certificate", "next_private_key", "next_not_after", "updated_at"])
    accounts.audit_record(
        tenant=tenant,
        actor=None,
        action="sso.sp_key_staged",
        target=key,
        details={"not_after": not_after.isoformat()},
    )
    return key


@transaction.atomic
def sp_key_activate_next(*, tenant: accounts.Tenant) -> ServiceProviderKey:
    """Sign with the staged key from now on; the old one leaves the metadata."""
    key = ServiceProviderKey.objects.select_for_update().filter(tenant=tenant).first()
    if key is None or not key.next_certificate or key.next_not_after is None:
        raise ValueError(f"{tenant.name} has no staged SP key; stage one first.")
    key.certificate, key.private_key, key.not_after = (
        key.next_certificate,
        key.next_private_key,
        key.next_not_after,
    )
    key.next_certificate, key.next_private_key, key.next_not_after = "", "", None
    key.warning_sent_at = None
    key.save()
    accounts.audit_record(
        tenant=tenant,
        actor=None,
        action="sso.sp_key_activated",
        target=key,
        details={"not_after": key.not_after.isoformat()},
    )
    return key


def sp_certificate_expiry_warn(*, key: ServiceProviderKey) -> bool:
    """Audit (once a day at most) that our own SP certificate is about to expire:
    stage the next key (``manage.py sso_sp_key stage <tenant>``), let the IdPs
    pick up the metadata, then activate it."""
    now = timezone.now()
    if key.not_after > now + dt.timedelta(days=settings.SSO_CERT_WARNING_DAYS):
        return False
    if key.warning_sent_at and now - key.warning_sent_at < dt.timedelta(hours=23):
        return False
    accounts.audit_record(
        tenant=key.tenant,
        actor=None,
        action="sso.sp_certificate_expiring",
        target=key,
        details={"not_after": key.not_after.isoformat()},
    )
    logger.warning("SAML SP certificate of %s expires %s", key.tenant.slug, key.not_after.isoformat())
    key.warning_sent_at = now
    key.save(update_fields=["warning_sent_at", "updated_at"])
    return True


# --- SAML bookkeeping -----------------------------------------------------------------


def saml_request_record(
    *, idp: IdentityProvider, request_id: str, purpose: str, next_url: str
) -> SamlRequest:
    return SamlRequest.objects.create(
        request_id=request_id, tenant=idp.tenant, provider=idp, purpose=purpose, next_url=next_url
    )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def saml_acs_accept(
    *, idp: IdentityProvider, assertion: ValidatedAssertion, pending: SamlRequest | None, relay_state: str
) -> str:
    """Consume the outstanding request and the assertion id, and store the
    outcome under a one-time token. Returns the token."""
    now = timezone.now()
    if pending is not None:
        claimed = SamlRequest.objects.filter(pk=pending.pk, consumed_at__isnull=True).update(consumed_at=now)
        if claimed != 1:
            raise SignInRejected("request-used", "This sign-in request was already answered; start again.")
    expires = dt.datetime.fromtimestamp(assertion.not_on_or_after, tz=dt.UTC) + dt.timedelta(
        seconds=idp.clock_skew_seconds
    )
    try:
        with transaction.atomic():
            AssertionUse.objects.create(provider=idp, assertion_id=assertion.assertion_id, expires_at=expires)
    except IntegrityError:
        raise SignInRejected(
            "replayed", "This SAML assertion was already used to sign in; it cannot be used twice."
        ) from None
    token = secrets.token_urlsafe(32)
    SignInTicket.objects.create(
        token_hash=_hash(token),
        tenant=idp.tenant,
        provider=idp,
        purpose=pending.purpose if pending else SamlRequest.Purpose.SIGN_IN,
        in_response_to=pending.request_id if pending else "",
        payload={**asdict(assertion), "next": pending.next_url if pending else relay_state},
        expires_at=now + TICKET_LIFETIME,
    )
    return token


def ticket_claim(*, tenant: accounts.Tenant, token: str) -> SignInTicket:
    now = timezone.now()
    ticket = (
        SignInTicket.objects.select_related("provider").filter(token_hash=_hash(token), tenant=tenant).first()
    )
    if ticket is None:
        raise SignInRejected("ticket-unknown", "This sign-in link is not valid; start the sign-in again.")
    # Claiming also drops the stored attributes: they were only needed for this
    # hop, and the row lingers until the purge.
    claimed = SignInTicket.objects.filter(pk=ticket.pk, consumed_at__isnull=True, expires_at__gt=now).update(
        consumed_at=now, payload={}
    )
    if claimed != 1:
        raise SignInRejected(
            "ticket-used", "This sign-in link was already used or has expired; sign in again."
        )
    return ticket


def purge_expired() -> dict[str, int]:
    now = timezone.now()
    return {
        "assertions": AssertionUse.objects.filter(expires_at__lt=now).delete()[0],
        "tickets": SignInTicket.objects.filter(expires_at__lt=now - dt.timedelta(hours=1)).delete()[0],
        "requests": SamlRequest.objects.filter(created_at__lt=now - dt.timedelta(days=1)).delete()[0],
    }


# --- provisioning ---------------------------------------------------------------------


def identity_key_for(*, idp: IdentityProvider, subject: str, oidc_issuer: str = "") -> accounts.IdentityKey:
    if idp.protocol == IdentityProvider.Protocol.SAML:
        return accounts.IdentityKey(kind=accounts.IdentityKind.SAML, issuer=idp.entity_id, subject=subject)
    return accounts.IdentityKey(kind=accounts.IdentityKind.OIDC, issuer=oidc_issuer, subject=subject)


def person_for_sign_in(
    *, idp: IdentityProvider, key: accounts.IdentityKey, mapped: MappedPerson
) -> tuple[accounts.User, accounts.PersonResult]:
    """Link before create (ARCHITECTURE.md, Identity): the identity itself; then the
    mapped roster sourcedId; an email is only ever a candidate. Creates an account
    only where the IdP allows JIT, with the least role. Raises SignInRejected."""
    email_ok = mapped.email_verified and (
        mapped.email_domain_allowed or not idp.mapping_rules().allowed_email_domains
    )
    profile = accounts.PersonProfile(
        given_name=mapped.given_name,
        family_name=mapped.family_name,
        display_name=mapped.display_name,
        # An unverified or foreign-domain email is not recorded: it would become a
        # merge candidate against a real person's account.
        email=mapped.email if email_ok else "",
        email_verified=email_ok,
    )
    hints = (
        [accounts.LinkHint(kind=accounts.IdentityKind.ONEROSTER, subject=mapped.roster_id)]
        if mapped.roster_id
        else []
    )
    create = idp.allow_jit
    rules = idp.mapping_rules()
    if create and rules.allowed_email_domains and not (mapped.email_verified and mapped.email_domain_allowed):
        # New accounts only for people with a verified address in the district's domains.
        create = False
    try:
        result = accounts.person_resolve(
            tenant=idp.tenant, key=key, profile=profile, link_hints=hints, create=create
        )
    except accounts.ProvisioningRefused:
        if idp.allow_jit and not create:
            raise SignInRejected(
                "domain-not-allowed",
                f"No account matches, and new accounts need a verified email in "
                f"{', '.join(rules.allowed_email_domains)} (got {mapped.email or 'none'}).",
            ) from None
        raise SignInRejected(
            "no-account",
            f"No account in {idp.tenant.name} matches this sign-in (roster id "
            f"{mapped.roster_id or 'not sent'}), and {idp.name} does not create accounts. "
            "Ask your school to add you to the roster.",
        ) from None
    user = accounts.user_get(tenant=idp.tenant, user_id=result.user_id)
    _roles_apply(idp=idp, user=user, mapped=mapped, created=result.created)
    return user, result


def _roles_apply(*, idp: IdentityProvider, user: accounts.User, mapped: MappedPerson, created: bool) -> None:
    if idp.use_idp_roles and mapped.idp_roles:
        for role in mapped.idp_roles:
            if role in IDP_GRANTABLE_ROLES:
                accounts.role_assign(tenant=idp.tenant, user=user, role=role, source="sso")
    elif created:
        # Roles come from the roster; a person the roster does not know yet gets
        # the least role until it does.
        accounts.role_assign(tenant=idp.tenant, user=user, role=idp.jit_role, source="sso")


def sign_in_failed_record(
    *,
    tenant: accounts.Tenant,
    idp: IdentityProvider | None,
    reason: SignInRejected,
    ip: str | None,
    extra: dict[str, Any] | None = None,
) -> None:
    logger.info("SSO sign-in refused for %s: %s (%s)", tenant.slug, reason.code, reason.reason)
    accounts.audit_record(
        tenant=tenant,
        actor=None,
        action="auth.sign_in_refused",
        target=idp,
        ip_address=ip,
        details={"code": reason.code, "reason": reason.reason[:500], **(extra or {})},
    )


# --- SAML exchanges (the views hand over the request's data and render the outcome) ----


def saml_login_start(
    *, tenant: accounts.Tenant, idp: IdentityProvider, purpose: str, next_url: str, data: dict[str, Any]
) -> tuple[str, str]:
    """An AuthnRequest to ``idp``, remembered so its answer can be matched: the URL to
    send the browser to and the request's id (the view binds it to the browser)."""
    if not idp.sso_url or not idp.signing_certificates:
        raise SignInRejected("not-configured", f"{idp.name} has no metadata yet.")
    key = sp_key_get_or_create(tenant=tenant)
    auth = OneLogin_Saml2_Auth(data, saml.settings_dict(tenant, key, idp))
    url = auth.login(return_to="")
    request_id = auth.get_last_request_id()
    saml_request_record(idp=idp, request_id=request_id, purpose=purpose, next_url=next_url)
    return url, request_id


def saml_response_provider(
    *, tenant: accounts.Tenant, encoded: str
) -> tuple[saml.UnverifiedEnvelope, IdentityProvider]:
    """The (unverified) envelope of a posted SAMLResponse and the tenant's provider its
    Issuer names; the signature is checked by ``saml_response_accept``."""
    if not encoded:
        raise SignInRejected("malformed", "The request carries no SAMLResponse.")
    envelope = saml.read_envelope(encoded)
    idp = selectors.saml_provider_by_entity_id(tenant=tenant, entity_id=envelope.issuer)
    if idp is None:
        raise SignInRejected(
            "unknown-issuer", f"{envelope.issuer!r} is not an identity provider of {tenant.name}."
        )
    return envelope, idp


def saml_response_accept(
    *,
    tenant: accounts.Tenant,
    idp: IdentityProvider,
    envelope: saml.UnverifiedEnvelope,
    encoded: str,
    data: dict[str, Any],
    relay_state: str,
) -> str:
    """Check a SAMLResponse against the request it answers (or the provider's policy
    for IdP-initiated sign-ins) and its signature, then accept it
    (``saml_acs_accept``). Returns the one-time ticket. ``relay_state``: an already
    safe local URL, used only for IdP-initiated sign-ins."""
    pending = None
    if envelope.in_response_to:
        pending = (
            SamlRequest.objects.filter(request_id=envelope.in_response_to, tenant=tenant, provider=idp)
            .exclude(purpose=SamlRequest.Purpose.LOGOUT)
            .first()
        )
        if pending is None or pending.consumed_at is not None:
            raise SignInRejected(
                "unknown-request",
                "This response answers a sign-in request we did not send or that was already answered.",
            )
        if pending.created_at < timezone.now() - REQUEST_LIFETIME:
            raise SignInRejected("request-expired", "The sign-in took too long; start again.")
    elif not idp.allow_idp_initiated:
        raise SignInRejected(
            "idp-initiated-off",
            f"{tenant.name} does not accept sign-ins started at {idp.name}; start from the hub's sign-in page.",
        )
    key = sp_key_get_or_create(tenant=tenant)
    assertion = saml.validate_response(
        tenant=tenant,
        sp_key=key,
        idp=idp,
        saml_response_b64=encoded,
        data=data,
        request_id=pending.request_id if pending else None,
    )
    return saml_acs_accept(
        idp=idp, assertion=assertion, pending=pending, relay_state=relay_state if pending is None else ""
    )


def saml_logout_start(
    *, tenant: accounts.Tenant, session_info: dict[str, Any], data: dict[str, Any]
) -> str | None:
    """A LogoutRequest to the provider the ended session came from, remembered so its
    answer must name it (InResponseTo); the URL to send the browser to, or None when
    that provider offers no single logout."""
    idp = None
    if session_info:
        idp = IdentityProvider.objects.for_tenant(tenant).filter(pk=session_info["provider"]).first()
    if idp is None or not idp.slo_url:
        return None
    key = sp_key_get_or_create(tenant=tenant)
    auth = OneLogin_Saml2_Auth(data, saml.settings_dict(tenant, key, idp))
    url = auth.logout(
        return_to=str(idp.pk),
        name_id=session_info["name_id"],
        session_index=session_info["session_index"] or None,
        nq=session_info["nq"] or None,
        name_id_format=session_info["format"] or None,
        spnq=session_info["spnq"] or None,
    )
    saml_request_record(
        idp=idp, request_id=auth.get_last_request_id(), purpose=SamlRequest.Purpose.LOGOUT, next_url=""
    )
    return str(url)


def saml_logout_provider(
    *, tenant: accounts.Tenant, query: dict[str, str]
) -> tuple[bytes | str, IdentityProvider]:
    """The inflated logout message of a Redirect-binding query and the tenant's
    provider it comes from. Only signed messages are taken (Signature in the query),
    so a crafted link cannot sign a person out."""
    message = query.get("SAMLRequest") or query.get("SAMLResponse")
    if not message:
        raise SignInRejected("malformed", "The request carries no SAML logout message.")
    try:
        xml = OneLogin_Saml2_Utils.decode_base64_and_inflate(message)
    except Exception:
        raise SignInRejected("logout-invalid", "The logout message was refused: it cannot be read.") from None
    if query.get("SAMLRequest"):
        issuer = OneLogin_Saml2_Logout_Request.get_issuer(xml) or ""
    else:
        issuer = _logout_response_issuer(xml)
    idp = selectors.saml_provider_by_entity_id(tenant=tenant, entity_id=issuer)
    if idp is None:
        raise SignInRejected(
            "unknown-issuer", "This logout message is not from an identity provider of this district."
        )
    if not query.get("Signature") or not query.get("SigAlg"):
        raise SignInRejected("logout-unsigned", "The logout message was refused: it is not signed.")
    return xml, idp


def saml_logout_process(
    *,
    tenant: accounts.Tenant,
    idp: IdentityProvider,
    xml: bytes | str,
    query: dict[str, str],
    data: dict[str, Any],
    session_info: dict[str, Any],
    end_session: Callable[[], None],
) -> str | None:
    """The IdP's LogoutResponse (it must answer a request we sent, once) or its own
    LogoutRequest, which ends the local session (``end_session``) only if it names
    the person signed in here. Returns where to send the browser, if anywhere."""
    key = sp_key_get_or_create(tenant=tenant)
    auth = OneLogin_Saml2_Auth(data, saml.settings_dict(tenant, key, idp))
    request_id = None
    if query.get("SAMLResponse"):
        request_id = _logout_in_response_to(xml)
        claimed = SamlRequest.objects.filter(
            request_id=request_id,
            tenant=tenant,
            provider=idp,
            purpose=SamlRequest.Purpose.LOGOUT,
            consumed_at__isnull=True,
        ).update(consumed_at=timezone.now())
        if not request_id or claimed != 1:
            raise SignInRejected(
                "unknown-request", "This logout answer is for a request we did not send or already saw."
            )
    named = OneLogin_Saml2_Logout_Request.get_nameid(xml) if query.get("SAMLRequest") else None

    def end_local_session() -> None:
        if session_info.get("provider") == str(idp.pk) and session_info.get("name_id") == named:
            end_session()

    try:
        url = auth.process_slo(request_id=request_id, delete_session_cb=end_local_session)
    except Exception as exc:  # python3-saml lets lxml/zlib errors through on garbage
        raise SignInRejected(
            "logout-invalid", f"The logout message was refused: it cannot be read ({exc})."
        ) from None
    errors = auth.get_errors()
    if errors:
        raise SignInRejected(
            "logout-invalid", f"The logout message was refused: {auth.get_last_error_reason() or errors}"
        )
    return str(url) if url else None


def _logout_response_issuer(xml: str | bytes) -> str:
    document = etree.fromstring(xml.encode() if isinstance(xml, str) else xml, parser=saml.SAFE_PARSER)
    found = document.xpath("/samlp:LogoutResponse/saml:Issuer/text()", namespaces=saml.NSMAP)
    return str(found[0]).strip() if found else ""


def _logout_in_response_to(xml: str | bytes) -> str:
    document = etree.fromstring(xml.encode() if isinstance(xml, str) else xml, parser=saml.SAFE_PARSER)
    return str(document.get("InResponseTo") or "")
