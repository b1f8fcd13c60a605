"""The KVS WebRTC signaling protocol as plain data: no sockets, no AWS.

One definition of each message shape serves the sender, the emulator and the tests:

* :class:`ClientMessage` is what a client sends on the signaling WebSocket
  (``{"action", "recipientClientId", "messagePayload", "correlationId"}``).
* :class:`ServerEvent` is what a client receives
  (``{"senderClientId", "messageType", "messagePayload", "statusResponse"}``).
* :func:`parse_client_message` turns a text frame into a :class:`ClientMessage` or a
  :class:`MessageRejection` that names the field and the rule, as the service would refuse it.
* :func:`parse_server_event` turns a received text frame into a :class:`ServerEvent`.

The field rules come from the SendSdpAnswer API page (``shared/spec/SendSdpAnswer.txt``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    """What a client may send (the ``action`` field)."""

    SDP_OFFER = "SDP_OFFER"
    SDP_ANSWER = "SDP_ANSWER"
    ICE_CANDIDATE = "ICE_CANDIDATE"


class MessageType(StrEnum):
    """What a client may receive (the ``messageType`` field)."""

    SDP_OFFER = "SDP_OFFER"
    SDP_ANSWER = "SDP_ANSWER"
    ICE_CANDIDATE = "ICE_CANDIDATE"
    GO_AWAY = "GO_AWAY"
    RECONNECT_ICE_SERVER = "RECONNECT_ICE_SERVER"
    STATUS_RESPONSE = "STATUS_RESPONSE"


class Role(StrEnum):
    """The two roles of a single-master signaling channel."""

    MASTER = "MASTER"
    VIEWER = "VIEWER"


ID_PATTERN_TEXT = r"[a-zA-Z0-9_.-]+"
"""The seed's pattern for recipientClientId, correlationId and (by extension) client ids."""
ID_PATTERN = re.compile(ID_PATTERN_TEXT)
ID_MIN_LENGTH = 1
ID_MAX_LENGTH = 256

PAYLOAD_MIN_LENGTH = 1
PAYLOAD_MAX_LENGTH = 10 * 1024
"""The seed says "Maximum length of 10K" for messagePayload; read as 10 * 1024 characters."""

# The documented pattern writes the partition as [a-z\d-]+; \d also matches non-ASCII digits
# in Python and in pydantic's regex engine, so it is spelled [a-z0-9-] here.
CHANNEL_ARN_PATTERN_TEXT = (
    r"arn:[a-z0-9-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+"
)
CHANNEL_ARN_PATTERN = re.compile(CHANNEL_ARN_PATTERN_TEXT)

# Error types and status codes carried in STATUS_RESPONSE.
INVALID_ARGUMENT = "InvalidArgumentException"
CLIENT_LIMIT_EXCEEDED = "ClientLimitExceededException"
BAD_REQUEST_STATUS = "400"

_CORRELATION_ID_IN_TEXT = re.compile(r'"correlationId"\s*:\s*"([a-zA-Z0-9_.-]{1,256})"')


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One broken rule: the field's name as it appears on the wire, and the rule."""

    field: str
    rule: str

    def __str__(self) -> str:
        return f"{self.field}: {self.rule}"


def id_violation(name: str, value: object, *, required: bool) -> FieldViolation | None:
    """Check a client id or correlation id against the seed's type, length and pattern."""
    if value is None:
        return FieldViolation(name, "is required") if required else None
    if not isinstance(value, str):
        return FieldViolation(name, "must be a string")
    if not ID_MIN_LENGTH <= len(value) <= ID_MAX_LENGTH:
        return FieldViolation(name, f"length must be {ID_MIN_LENGTH} to {ID_MAX_LENGTH} characters")
    if not ID_PATTERN.fullmatch(value):
        return FieldViolation(name, f"must match the pattern {ID_PATTERN_TEXT}")
    return None


def payload_violation(value: object, name: str = "messagePayload") -> FieldViolation | None:
    """Check a messagePayload: a string of 1 to 10K characters that is valid base64."""
    if value is None:
        return FieldViolation(name, "is required")
    if not isinstance(value, str):
        return FieldViolation(name, "must be a string")
    if not PAYLOAD_MIN_LENGTH <= len(value) <= PAYLOAD_MAX_LENGTH:
        return FieldViolation(
            name, f"length must be {PAYLOAD_MIN_LENGTH} to {PAYLOAD_MAX_LENGTH} characters"
        )
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return FieldViolation(name, "must be valid base64")
    return None


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """A message a client sends on the signaling WebSocket."""

    action: Action
    message_payload: str
    recipient_client_id: str | None = None
    correlation_id: str | None = None

    def violations(self, sender_role: Role) -> list[FieldViolation]:
        """The rules this message breaks when sent by a client of ``sender_role``."""
        found = [
            id_violation(
                "recipientClientId",
                self.recipient_client_id,
                required=sender_role is Role.MASTER,
            ),
            payload_violation(self.message_payload),
            id_violation("correlationId", self.correlation_id, required=False),
        ]
        return [v for v in found if v is not None]

    def to_dict(self) -> dict[str, str]:
        body: dict[str, str] = {"action": self.action.value}
        if self.recipient_client_id is not None:
            body["recipientClientId"] = self.recipient_client_id
        body["messagePayload"] = self.message_payload
        if self.correlation_id is not None:
            body["correlationId"] = self.correlation_id
        return body

    def to_json(self) -> str:
        """The text frame to send."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class MessageRejection:
    """Why the service refuses a client frame, and what it answers (if anything)."""

    error_type: str
    status_code: str
    description: str
    correlation_id: str | None
    violation: FieldViolation | None = None

    def status_response(self) -> StatusResponse | None:
        """The STATUS_RESPONSE the service sends back: only when a correlationId was given."""
        if self.correlation_id is None:
            return None
        return StatusResponse(
            correlation_id=self.correlation_id,
            error_type=self.error_type,
            status_code=self.status_code,
            description=self.description,
        )


def _reject(violation: FieldViolation, correlation_id: str | None) -> MessageRejection:
    return MessageRejection(
        error_type=INVALID_ARGUMENT,
        status_code=BAD_REQUEST_STATUS,
        description=str(violation),
        correlation_id=correlation_id,
        violation=violation,
    )


def parse_client_message(frame: str | bytes, sender_role: Role) -> ClientMessage | MessageRejection:
    """Parse and validate one client frame as the signaling service does.

    A correlationId is recovered even from a frame that is otherwise broken, so that the
    rejection can be answered with a STATUS_RESPONSE whenever the sender asked for one.
    """
    text = frame.decode("utf-8", errors="replace") if isinstance(frame, bytes) else frame
    try:
        body: Any = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the stack allows
        match = _CORRELATION_ID_IN_TEXT.search(text)
        return _reject(
            FieldViolation("message", "must be a JSON object"),
            match.group(1) if match else None,
        )
    if not isinstance(body, dict):
        return _reject(FieldViolation("message", "must be a JSON object"), None)

    raw_correlation = body.get("correlationId")
    correlation_problem = id_violation("correlationId", raw_correlation, required=False)
    # An invalid correlationId cannot be echoed back, so it is answered by nobody.
    correlation_id = raw_correlation if correlation_problem is None else None
    if correlation_problem is not None:
        return _reject(correlation_problem, None)

    action = body.get("action")
    if action is None:
        return _reject(FieldViolation("action", "is required"), correlation_id)
    if not isinstance(action, str) or action not in Action.__members__:
        return _reject(
            FieldViolation("action", f"must be one of {', '.join(a.value for a in Action)}"),
            correlation_id,
        )
    message = ClientMessage(
        action=Action(action),
        message_payload=body.get("messagePayload"),  # type: ignore[arg-type]  # checked below
        recipient_client_id=body.get("recipientClientId"),
        correlation_id=correlation_id,
    )
    if sender_role is Role.VIEWER:
        # A viewer's recipientClientId is ignored by the service (the seed), whatever it holds.
        message = ClientMessage(
            action=message.action,
            message_payload=message.message_payload,
            recipient_client_id=None,
            correlation_id=correlation_id,
        )
    problems = message.violations(sender_role)
    if problems:
        return _reject(problems[0], correlation_id)
    return message


@dataclass(frozen=True, slots=True)
class StatusResponse:
    """The ``statusResponse`` object of a STATUS_RESPONSE event."""

    correlation_id: str
    error_type: str
    status_code: str
    description: str

    def to_dict(self) -> dict[str, str]:
        return {
            "correlationId": self.correlation_id,
            "errorType": self.error_type,
            "statusCode": self.status_code,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """An event a client receives on the signaling WebSocket."""

    message_type: MessageType
    sender_client_id: str | None = None
    message_payload: str | None = None
    status_response: StatusResponse | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.sender_client_id is not None:
            body["senderClientId"] = self.sender_client_id
        body["messageType"] = self.message_type.value
        if self.message_payload is not None:
            body["messagePayload"] = self.message_payload
        if self.status_response is not None:
            body["statusResponse"] = self.status_response.to_dict()
        body.update(self.extra)
        return body

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


class EventParseError(ValueError):
    """A received frame is not a signaling event."""


def parse_server_event(frame: str | bytes) -> ServerEvent:
    """Parse a frame received from the signaling service."""
    try:
        body: Any = json.loads(frame)
    except ValueError as exc:
        raise EventParseError("event is not JSON") from exc
    if not isinstance(body, dict):
        raise EventParseError("event is not a JSON object")
    try:
        message_type = MessageType(str(body.get("messageType")))
    except ValueError as exc:
        raise EventParseError(f"unknown messageType {body.get('messageType')!r}") from exc
    status: StatusResponse | None = None
    raw_status = body.get("statusResponse")
    if isinstance(raw_status, dict):
        status = StatusResponse(
            correlation_id=str(raw_status.get("correlationId", "")),
            error_type=str(raw_status.get("errorType", "")),
            status_code=str(raw_status.get("statusCode", "")),
            description=str(raw_status.get("description", "")),
        )
    known = {"senderClientId", "messageType", "messagePayload", "statusResponse"}
    return ServerEvent(
        message_type=message_type,
        sender_client_id=body.get("senderClientId"),
        message_payload=body.get("messagePayload"),
        status_response=status,
        extra={k: v for k, v in body.items() if k not in known},
    )


def action_for_event(message_type: MessageType) -> Action | None:
    """The client action a relayed event came from (None for service events)."""
    try:
        return Action(message_type.value)
    except ValueError:
        return None


# Payload encodings used by the official SDKs.


def encode_json_payload(body: dict[str, Any]) -> str:
    """Base64 of a compact JSON object, as the SDKs fill messagePayload."""
    return base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode("ascii")


def encode_sdp_payload(kind: str, sdp: str) -> str:
    """messagePayload for an SDP offer or answer: base64 of ``{"type": kind, "sdp": sdp}``."""
    return encode_json_payload({"type": kind, "sdp": sdp})


def encode_ice_candidate_payload(
    candidate: str, sdp_mid: str | None, sdp_m_line_index: int | None
) -> str:
    """messagePayload for an ICE candidate: base64 of the RTCIceCandidate JSON."""
    return encode_json_payload(
        {"candidate": candidate, "sdpMid": sdp_mid, "sdpMLineIndex": sdp_m_line_index}
    )


def decode_json_payload(payload: str) -> Any:
    """The JSON object inside a messagePayload (raises ValueError if it holds none)."""
    return json.loads(base64.b64decode(payload, validate=True))
