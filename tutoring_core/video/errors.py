"""Refusals with a reason a person can act on, the HTTP status for pages and the websocket
close code for the room (4000-4999 are the application's own, RFC 6455 section 7.4.2)."""

from __future__ import annotations


class VideoError(Exception):
    http_status = 400
    close_code = 4000

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(VideoError):
    http_status = 404
    close_code = 4004


class NotParticipant(VideoError):
    http_status = 403
    close_code = 4003


class TokenRefused(VideoError):
    http_status = 403
    close_code = 4001


class RoomClosed(VideoError):
    http_status = 410
    close_code = 4010


class SessionCancelled(RoomClosed):
    close_code = 4009


class RoomNotOpen(VideoError):
    http_status = 409
    close_code = 4011


class RoomFull(VideoError):
    http_status = 409
    close_code = 4029


class InvalidInput(VideoError):
    http_status = 400
    close_code = 4000


class ProviderUnavailable(VideoError):
    """The tenant's video provider could not be reached or refused the call."""

    http_status = 503
    close_code = 4503


class SignatureRefused(VideoError):
    """A provider webhook whose signature does not verify."""

    http_status = 401
    close_code = 4001
