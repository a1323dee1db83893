from __future__ import annotations


class ProtocolError(ValueError):
    """A payload that breaks the AGS/NRPS shapes; the message names the field."""
