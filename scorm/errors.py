"""Errors the scorm app raises to its callers (views, the command, other apps)."""

from __future__ import annotations

from scorm.protocol.errors import PackageRejected

__all__ = ["PackageRejected"]
