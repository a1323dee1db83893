"""SSO endpoints. Public by nature (a person is not signed in yet); every lookup
is scoped to the tenant named in the URL."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from sso import oidc, saml, selectors, services
from sso.models import IdentityProvider, SamlRequest
from sso.protocol.errors import SignInRejected
from sso.protocol.mapping import MappedPerson, map_person, normalize
from tutoring_core.accounts import api as accounts

SAML_PENDING = "sso_saml_pending"
OIDC_PENDING = "sso_oidc_pending"
SAML_SESSION = "sso_saml_session"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"


def _safe_next(request: HttpRequest, value: str) -> str:
    if value and url_has_allowed_host_and_scheme(value, allowed_hosts=None, require_https=False):
        return value if value.startswith("/") and not value.startswith("//") else ""
    return ""


def _refuse(
    request: HttpRequest,
    tenant: accounts.Tenant,
    idp: IdentityProvider | None,
    exc: SignInRejected,
    *,
    status: int = 400,
) -> HttpResponse:
    services.sign_in_failed_record(tenant=tenant, idp=idp, reason=exc, ip=accounts.client_ip(request))
    if exc.code == "idp-unreachable":
        status = 502
    return render(
        request,
        "sso/error.html",
        {"tenant": tenant, "reason": exc.reason, "code": exc.code, "provider": idp},
        status=status,
    )


def _may_test(request: HttpRequest, tenant: accounts.Tenant) -> bool:
    user = request.user
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return bool(user.tenant_id == tenant.pk and user.is_staff and accounts.is_district_admin(user))  # type: ignore[union-attr]


@require_GET
def sign_in_page(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    tenant = selectors.tenant_for_slug(tenant_slug)
    providers = selectors.providers_for_sign_in(tenant=tenant)
    return render(
        request,
        "sso/sign_in.html",
        {"tenant": tenant, "providers": providers, "next": _safe_next(request, request.GET.get("next", ""))},
    )


@require_GET
def saml_metadata(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    tenant = selectors.tenant_for_slug(tenant_slug)
    key = services.sp_key_get_or_create(tenant=tenant)
    return HttpResponse(saml.sp_metadata(tenant, key), content_type="application/samlmetadata+xml")


def _login_start(
    request: HttpRequest, tenant_slug: str, provider_id: uuid.UUID, protocol: str
) -> tuple[Any, Any, str, HttpResponse | None]:
    """The tenant, its provider and the purpose of a sign-in start; a refusal when a
    test sign-in is asked for by someone who may not run one."""
    tenant = selectors.tenant_for_slug(tenant_slug)
    idp = selectors.provider_get(tenant=tenant, provider_id=provider_id, protocol=protocol)
    purpose = (
        SamlRequest.Purpose.TEST if request.GET.get("purpose") == "test" else SamlRequest.Purpose.SIGN_IN
    )
    if purpose == SamlRequest.Purpose.TEST and not _may_test(request, tenant):
        rejection = SignInRejected("forbidden", "Only a district admin can run a test sign-in.")
        return tenant, idp, purpose, _refuse(request, tenant, idp, rejection, status=403)
    return tenant, idp, purpose, None


@never_cache
@require_GET
def saml_login(request: HttpRequest, tenant_slug: str, provider_id: uuid.UUID) -> HttpResponse:
    tenant, idp, purpose, refused = _login_start(
        request, tenant_slug, provider_id, IdentityProvider.Protocol.SAML
    )
    if refused is not None:
        return refused
    try:
        url, request_id = services.saml_login_start(
            tenant=tenant,
            idp=idp,
            purpose=purpose,
            next_url=_safe_next(request, request.GET.get("next", "")),
            data=saml.request_data(request),
        )
    except SignInRejected as exc:
        return _refuse(request, tenant, idp, exc)
    # Binds the eventual response to this browser (login CSRF): finish checks it.
    request.session[SAML_PENDING] = [*request.session.get(SAML_PENDING, [])[-4:], request_id]
    return HttpResponseRedirect(url)


@csrf_exempt  # the IdP posts cross-site; the signed response is the authentication
@require_POST
def saml_acs(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    tenant = selectors.tenant_for_slug(tenant_slug)
    idp: IdentityProvider | None = None
    try:
        encoded = request.POST.get("SAMLResponse", "")
        envelope, idp = services.saml_response_provider(tenant=tenant, encoded=encoded)
        token = services.saml_response_accept(
            tenant=tenant,
            idp=idp,
            envelope=envelope,
            encoded=encoded,
            data=saml.request_data(request),
            relay_state=_safe_next(request, request.POST.get("RelayState", "")),
        )
    except SignInRejected as exc:
        return _refuse(request, tenant, idp, exc)
    finish = reverse("sso:saml_finish", kwargs={"tenant_slug": tenant.slug})
    # 303: the browser follows with a top-level GET to our own origin, which
    # carries the SameSite=Lax session cookie the cross-site POST did not.
    response = HttpResponseRedirect(f"{finish}?ticket={token}")
    response.status_code = 303
    return response


def _mapped_or_trace(
    idp: IdentityProvider, subject: str, values: dict[str, list[str]], **kw: Any
) -> MappedPerson:
    return map_person(default_subject=subject, values=values, rules=idp.mapping_rules(), **kw)


def _complete(
    request: HttpRequest,
    tenant: accounts.Tenant,
    idp: IdentityProvider,
    *,
    purpose: str,
    key_issuer: str,
    subject: str,
    values: dict[str, list[str]],
    next_url: str,
    email_verified_claim: bool | None = None,
) -> HttpResponse:
    """Shared tail of SAML and OIDC: map, then test page or link/provision + session.

    One transaction: linking, roles, last-login and the sign-in audit commit
    together (and cost one commit, not five, on a busy morning)."""
    with transaction.atomic():
        return _complete_in_transaction(
            request,
            tenant,
            idp,
            purpose=purpose,
            key_issuer=key_issuer,
            subject=subject,
            values=values,
            next_url=next_url,
            email_verified_claim=email_verified_claim,
        )


def _complete_in_transaction(
    request: HttpRequest,
    tenant: accounts.Tenant,
    idp: IdentityProvider,
    *,
    purpose: str,
    key_issuer: str,
    subject: str,
    values: dict[str, list[str]],
    next_url: str,
    email_verified_claim: bool | None = None,
) -> HttpResponse:
    if purpose == SamlRequest.Purpose.TEST:
        if not _may_test(request, tenant):
            raise SignInRejected("forbidden", "Only a district admin can run a test sign-in.")
        mapped, problem = None, ""
        try:
            mapped = _mapped_or_trace(idp, subject, values, email_verified_claim=email_verified_claim)
        except SignInRejected as exc:
            problem = exc.reason
        accounts.audit_record(
            tenant=tenant,
            actor=request.user if isinstance(request.user, accounts.User) else None,
            action="sso.test_sign_in",
            target=idp,
            details={"subject": subject, "ok": not problem},
        )
        return render(
            request,
            "sso/test_result.html",
            {
                "tenant": tenant,
                "provider": idp,
                "subject": subject,
                "values": sorted(values.items()),
                "mapped": mapped,
                "problem": problem,
            },
        )
    mapped = _mapped_or_trace(idp, subject, values, email_verified_claim=email_verified_claim)
    key = services.identity_key_for(idp=idp, subject=mapped.subject, oidc_issuer=key_issuer)
    user, _result = services.person_for_sign_in(idp=idp, key=key, mapped=mapped)
    try:
        accounts.session_login(request, user, method=f"{idp.protocol}:{idp.name}"[:100])
    except accounts.ProvisioningRefused as exc:
        raise SignInRejected("deactivated", str(exc)) from None
    return redirect(next_url or settings.LOGIN_REDIRECT_URL)


@never_cache
@require_GET
def saml_finish(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    tenant = selectors.tenant_for_slug(tenant_slug)
    idp: IdentityProvider | None = None
    try:
        ticket = services.ticket_claim(tenant=tenant, token=request.GET.get("ticket", ""))
        idp = ticket.provider
        if ticket.in_response_to and ticket.in_response_to not in request.session.get(SAML_PENDING, []):
            raise SignInRejected(
                "other-browser",
                "This sign-in was started in another browser; start again from the sign-in page.",
            )
        if ticket.in_response_to:
            request.session[SAML_PENDING] = [
                r for r in request.session.get(SAML_PENDING, []) if r != ticket.in_response_to
            ]
        payload = ticket.payload
        if payload["name_id_format"] == TRANSIENT and not idp.subject_attribute:
            raise SignInRejected(
                "transient-nameid",
                f"{idp.name} sent a transient NameID, which changes every sign-in. Configure a persistent "
                "NameID at the IdP, or name a persistent attribute as the subject.",
            )
        response = _complete(
            request,
            tenant,
            idp,
            purpose=ticket.purpose,
            key_issuer=idp.entity_id,
            subject=payload["name_id"],
            values=payload["attributes"],
            next_url=payload.get("next", ""),
        )
    except SignInRejected as exc:
        return _refuse(request, tenant, idp, exc)
    if ticket.purpose == SamlRequest.Purpose.SIGN_IN:
        request.session[SAML_SESSION] = {
            "provider": str(idp.pk),
            "name_id": payload["name_id"],
            "format": payload["name_id_format"],
            "nq": payload["name_id_nq"],
            "spnq": payload["name_id_spnq"],
            "session_index": payload["session_index"],
        }
    return response


@require_POST
def saml_logout(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """Sign out here, and at the IdP too when it offers single logout."""
    tenant = selectors.tenant_for_slug(tenant_slug)
    info = request.session.get(SAML_SESSION) or {}
    logout(request)
    url = services.saml_logout_start(tenant=tenant, session_info=info, data=saml.request_data(request))
    if url is None:
        return redirect("sso:sign_in", tenant_slug=tenant.slug)
    return HttpResponseRedirect(url)


@never_cache
@require_GET
def saml_sls(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """Single logout service: the IdP's LogoutResponse, or its own LogoutRequest.

    Only signed messages are taken (Redirect binding: Signature in the query), so a
    crafted link cannot sign a person out; an IdP's LogoutRequest ends the local
    session only if it names the person signed in here."""
    tenant = selectors.tenant_for_slug(tenant_slug)
    idp: IdentityProvider | None = None
    query = request.GET.dict()
    try:
        xml, idp = services.saml_logout_provider(tenant=tenant, query=query)
        url = services.saml_logout_process(
            tenant=tenant,
            idp=idp,
            xml=xml,
            query=query,
            data=saml.request_data(request),
            session_info=request.session.get(SAML_SESSION) or {},
            end_session=lambda: logout(request),
        )
    except SignInRejected as exc:
        return _refuse(request, tenant, idp, exc)
    if url:
        return HttpResponseRedirect(url)
    return redirect("sso:sign_in", tenant_slug=tenant.slug)


def _oidc_redirect_uri(tenant: accounts.Tenant) -> str:
    return f"{settings.PUBLIC_BASE_URL}{reverse('sso:oidc_callback', kwargs={'tenant_slug': tenant.slug})}"


@never_cache
@require_GET
def oidc_login(request: HttpRequest, tenant_slug: str, provider_id: uuid.UUID) -> HttpResponse:
    tenant, idp, purpose, refused = _login_start(
        request, tenant_slug, provider_id, IdentityProvider.Protocol.OIDC
    )
    if refused is not None:
        return refused
    try:
        start = oidc.authorization_start(idp, redirect_uri=_oidc_redirect_uri(tenant))
    except SignInRejected as exc:
        return _refuse(request, tenant, idp, exc)
    pending = dict(request.session.get(OIDC_PENDING, {}))
    # Keep only the latest few flows: a person may have two tabs open.
    pending = dict(list(pending.items())[-4:])
    pending[start.state] = {
        "provider": str(idp.pk),
        "nonce": start.nonce,
        "verifier": start.code_verifier,
        "purpose": purpose,
        "next": _safe_next(request, request.GET.get("next", "")),
        "at": timezone.now().timestamp(),
    }
    request.session[OIDC_PENDING] = pending
    return HttpResponseRedirect(start.url)


@never_cache
@require_GET
def oidc_callback(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    tenant = selectors.tenant_for_slug(tenant_slug)
    idp: IdentityProvider | None = None
    try:
        pending = dict(request.session.get(OIDC_PENDING, {}))
        flow = pending.pop(request.GET.get("state", ""), None)
        request.session[OIDC_PENDING] = pending  # one use per state, whatever happens next
        if flow is None:
            raise SignInRejected(
                "state-mismatch",
                "The sign-in response does not match a sign-in started in this browser; start again.",
            )
        idp = IdentityProvider.objects.for_tenant(tenant).enabled().filter(pk=flow["provider"]).first()
        if idp is None:
            raise SignInRejected("unknown-provider", "That identity provider is no longer enabled.")
        if timezone.now().timestamp() - flow["at"] > services.REQUEST_LIFETIME.total_seconds():
            raise SignInRejected("request-expired", "The sign-in took too long; start again.")
        oidc.authorization_response_issuer_check(idp, request.GET.get("iss"))
        if request.GET.get("error"):
            raise SignInRejected(
                "idp-error",
                f"{idp.name} answered: {request.GET['error']} {request.GET.get('error_description', '')}".strip(),
            )
        code = request.GET.get("code", "")
        if not code:
            raise SignInRejected("malformed", "The sign-in response carries no authorization code.")
        tokens = oidc.exchange_code(
            idp, code=code, redirect_uri=_oidc_redirect_uri(tenant), code_verifier=flow["verifier"]
        )
        claims = oidc.validate_id_token(idp, id_token=tokens["id_token"], nonce=flow["nonce"])
        if idp.use_userinfo and tokens.get("access_token"):
            claims = {
                **oidc.userinfo(idp, access_token=tokens["access_token"], subject=claims["sub"]),
                **claims,
            }
        verified = claims.get("email_verified")
        return _complete(
            request,
            tenant,
            idp,
            purpose=flow["purpose"],
            key_issuer=claims["iss"],
            subject=str(claims["sub"]),
            values=normalize(claims),
            next_url=flow["next"],
            email_verified_claim=(verified is True or verified == "true")
            if "email_verified" in claims
            else None,
        )
    except SignInRejected as exc:
        return _refuse(request, tenant, idp, exc)
