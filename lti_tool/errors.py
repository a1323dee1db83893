from __future__ import annotations


class LtiToolError(Exception):
    """Base of lti_tool's errors; the message is written for a person to act on."""


class RegistrationNotFound(LtiToolError):
    pass


class ResourceLinkNotFound(LtiToolError):
    pass


class RegistrationInvalid(LtiToolError):
    pass
