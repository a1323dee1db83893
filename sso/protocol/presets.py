"""Starting points for the identity providers districts use most.

A preset fills in attribute/claim names and protocol quirks; the district admin
still enters their own metadata URL, issuer, client id and secret. Names below
are the ones each vendor documents for its default claim set; where a vendor has
no default (Google SAML custom attributes) the admin maps them in the form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SAML = "saml"
OIDC = "oidc"

ENTRA_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
MS_CLAIMS = "http://schemas.microsoft.com/identity/claims/"


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    protocol: str
    # Attribute (SAML) or claim (OIDC) names. "" means "not sent by default".
    subject_attribute: str = ""  # "" = the NameID (SAML) or "sub" (OIDC)
    email_attribute: str = ""
    given_name_attribute: str = ""
    family_name_attribute: str = ""
    display_name_attribute: str = ""
    roster_id_attribute: str = ""
    role_attribute: str = ""
    role_map: dict[str, str] = field(default_factory=dict)
    # OIDC: the issuer to discover from; "{tenant}" is filled in by the admin.
    issuer: str = ""
    scopes: str = "openid email profile"
    # Read the userinfo endpoint too (some providers put roster ids only there).
    use_userinfo: bool = False
    # Whether an email this IdP asserts may be treated as verified. SAML IdPs
    # run by the district assert addresses they own; Entra's `email` claim is
    # user-editable in some tenants, so it is never trusted as verified.
    emails_verified: bool = True
    # Claim that must equal one of the tenant's allowed domains (Google's `hd`).
    hosted_domain_claim: str = ""
    notes: str = ""


PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset(
            key="generic_saml",
            label="Other SAML 2.0 IdP",
            protocol=SAML,
            email_attribute="mail",
            given_name_attribute="givenName",
            family_name_attribute="sn",
            display_name_attribute="displayName",
        ),
        Preset(
            key="generic_oidc",
            label="Other OpenID Connect provider",
            protocol=OIDC,
            email_attribute="email",
            given_name_attribute="given_name",
            family_name_attribute="family_name",
            display_name_attribute="name",
            emails_verified=False,
        ),
        Preset(
            key="google_saml",
            label="Google Workspace (SAML)",
            protocol=SAML,
            notes="Google sends the primary email as the NameID and no attributes unless the "
            "admin adds custom attribute mappings; it offers no single logout.",
        ),
        Preset(
            key="google_oidc",
            label="Google Workspace (OpenID Connect)",
            protocol=OIDC,
            issuer="https://accounts.google.com",
            email_attribute="email",
            given_name_attribute="given_name",
            family_name_attribute="family_name",
            display_name_attribute="name",
            emails_verified=False,
            hosted_domain_claim="hd",
            notes="Personal Google accounts share the issuer: the `hd` claim must be one of "
            "the district's domains.",
        ),
        Preset(
            key="entra_saml",
            label="Microsoft Entra ID (SAML)",
            protocol=SAML,
            subject_attribute=MS_CLAIMS + "objectidentifier",
            email_attribute=ENTRA_CLAIMS + "emailaddress",
            given_name_attribute=ENTRA_CLAIMS + "givenname",
            family_name_attribute=ENTRA_CLAIMS + "surname",
            display_name_attribute=MS_CLAIMS + "displayname",
            roster_id_attribute="employeeid",
            role_attribute="http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
            notes="The default NameID is the UPN, which changes when a person is renamed; the "
            "object id is used as the persistent subject instead.",
        ),
        Preset(
            key="entra_oidc",
            label="Microsoft Entra ID (OpenID Connect)",
            protocol=OIDC,
            issuer="https://login.microsoftonline.com/{tenant}/v2.0",
            subject_attribute="oid",
            email_attribute="email",
            given_name_attribute="given_name",
            family_name_attribute="family_name",
            display_name_attribute="name",
            role_attribute="roles",
            emails_verified=False,
            notes="`sub` is pairwise per application; `oid` is stable across the district's apps.",
        ),
        Preset(
            key="adfs",
            label="Active Directory Federation Services",
            protocol=SAML,
            email_attribute=ENTRA_CLAIMS + "emailaddress",
            given_name_attribute=ENTRA_CLAIMS + "givenname",
            family_name_attribute=ENTRA_CLAIMS + "surname",
            display_name_attribute=ENTRA_CLAIMS + "name",
            roster_id_attribute="employeeID",
            role_attribute="http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
            notes="Older relying-party trusts sign with SHA-1, which is refused: set the trust's "
            "secure hash algorithm to SHA-256.",
        ),
        Preset(
            key="clever",
            label="Clever",
            protocol=OIDC,
            issuer="https://clever.com",
            email_attribute="email",
            given_name_attribute="given_name",
            family_name_attribute="family_name",
            role_attribute="user_type",
            role_map={"student": "student", "teacher": "teacher", "staff": "teacher"},
            emails_verified=False,
            notes="Clever ids are not SIS ids; link to the roster through Clever's own roster sync.",
        ),
        Preset(
            key="classlink",
            label="ClassLink",
            protocol=OIDC,
            issuer="https://launchpad.classlink.com",
            scopes="openid profile oneroster",
            email_attribute="Email",
            given_name_attribute="FirstName",
            family_name_attribute="LastName",
            display_name_attribute="DisplayName",
            roster_id_attribute="SourcedId",
            role_attribute="Role",
            role_map={"Student": "student", "Teacher": "teacher"},
            emails_verified=False,
            use_userinfo=True,
            notes="ClassLink returns its OneRoster SourcedId on userinfo, which joins to the roster.",
        ),
    )
}


def preset_choices() -> list[tuple[str, str]]:
    return [(p.key, p.label) for p in PRESETS.values()]
