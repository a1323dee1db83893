"""NRPS 2.0 membership containers and the LIS role vocabulary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lti_tool.advantage.protocol.errors import ProtocolError

# Context roles (LTI 1.3 §A.2.3), full URIs and the short forms NRPS allows.
_ROLE_MAP = {
    "Instructor": "teacher",
    "Administrator": "teacher",
    "ContentDeveloper": "teacher",
    "Mentor": "tutor",
    "TeachingAssistant": "tutor",
    "Learner": "student",
}
_PREFIX = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
# A member with several roles gets the highest: an instructor who is also listed as
# a learner (a platform's "student view") is still the class's teacher.
_RANK = ["student", "tutor", "teacher"]


def hub_role(roles: list[str]) -> str | None:
    """The hub role for a member's context roles, or None if none is recognised.
    Sub-roles (``...membership/Instructor#TeachingAssistant``) map by their sub-role."""
    found: set[str] = set()
    for role in roles:
        name = role
        if name.startswith(_PREFIX):
            name = name[len(_PREFIX) :]
        elif name.startswith("http://purl.imsglobal.org/vocab/lis/v2/membership/"):
            name = name.rsplit("#", 1)[-1]
        if name in _ROLE_MAP:
            found.add(_ROLE_MAP[name])
    for role in reversed(_RANK):
        if role in found:
            return role
    return None


@dataclass(frozen=True)
class Member:
    user_id: str
    roles: tuple[str, ...]
    status: str  # Active | Inactive | Deleted
    name: str = ""
    given_name: str = ""
    family_name: str = ""
    email: str = ""
    lis_person_sourcedid: str = ""


@dataclass(frozen=True)
class MembershipPage:
    context_id: str
    members: list[Member]


def parse_membership_container(data: Any) -> MembershipPage:
    if not isinstance(data, dict):
        raise ProtocolError("A membership container must be a JSON object.")
    context = data.get("context") or {}
    members_raw = data.get("members")
    if not isinstance(members_raw, list):
        raise ProtocolError("A membership container needs a members array.")
    members = []
    for raw in members_raw:
        if not isinstance(raw, dict) or not isinstance(raw.get("user_id"), str) or not raw["user_id"]:
            raise ProtocolError("Every member needs a user_id.")
        roles = raw.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise ProtocolError(f"Member {raw['user_id']} needs a roles array.")
        status = str(raw.get("status") or "Active")
        if status not in ("Active", "Inactive", "Deleted"):
            raise ProtocolError(f"Member {raw['user_id']} has an unknown status {status!r}.")
        members.append(
            Member(
                user_id=raw["user_id"],
                roles=tuple(roles),
                status=status,
                name=str(raw.get("name") or ""),
                given_name=str(raw.get("given_name") or ""),
                family_name=str(raw.get("family_name") or ""),
                email=str(raw.get("email") or ""),
                lis_person_sourcedid=str(raw.get("lis_person_sourcedid") or ""),
            )
        )
    return MembershipPage(
        context_id=str(context.get("id") or "") if isinstance(context, dict) else "", members=members
    )
