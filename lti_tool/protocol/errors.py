from __future__ import annotations


class LaunchRejected(Exception):
    """A login or launch we refuse. ``code`` is stable (logs, tests); ``message``
    tells a teacher or an LMS admin what failed and what to do about it."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
