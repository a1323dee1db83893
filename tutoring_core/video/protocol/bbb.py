"""BigBlueButton's API without Django: signed call URLs, XML answers, and the signed
recording-ready callback.

Every call carries ``checksum = hex(SHA(callName + queryString + sharedSecret))`` (BigBlueButton
API reference, "Usage"); SHA-1 is the historic default, newer servers also accept SHA-256 (and
can be set to accept only that, ``supportedChecksumAlgorithms``). The recording-ready callback
(``meta_bbb-recording-ready-url``) POSTs ``signed_parameters``, a JWT signed HS256 with the same
shared secret, whose claims hold ``meeting_id`` and ``record_id``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode
from xml.etree import ElementTree

import jwt

ALGORITHMS = ("sha1", "sha256")


class BBBError(Exception):
    """A refused call or an answer that is not BigBlueButton's; ``key`` is its messageKey."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


def query_string(params: Mapping[str, object] | Iterable[tuple[str, object]]) -> str:
    """The query in the caller's order, encoded as the server decodes it (spaces as '+')."""
    items = params.items() if isinstance(params, Mapping) else params
    return urlencode([(k, _text(v)) for k, v in items])


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def checksum(*, call: str, query: str, secret: str, algorithm: str = "sha1") -> str:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"The checksum algorithm must be one of {', '.join(ALGORITHMS)}.")
    if not secret:
        raise ValueError("A BigBlueButton shared secret is needed.")
    return hashlib.new(algorithm, f"{call}{query}{secret}".encode()).hexdigest()


def call_url(
    *,
    base_url: str,
    call: str,
    params: Mapping[str, object] | Iterable[tuple[str, object]],
    secret: str,
    algorithm: str = "sha1",
) -> str:
    """``<base>/api/<call>?<query>&checksum=<sum>``; ``base_url`` ends in ``/bigbluebutton/``."""
    query = query_string(params)
    digest = checksum(call=call, query=query, secret=secret, algorithm=algorithm)
    root = base_url.rstrip("/") + "/api/"
    return f"{root}{call}?{query}&checksum={digest}" if query else f"{root}{call}?checksum={digest}"


@dataclass(frozen=True)
class Meeting:
    meeting_id: str
    name: str
    running: bool
    recording: bool
    participants: int


@dataclass(frozen=True)
class RecordingInfo:
    record_id: str
    meeting_id: str
    state: str
    published: bool
    playback_url: str


def parse(xml: bytes | str) -> ElementTree.Element:
    """The ``<response>`` element; BBBError when the server says FAILED or it is not XML."""
    try:
        root = ElementTree.fromstring(xml)  # noqa: S314 (our server's answer; no DTDs or entities in it)
    except ElementTree.ParseError as exc:
        raise BBBError(f"BigBlueButton's answer is not XML: {exc}") from None
    code = root.findtext("returncode")
    if code != "SUCCESS":
        raise BBBError(
            root.findtext("message") or "BigBlueButton refused the call.", root.findtext("messageKey") or ""
        )
    return root


def meetings(root: ElementTree.Element) -> list[Meeting]:
    return [
        Meeting(
            meeting_id=m.findtext("meetingID") or "",
            name=m.findtext("meetingName") or "",
            running=(m.findtext("running") or "") == "true",
            recording=(m.findtext("recording") or "") == "true",
            participants=int(m.findtext("participantCount") or 0),
        )
        for m in root.iter("meeting")
    ]


def recordings(root: ElementTree.Element) -> list[RecordingInfo]:
    out = []
    for r in root.iter("recording"):
        url = next((f.findtext("url") or "" for f in r.iter("format")), "")
        out.append(
            RecordingInfo(
                record_id=r.findtext("recordID") or "",
                meeting_id=r.findtext("meetingID") or "",
                state=r.findtext("state") or "",
                published=(r.findtext("published") or "") == "true",
                playback_url=url,
            )
        )
    return out


def recording_ready_claims(*, signed_parameters: str, secret: str) -> dict[str, str]:
    """The callback's claims, or BBBError when the signature or the claims are wrong."""
    try:
        claims = jwt.decode(signed_parameters, secret, algorithms=["HS256"])
    except jwt.PyJWTError as exc:
        raise BBBError(f"The recording-ready callback's signature is not valid ({exc}).") from None
    meeting_id, record_id = claims.get("meeting_id"), claims.get("record_id")
    if not isinstance(meeting_id, str) or not meeting_id:
        raise BBBError("The recording-ready callback names no meeting_id.")
    return {"meeting_id": meeting_id, "record_id": record_id if isinstance(record_id, str) else ""}


# --- bbb-webhooks callbacks (join and leave times) ----------------------------------------------
# bbb-webhooks POSTs ``domain=..&event=[<json>]&timestamp=..`` (form-encoded) to each hook's
# callback URL with ``?checksum=hex(SHA(callbackURL + body + sharedSecret))`` appended, the
# callback URL being the one registered (without the checksum). Its events carry no id of their
# own; ``user-joined``/``user-left`` name the meeting (``external-meeting-id``: the hub's room)
# and the user (``external-user-id``: the userID the hub's join URL gave).


@dataclass(frozen=True)
class HookEvent:
    kind: str  # user-joined | user-left | meeting-ended | ...
    meeting_id: str  # external: the hub's room name
    user_id: str  # external: the hub's person id (hex)
    internal_user_id: str  # BigBlueButton's, one per connection of a user
    ts_ms: int

    @property
    def key(self) -> str:
        """What names the event for deduplication (a retried callback repeats all of it)."""
        return f"{self.kind}:{self.meeting_id}:{self.internal_user_id}:{self.ts_ms}"


def hook_events(
    *, callback_url: str, body: str, given: str, secret: str, algorithm: str = "sha1"
) -> list[HookEvent]:
    """The events of one verified callback; BBBError when the checksum or the body is wrong."""
    if not given:
        raise BBBError("The callback has no checksum.")
    expected = hashlib.new(algorithm, f"{callback_url}{body}{secret}".encode()).hexdigest()
    if not hmac.compare_digest(expected, given.lower()):
        raise BBBError("The callback's checksum is not valid.")
    fields = dict(parse_qsl(body, keep_blank_values=True))
    try:
        raw = json.loads(fields.get("event", ""))
    except ValueError:
        raise BBBError("The callback's event is not JSON.") from None
    items = raw if isinstance(raw, list) else [raw]
    events = []
    for item in items:
        data = (item or {}).get("data") if isinstance(item, dict) else None
        if not isinstance(data, dict):
            raise BBBError("The callback's event has no data.")
        attributes = data.get("attributes") or {}
        meeting = attributes.get("meeting") or {}
        user = attributes.get("user") or {}
        ts = (data.get("event") or {}).get("ts") or 0
        events.append(
            HookEvent(
                kind=str(data.get("id") or ""),
                meeting_id=str(meeting.get("external-meeting-id") or ""),
                user_id=str(user.get("external-user-id") or ""),
                internal_user_id=str(user.get("internal-user-id") or ""),
                ts_ms=int(ts) if str(ts).isdigit() else 0,
            )
        )
    return events
