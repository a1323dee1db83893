"""Plain values the scorm app hands out (services, api, the player helper)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class ScoInfo:
    """One launchable item of a package (a SCO, or an asset in SCORM terms)."""

    id: uuid.UUID
    identifier: str
    title: str
    href: str  # path inside the package, posix, normalised
    parameters: str  # query string to append at launch ("" when none)
    scorm_type: str  # "sco" | "asset"
    mastery_score: Decimal | None
    prerequisites: str
    data_from_lms: str
    time_limit_action: str
    max_time_allowed: str
    sequencing: dict[str, Any]
    order: int

    @property
    def launch_path(self) -> str:
        """``href`` with ``parameters`` applied (CP: "?" or "&" as the href needs)."""
        if not self.parameters:
            return self.href
        params = self.parameters
        if params.startswith(("?", "#")):
            if params.startswith("?") and "?" in self.href:
                return f"{self.href}&{params[1:]}"
            return f"{self.href}{params}"
        joiner = "&" if "?" in self.href else "?"
        return f"{self.href}{joiner}{params}"


@dataclass(frozen=True)
class PackageInfo:
    """One imported package of one tenant."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    title: str
    version: str  # "1.2" | "2004 2nd Edition" | "2004 3rd Edition" | "2004 4th Edition"
    identifier: str
    content_hash: str
    storage_root: str  # "scorm/<content_hash>/" in the default storage
    size_bytes: int
    file_count: int
    created_at: dt.datetime
    uploaded_by_id: uuid.UUID | None
    scos: tuple[ScoInfo, ...] = field(default_factory=tuple)
    # True when this call created the package; False when the tenant had it already.
    created: bool = False

    def as_json(self) -> dict[str, Any]:
        """The object ``manage.py scorm_import`` prints."""
        return {
            "id": str(self.id),
            "version": self.version,
            "title": self.title,
            "identifier": self.identifier,
            "content_hash": self.content_hash,
            "size_bytes": self.size_bytes,
            "file_count": self.file_count,
            "created": self.created,
            "scos": [
                {
                    "id": str(sco.id),
                    "identifier": sco.identifier,
                    "title": sco.title,
                    "href": sco.href,
                    "parameters": sco.parameters,
                    "scorm_type": sco.scorm_type,
                    "mastery_score": None if sco.mastery_score is None else str(sco.mastery_score),
                    "prerequisites": sco.prerequisites,
                    "order": sco.order,
                }
                for sco in self.scos
            ],
        }
