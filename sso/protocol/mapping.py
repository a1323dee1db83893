"""Turn what an IdP asserts (SAML attributes, OIDC claims) into one person.

Pure functions: no Django, no I/O. The same code serves sign-in and the admin's
"test sign-in" page, so what the admin sees is exactly what sign-in does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sso.protocol.errors import SignInRejected

# Roles an IdP may grant on its own. District and school admin rights are never
# taken from an IdP assertion: they are granted inside the hub (least privilege).
IDP_GRANTABLE_ROLES = ("student", "guardian", "tutor", "teacher")
# Least role first; the first of these is what a new person gets by default.
LEAST_ROLE_ORDER = ("student", "guardian", "tutor", "teacher")


@dataclass(frozen=True)
class MappingRules:
    subject_attribute: str = ""
    email_attribute: str = ""
    given_name_attribute: str = ""
    family_name_attribute: str = ""
    display_name_attribute: str = ""
    roster_id_attribute: str = ""
    role_attribute: str = ""
    role_map: Mapping[str, str] = field(default_factory=dict)
    emails_verified: bool = False
    allowed_email_domains: tuple[str, ...] = ()
    hosted_domain_claim: str = ""


@dataclass(frozen=True)
class MappedPerson:
    subject: str
    email: str
    email_verified: bool
    email_domain_allowed: bool
    given_name: str
    family_name: str
    display_name: str
    roster_id: str
    idp_roles: tuple[str, ...]
    # Each (field, source attribute, value) for the admin's "test sign-in" page.
    trace: tuple[tuple[str, str, str], ...]


def _first(values: Mapping[str, list[str]], name: str) -> str:
    if not name:
        return ""
    found = values.get(name) or []
    return str(found[0]).strip() if found else ""


def normalize(raw: Mapping[str, object]) -> dict[str, list[str]]:
    """Claims and attributes both become name -> list of strings."""
    out: dict[str, list[str]] = {}
    for name, value in raw.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            out[name] = [str(v) for v in value if v is not None]
        elif isinstance(value, bool):
            out[name] = ["true" if value else "false"]
        else:
            out[name] = [str(value)]
    return out


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[1].lower() if "@" in email else ""


def domain_allowed(domain: str, allowed: Iterable[str]) -> bool:
    allowed = [d.strip().lower().lstrip("@") for d in allowed if d.strip()]
    return bool(domain) and domain in allowed


def map_person(
    *,
    default_subject: str,
    values: Mapping[str, list[str]],
    rules: MappingRules,
    email_verified_claim: bool | None = None,
) -> MappedPerson:
    """Apply ``rules`` to ``values``.

    ``default_subject`` is the NameID (SAML) or ``sub`` (OIDC), used unless the
    rules name another persistent attribute. ``email_verified_claim`` is OIDC's
    ``email_verified`` when sent; SAML passes None and relies on the IdP setting.
    """
    trace: list[tuple[str, str, str]] = []
    subject = default_subject
    if rules.subject_attribute:
        subject = _first(values, rules.subject_attribute)
        trace.append(("subject", rules.subject_attribute, subject))
        if not subject:
            raise SignInRejected(
                "missing-subject",
                f"The identity provider did not send the attribute {rules.subject_attribute!r}, "
                "which this provider is set to use as the person's persistent id.",
            )
    else:
        trace.append(("subject", "NameID / sub", subject))
    if not subject:
        raise SignInRejected("missing-subject", "The identity provider sent no subject (NameID or sub).")

    email = _first(values, rules.email_attribute).lower()
    trace.append(("email", rules.email_attribute, email))
    verified = rules.emails_verified if email_verified_claim is None else email_verified_claim
    verified = bool(email) and verified
    domain_ok = domain_allowed(email_domain(email), rules.allowed_email_domains)
    if rules.hosted_domain_claim:
        hosted = _first(values, rules.hosted_domain_claim).lower()
        trace.append(("hosted domain", rules.hosted_domain_claim, hosted))
        if not domain_allowed(hosted, rules.allowed_email_domains):
            raise SignInRejected(
                "domain-not-allowed",
                f"This account's domain ({hosted or 'none'}) is not one of the district's allowed "
                "domains; sign in with your school account.",
            )

    given = _first(values, rules.given_name_attribute)
    family = _first(values, rules.family_name_attribute)
    display = _first(values, rules.display_name_attribute)
    roster_id = _first(values, rules.roster_id_attribute)
    trace += [
        ("given name", rules.given_name_attribute, given),
        ("family name", rules.family_name_attribute, family),
        ("display name", rules.display_name_attribute, display),
        ("roster sourcedId", rules.roster_id_attribute, roster_id),
    ]

    roles: list[str] = []
    raw_roles = values.get(rules.role_attribute, []) if rules.role_attribute else []
    for raw in raw_roles:
        role = rules.role_map.get(raw, rules.role_map.get(raw.lower(), ""))
        if role in IDP_GRANTABLE_ROLES and role not in roles:
            roles.append(role)
    trace.append(("roles", rules.role_attribute, ", ".join(roles) or "(none mapped)"))

    return MappedPerson(
        subject=subject,
        email=email,
        email_verified=verified,
        email_domain_allowed=domain_ok,
        given_name=given,
        family_name=family,
        display_name=display,
        roster_id=roster_id,
        idp_roles=tuple(roles),
        trace=tuple(trace),
    )


def least_role(roles: Iterable[str]) -> str:
    roles = set(roles)
    for role in LEAST_ROLE_ORDER:
        if role in roles:
            return role
    return LEAST_ROLE_ORDER[0]
