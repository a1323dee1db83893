from __future__ import annotations


class ProgressError(ValueError):
    """Bad input for a progress write; the message says what to fix. Nothing was written."""
