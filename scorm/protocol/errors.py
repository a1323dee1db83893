"""Errors of SCORM package handling that need no Django."""

from __future__ import annotations


class PackageRejected(Exception):
    """A package that must not be imported, with a reason a teacher can act on.

    ``code`` is a stable slug for logs and tests; ``entry`` names the offending file
    inside the zip when there is one (its name as stored, shown in the reason too).
    """

    def __init__(self, code: str, reason: str, *, entry: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.entry = entry

    def __str__(self) -> str:
        return self.reason
