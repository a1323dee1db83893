"""sso.protocol: presets and attribute/claim mapping, without a database."""

from __future__ import annotations

import pytest

from sso.protocol.errors import SignInRejected
from sso.protocol.mapping import MappingRules, least_role, map_person, normalize
from sso.protocol.presets import MS_CLAIMS, OIDC, PRESETS, SAML


def _entra_rules(**over: object) -> MappingRules:
    preset = PRESETS["entra_saml"]
    values = dict(
        subject_attribute=preset.subject_attribute,
        email_attribute=preset.email_attribute,
        given_name_attribute=preset.given_name_attribute,
        family_name_attribute=preset.family_name_attribute,
        display_name_attribute=preset.display_name_attribute,
        roster_id_attribute=preset.roster_id_attribute,
        role_attribute=preset.role_attribute,
        role_map={"Teacher": "teacher", "Admin": "district_admin"},
        emails_verified=preset.emails_verified,
        allowed_email_domains=("north.k12.us",),
    )
    values.update(over)
    return MappingRules(**values)  # type: ignore[arg-type]


ENTRA_ATTRS = {
    MS_CLAIMS + "objectidentifier": ["0b5a-oid"],
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["Tom.T@North.K12.us"],
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": ["Tom"],
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname": ["Teacher"],
    "employeeid": ["E-77"],
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role": ["Teacher", "Admin"],
}


def test_entra_preset_maps_object_id_roster_id_and_roles() -> None:
    mapped = map_person(default_subject="tom.t@north.k12.us", values=ENTRA_ATTRS, rules=_entra_rules())
    assert mapped.subject == "0b5a-oid"
    assert mapped.email == "tom.t@north.k12.us"
    assert mapped.email_verified is True
    assert mapped.email_domain_allowed is True
    assert (mapped.given_name, mapped.family_name, mapped.roster_id) == ("Tom", "Teacher", "E-77")
    # "Admin" maps to district_admin, which an IdP may never grant.
    assert mapped.idp_roles == ("teacher",)
    assert ("roster sourcedId", "employeeid", "E-77") in mapped.trace


def test_missing_subject_attribute_is_refused_with_its_name() -> None:
    attrs = {k: v for k, v in ENTRA_ATTRS.items() if "objectidentifier" not in k}
    with pytest.raises(SignInRejected) as caught:
        map_person(default_subject="x", values=attrs, rules=_entra_rules())
    assert caught.value.code == "missing-subject"
    assert MS_CLAIMS + "objectidentifier" in caught.value.reason


def test_foreign_domain_is_flagged() -> None:
    attrs = {
        **ENTRA_ATTRS,
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["t@gmail.com"],
    }
    mapped = map_person(default_subject="x", values=attrs, rules=_entra_rules())
    assert mapped.email_domain_allowed is False


def test_oidc_email_verified_claim_wins_over_the_idp_setting() -> None:
    rules = MappingRules(
        email_attribute="email", emails_verified=True, allowed_email_domains=("north.k12.us",)
    )
    claims = normalize({"sub": "s1", "email": "a@north.k12.us", "email_verified": False})
    assert (
        map_person(
            default_subject="s1", values=claims, rules=rules, email_verified_claim=False
        ).email_verified
        is False
    )
    assert (
        map_person(default_subject="s1", values=claims, rules=rules, email_verified_claim=True).email_verified
        is True
    )


def test_google_hosted_domain_must_be_allowed() -> None:
    preset = PRESETS["google_oidc"]
    rules = MappingRules(
        email_attribute="email",
        hosted_domain_claim=preset.hosted_domain_claim,
        allowed_email_domains=("north.k12.us",),
    )
    ok = map_person(
        default_subject="1", values=normalize({"email": "a@north.k12.us", "hd": "north.k12.us"}), rules=rules
    )
    assert ok.subject == "1"
    with pytest.raises(SignInRejected) as caught:
        map_person(default_subject="1", values=normalize({"email": "a@gmail.com"}), rules=rules)
    assert caught.value.code == "domain-not-allowed"
    assert "(none)" in caught.value.reason


def test_classlink_and_clever_presets() -> None:
    classlink, clever = PRESETS["classlink"], PRESETS["clever"]
    assert (classlink.protocol, classlink.roster_id_attribute, classlink.issuer) == (
        OIDC,
        "SourcedId",
        "https://launchpad.classlink.com",
    )
    assert clever.role_map["student"] == "student" and clever.issuer == "https://clever.com"
    assert PRESETS["adfs"].protocol == SAML and "SHA-1" in PRESETS["adfs"].notes
    assert all(p.protocol in (SAML, OIDC) for p in PRESETS.values())
    assert {"google_saml", "google_oidc", "entra_saml", "entra_oidc", "clever", "classlink", "adfs"} <= set(
        PRESETS
    )


def test_normalize_and_least_role() -> None:
    assert normalize({"a": "x", "b": ["y", None, 3], "c": None, "d": True}) == {
        "a": ["x"],
        "b": ["y", "3"],
        "d": ["true"],
    }
    assert least_role(["teacher", "student"]) == "student"
    assert least_role([]) == "student"
