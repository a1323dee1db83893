"""What each LMS dictates for an LTI 1.3 registration.

``fill`` completes the URLs a preset fixes; values given explicitly always win.
Where an LMS's endpoints depend on the school's own host (Moodle, Brightspace),
they are derived from the issuer, which is that host.
"""

from __future__ import annotations

from dataclasses import dataclass

CANVAS_ISSUERS = {
    # Canvas Cloud: one issuer per environment; its OIDC/token/JWKS live on sso.*.
    "https://canvas.instructure.com": "https://sso.canvaslms.com",
    "https://canvas.beta.instructure.com": "https://sso.beta.canvaslms.com",
    "https://canvas.test.instructure.com": "https://sso.test.canvaslms.com",
}


@dataclass(frozen=True)
class PresetInfo:
    name: str
    default_issuer: str = ""
    note: str = ""


PRESETS = {
    "canvas": PresetInfo("canvas", "https://canvas.instructure.com", "Issuer: production, beta or test."),
    "moodle": PresetInfo("moodle", note="Issuer is the Moodle site URL."),
    "brightspace": PresetInfo("brightspace", note="Issuer is the Brightspace host; token audience differs."),
    "blackboard": PresetInfo("blackboard", "https://blackboard.com"),
    "schoology": PresetInfo("schoology", "https://schoology.schoology.com"),
    "google_classroom": PresetInfo(
        "google_classroom", note="Give every URL from the district's Classroom LTI 1.3 registration."
    ),
    "generic": PresetInfo("generic", note="Give every URL."),
}


def fill(
    preset: str,
    *,
    issuer: str,
    client_id: str,
    auth_login_url: str = "",
    auth_token_url: str = "",
    key_set_url: str = "",
    auth_audience: str = "",
) -> dict[str, str]:
    issuer = (issuer or PRESETS.get(preset, PRESETS["generic"]).default_issuer).rstrip("/")
    derived: dict[str, str] = {}
    if preset == "canvas":
        sso = CANVAS_ISSUERS.get(issuer, "")
        if sso:
            derived = {
                "auth_login_url": f"{sso}/api/lti/authorize_redirect",
                "auth_token_url": f"{sso}/login/oauth2/token",
                "key_set_url": f"{sso}/api/lti/security/jwks",
            }
    elif preset == "moodle" and issuer:
        derived = {
            "auth_login_url": f"{issuer}/mod/lti/auth.php",
            "auth_token_url": f"{issuer}/mod/lti/token.php",
            "key_set_url": f"{issuer}/mod/lti/certs.php",
        }
    elif preset == "brightspace" and issuer:
        derived = {
            "auth_login_url": f"{issuer}/d2l/lti/authenticate",
            "auth_token_url": "https://auth.brightspace.com/core/connect/token",
            "key_set_url": f"{issuer}/d2l/.well-known/jwks",
            # Brightspace expects this audience in client assertions, not the token URL.
            "auth_audience": "https://api.brightspace.com/auth/token",
        }
    elif preset == "blackboard":
        derived = {
            "auth_login_url": "https://developer.blackboard.com/api/v1/gateway/oidcauth",
            "auth_token_url": "https://developer.blackboard.com/api/v1/gateway/oauth2/jwttoken",
            "key_set_url": f"https://developer.blackboard.com/api/v1/management/applications/{client_id}/jwks.json",
        }
    elif preset == "schoology":
        derived = {
            "auth_login_url": "https://lti-service.svc.schoology.com/lti-service/authorize-redirect",
            "auth_token_url": "https://lti-service.svc.schoology.com/lti-service/access-token",
            "key_set_url": "https://lti-service.svc.schoology.com/lti-service/.well-known/jwks",
        }
    return {
        "issuer": issuer,
        "auth_login_url": auth_login_url or derived.get("auth_login_url", ""),
        "auth_token_url": auth_token_url or derived.get("auth_token_url", ""),
        "key_set_url": key_set_url or derived.get("key_set_url", ""),
        "auth_audience": auth_audience or derived.get("auth_audience", ""),
    }
