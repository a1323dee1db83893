from __future__ import annotations

from sso.protocol.errors import SignInRejected

__all__ = ["SignInRejected"]
