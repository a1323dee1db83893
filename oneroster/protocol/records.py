"""The version-neutral shape of a roster record, and the row-local rules it must obey.

CSV files and REST answers of OneRoster 1.1 and 1.2 are all read into ``Record``
values with the same normalised ``data`` keys, so staging, diffing and applying
never care where a row came from. Checks that need other rows (references
between entities) run later, against the staged set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Processing order: each entity only refers to entities earlier in this list
# (orgs may refer to orgs, sessions to sessions; those are checked against the
# staged set of their own entity).
ENTITIES: tuple[str, ...] = (
    "org",
    "academicSession",
    "course",
    "class",
    "user",
    "role",
    "enrollment",
    "agent",
)

ACTIVE = "active"
TOBEDELETED = "tobedeleted"

ORG_TYPES = frozenset({"department", "school", "district", "local", "state", "national"})
SESSION_TYPES = frozenset({"gradingPeriod", "semester", "schoolYear", "term"})
CLASS_TYPES = frozenset({"homeroom", "scheduled"})
ROLES_1_1 = frozenset(
    {"administrator", "aide", "guardian", "parent", "proctor", "relative", "student", "teacher"}
)
# OneRoster 1.2 (Rostering, section on the RoleEnum) widens the vocabulary.
ROLES_1_2 = ROLES_1_1 | frozenset(
    {"districtAdministrator", "siteAdministrator", "systemAdministrator", "principal"}
)
ROLE_TYPES = frozenset({"primary", "secondary"})

# OneRoster role -> hub role (tutoring_core.accounts.models.Role values).
# Roster files never grant district_admin: that opens the admin, and a SIS
# export is not the place to hand out administrative rights (an admin grants it).
HUB_ROLE = {
    "student": "student",
    "teacher": "teacher",
    "aide": "tutor",
    "proctor": "tutor",
    "guardian": "guardian",
    "parent": "guardian",
    "relative": "guardian",
    "administrator": "school_admin",
    "principal": "school_admin",
    "siteAdministrator": "school_admin",
    "districtAdministrator": "school_admin",
    "systemAdministrator": "school_admin",
}
GUARDIAN_ROLES = frozenset({"guardian", "parent", "relative"})


class RosterProtocolError(Exception):
    """A source that cannot be read at all (no manifest, no envelope, unknown version)."""


@dataclass(frozen=True)
class RowError:
    entity: str
    location: str  # file name, or endpoint
    line: int | None  # CSV line number (header is line 1); None for REST
    sourced_id: str
    message: str

    def __str__(self) -> str:
        where = f"{self.location}:{self.line}" if self.line is not None else self.location
        sid = f" sourcedId={self.sourced_id}" if self.sourced_id else ""
        return f"{where}{sid}: {self.message}"


@dataclass
class Record:
    entity: str
    sourced_id: str
    status: str  # ACTIVE or TOBEDELETED
    data: dict[str, Any]
    location: str
    line: int | None = None
    date_last_modified: str = ""
    errors: list[str] = field(default_factory=list)

    # The references this row makes, checked against the staged set (see refs()).
    def refs(self) -> tuple[str, str]:
        # Called once per staged row: look up only this entity's two keys.
        first, second = _REF_KEYS[self.entity]
        d = self.data
        return (d.get(first, "") if first else "", d.get(second, "") if second else "")

    def natural_key(self) -> str:
        # A stable second key for users (state/SIS id): lets a re-keyed sourcedId
        # find the person it used to name instead of orphaning their history.
        if self.entity == "user":
            return str(self.data.get("identifier") or "")
        return ""

    def payload(self) -> str:
        """The data as canonical JSON (what is staged, and what the hash is over)."""
        return _CANONICAL_JSON(self.data)

    def content_hash(self, payload: str | None = None) -> str:
        # dateLastModified is left out on purpose: a SIS that touches every row's
        # timestamp nightly without changing content must not rewrite everything.
        payload = self.payload() if payload is None else payload
        return hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()

    def error(self, message: str) -> None:
        self.errors.append(message)

    def row_errors(self) -> list[RowError]:
        return [RowError(self.entity, self.location, self.line, self.sourced_id, m) for m in self.errors]


# The data keys refs() reads, per entity (first, second; "" for none).
_REF_KEYS: dict[str, tuple[str, str]] = {
    "org": ("parent", ""),
    "academicSession": ("parent", ""),
    "course": ("org", ""),
    "class": ("course", "school"),
    "user": ("", ""),
    "role": ("user", "org"),
    "enrollment": ("class", "user"),
    "agent": ("user", "agent"),
}
# json.dumps(data, sort_keys=True, separators=(",", ":"), default=str), with the encoder
# built once instead of per row.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode

# Which entity each reference of refs() names, per entity: (first, second).
REF_TARGETS: dict[str, tuple[str | None, str | None]] = {
    "org": ("org", None),
    "academicSession": ("academicSession", None),
    "course": ("org", None),
    "class": ("course", "org"),
    "user": (None, None),
    "role": ("user", "org"),
    "enrollment": ("class", "user"),
    "agent": ("user", "user"),
}
REF_NAMES: dict[str, tuple[str, str]] = {
    "org": ("parentSourcedId", ""),
    "academicSession": ("parentSourcedId", ""),
    "course": ("orgSourcedId", ""),
    "class": ("courseSourcedId", "schoolSourcedId"),
    "user": ("", ""),
    "role": ("userSourcedId", "orgSourcedId"),
    "enrollment": ("classSourcedId", "userSourcedId"),
    "agent": ("userSourcedId", "agentSourcedIds"),
}


def parse_bool(value: Any, *, default: bool | None = None) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text == "":
        return default
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"{value!r} is not true or false")


def parse_date(value: Any) -> str:
    """An ISO date (YYYY-MM-DD) or empty; a datetime's date part is accepted."""
    text = str(value or "").strip()
    if not text:
        return ""
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def split_list(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [item.strip() for item in str(value or "").split(",") if item.strip()]


def normalise_status(record: Record, raw: str, *, delta: bool) -> None:
    status = (raw or "").strip().lower()
    if status in ("", ACTIVE):
        record.status = ACTIVE
    elif status == TOBEDELETED:
        if not delta:
            # 1.1 CSV section 2.1: bulk files carry only live rows.
            record.error("status tobedeleted is only allowed in a delta file")
        record.status = TOBEDELETED
    else:
        record.error(f"status {raw!r} is not one of active, tobedeleted")


def _require(record: Record, *names: str) -> None:
    for name in names:
        if not record.data.get(name):
            record.error(f"{name} is required")


def _enum(record: Record, name: str, allowed: Iterable[str], *, required: bool = True) -> None:
    value = record.data.get(name, "")
    if not value:
        if required:
            record.error(f"{name} is required")
        return
    allowed = frozenset(allowed)
    if value not in allowed:
        record.error(f"{name} {value!r} is not one of {', '.join(sorted(allowed))}")


def check_record(record: Record, *, version: str) -> Record:
    """Row-local rules: required fields, enumerations, dates. Errors go on the record."""
    if not record.sourced_id:
        record.error("sourcedId is required")
    if record.status == TOBEDELETED:
        return record  # a deletion needs nothing but its key
    roles = ROLES_1_2 if version == "1.2" else ROLES_1_1
    d = record.data
    entity = record.entity
    if entity == "org":
        _require(record, "name")
        _enum(record, "type", ORG_TYPES)
    elif entity == "academicSession":
        _require(record, "title")
        _enum(record, "type", SESSION_TYPES)
        if not d.get("startDate"):
            record.error("startDate is required")
        if not d.get("endDate"):
            record.error("endDate is required")
        if d.get("startDate") and d.get("endDate") and d["endDate"] < d["startDate"]:
            record.error(f"endDate {d['endDate']} is before startDate {d['startDate']}")
    elif entity == "course":
        _require(record, "title", "org")
    elif entity == "class" and version == "classroom":
        _require(record, "title")  # a Classroom course has no school, course or term
    elif entity == "class":
        _require(record, "title", "course", "school")
        if not d.get("terms"):
            record.error("termSourcedIds is required")
        _enum(record, "classType", CLASS_TYPES, required=False)
    elif entity == "user":
        if not (d.get("givenName") or d.get("familyName")):
            record.error("givenName or familyName is required")
    elif entity == "role":
        _require(record, "user", *(("org",) if version != "classroom" else ()))
        _enum(record, "role", roles)
        _enum(record, "roleType", ROLE_TYPES, required=False)
    elif entity == "enrollment":
        _require(record, "class", "user")
        _enum(record, "role", roles)
        if d.get("beginDate") and d.get("endDate") and d["endDate"] < d["beginDate"]:
            record.error(f"endDate {d['endDate']} is before beginDate {d['beginDate']}")
    elif entity == "agent":
        _require(record, "user", "agent")
    return record


def check_user_role(record: Record, role: str, *, version: str) -> None:
    """1.1 keeps the role on the user row: a bad role rejects the user itself."""
    if record.status != ACTIVE:
        return
    allowed = ROLES_1_2 if version == "1.2" else ROLES_1_1
    if not role:
        record.error("role is required")
    elif role not in allowed:
        record.error(f"role {role!r} is not one of {', '.join(sorted(allowed))}")


def derived_user_records(
    user: Record, *, role: str, orgs: list[str], agents: list[str], version: str = "1.1"
) -> list[Record]:
    """1.1 keeps a user's role, orgs and agents on the user row; 1.2 (CSV) has a
    roles file. Both become 'role' and 'agent' records so apply and deactivation
    work the same way for either version."""
    out: list[Record] = []
    if user.errors:
        return out
    for org in orgs:
        out.append(
            Record(
                entity="role",
                sourced_id=f"{user.sourced_id}|{role}|{org}",
                status=user.status,
                data={"user": user.sourced_id, "role": role, "org": org, "roleType": "primary"},
                location=user.location,
                line=user.line,
                date_last_modified=user.date_last_modified,
            )
        )
        check_record(out[-1], version=version)
    for agent in agents:
        out.append(
            Record(
                entity="agent",
                sourced_id=f"{user.sourced_id}|{agent}",
                status=user.status,
                data={"user": user.sourced_id, "agent": agent},
                location=user.location,
                line=user.line,
                date_last_modified=user.date_last_modified,
            )
        )
    return out
