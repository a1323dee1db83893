from __future__ import annotations


class SignInRejected(Exception):
    """A sign-in that must not go ahead. ``reason`` names the failed check in words a
    district IT admin can act on; ``code`` is a stable slug for logs and tests."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
