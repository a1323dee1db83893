"""Map LIS role vocabularies (LTI 1.3 full URIs, simple names, LTI 1.1 URNs) to hub roles.

LTI Core 1.3 section A.2: context roles
(``http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor``), sub-roles
(``.../membership/Instructor#TeachingAssistant``), institution and system roles
(``.../institution/person#Student``), the simple names the spec allows for
context roles (``Instructor``), and the deprecated LTI 1.1 URNs
(``urn:lti:role:ims/lis/Learner``) some platforms still send.
"""

from __future__ import annotations

from collections.abc import Iterable

# Hub role values (tutoring_core.accounts.models.Role), as plain strings so this
# module needs no Django.
TEACHER = "teacher"
TUTOR = "tutor"
STUDENT = "student"
GUARDIAN = "guardian"

# Most privileged first: the launch role is the first of these the person holds.
CLASS_ROLE_ORDER = (TEACHER, TUTOR, STUDENT, GUARDIAN)

# Unknown or missing roles give the least privilege a class member can have. A
# guardian role is tied to particular students (role_scope_mentor), which an
# unknown role cannot name, so the floor is "student".
LEAST_PRIVILEGE = STUDENT

_CONTEXT_ROLES = {
    "instructor": TEACHER,
    "administrator": TEACHER,  # a course administrator manages the course
    "contentdeveloper": TEACHER,  # places and edits content
    "manager": TEACHER,
    "teachingassistant": TUTOR,
    "mentor": GUARDIAN,
    "learner": STUDENT,
    "member": STUDENT,
    "student": STUDENT,
}

# Institution/system roles only count when no context role says otherwise; they
# never grant more than a class role (an LMS admin is not our district admin).
_INSTITUTION_ROLES = {
    "faculty": TEACHER,
    "instructor": TEACHER,
    "staff": TEACHER,
    "student": STUDENT,
    "learner": STUDENT,
    "prospectivestudent": STUDENT,
    "alumni": STUDENT,
    "mentor": GUARDIAN,
    "observer": GUARDIAN,
    "guest": STUDENT,
    "member": STUDENT,
}

_TA_SUBROLES = {"teachingassistant", "teachingassistantsection", "teachingassistantoffering", "grader"}


def _normalise(role: str) -> tuple[str, str]:
    """Return (scope, name): scope is "context", "institution", "system" or ""."""
    value = role.strip()
    lowered = value.lower()
    if lowered.startswith("http://purl.imsglobal.org/vocab/lis/v2/"):
        path = lowered.removeprefix("http://purl.imsglobal.org/vocab/lis/v2/")
        if "#" not in path:
            return "", ""
        kind, name = path.split("#", 1)
        if kind.startswith("membership/"):
            # A sub-role: ".../membership/Instructor#TeachingAssistant".
            parent = kind.split("/", 1)[1]
            if name in _TA_SUBROLES:
                return "context", "teachingassistant"
            return "context", parent
        if kind == "membership":
            return "context", name
        if kind.startswith("institution"):
            return "institution", name
        if kind.startswith("system"):
            return "system", name
        return "", ""
    if lowered.startswith("urn:lti:role:ims/lis/"):
        name = lowered.removeprefix("urn:lti:role:ims/lis/")
        parent, _, sub = name.partition("/")
        if sub in _TA_SUBROLES:
            return "context", "teachingassistant"
        return "context", parent
    if lowered.startswith("urn:lti:instrole:ims/lis/"):
        return "institution", lowered.removeprefix("urn:lti:instrole:ims/lis/")
    if lowered.startswith("urn:lti:sysrole:ims/lis/"):
        return "system", lowered.removeprefix("urn:lti:sysrole:ims/lis/")
    if "/" not in lowered and ":" not in lowered:
        # The simple names LTI 1.3 allows for context roles ("Instructor", "Learner").
        return "context", lowered
    return "", ""


def hub_roles(roles: Iterable[str]) -> set[str]:
    """Every hub role the LIS roles name (empty when none is recognised)."""
    context: set[str] = set()
    institution: set[str] = set()
    for role in roles:
        if not isinstance(role, str):
            continue
        scope, name = _normalise(role)
        if scope == "context" and name in _CONTEXT_ROLES:
            context.add(_CONTEXT_ROLES[name])
        elif scope == "institution" and name in _INSTITUTION_ROLES:
            institution.add(_INSTITUTION_ROLES[name])
    return context or institution


def class_role(roles: Iterable[str]) -> str:
    """The role to enroll with: the most privileged recognised one, else the floor."""
    found = hub_roles(roles)
    for role in CLASS_ROLE_ORDER:
        if role in found:
            return role
    return LEAST_PRIVILEGE


def is_instructor(roles: Iterable[str]) -> bool:
    return class_role(roles) == TEACHER
