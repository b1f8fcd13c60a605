"""The request contract: the SQS message body a producer puts on the queue, as one model.

:class:`SignalingRequest` (pydantic v2, as Powertools' parser uses it) is the single source of
truth: the JSON Schema in ``schemas/signaling-request.v1.schema.json`` is generated from it
(``python -m kvs_relay.contract --write-schemas``) and a test fails when the file is stale.

Every refusal names the field and the rule (:func:`request_violations`), so a REJECTED outcome
tells the producer exactly what to fix.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from kvs_relay.protocol import (
    CHANNEL_ARN_PATTERN_TEXT,
    ID_MAX_LENGTH,
    ID_MIN_LENGTH,
    ID_PATTERN_TEXT,
    PAYLOAD_MAX_LENGTH,
    PAYLOAD_MIN_LENGTH,
    Action,
    ClientMessage,
    FieldViolation,
    Role,
    encode_json_payload,
    encode_sdp_payload,
    payload_violation,
)

REQUEST_SCHEMA_VERSION = "v1"
REQUEST_SCHEMA_FILE = f"signaling-request.{REQUEST_SCHEMA_VERSION}.schema.json"
OUTCOME_SCHEMA_FILE = "delivery-outcome.v1.schema.json"

CHANNEL_NAME_PATTERN_TEXT = r"[a-zA-Z0-9_.-]+"
"""KVS channel names: 1 to 256 of these characters (CreateSignalingChannel's ChannelName)."""

_ANCHORED_ID = f"^{ID_PATTERN_TEXT}$"

ClientIdText = Annotated[
    str,
    Field(min_length=ID_MIN_LENGTH, max_length=ID_MAX_LENGTH, pattern=_ANCHORED_ID),
]

_SDP_KIND = {Action.SDP_OFFER: "offer", Action.SDP_ANSWER: "answer"}


def _rule(field: str, rule: str) -> PydanticCustomError:
    # Model-level errors carry no location in pydantic; the context keeps the field's name.
    return PydanticCustomError("request_rule", "{field}: {rule}", {"field": field, "rule": rule})


class IceCandidate(BaseModel):
    """An RTCIceCandidate as ``RTCIceCandidate.toJSON()`` gives it (the browser's shape)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    candidate: str = Field(description="The candidate line, e.g. 'candidate:1 1 udp ...'.")
    sdpMid: str | None = Field(default=None, description="The media stream id.")
    sdpMLineIndex: int | None = Field(default=None, ge=0, description="The index of the m-line.")
    usernameFragment: str | None = Field(
        default=None, description="The ICE username fragment, when the browser gives one."
    )

    def to_payload(self) -> str:
        """Base64 of the candidate JSON, as the official SDKs fill messagePayload."""
        body: dict[str, Any] = {
            "candidate": self.candidate,
            "sdpMid": self.sdpMid,
            "sdpMLineIndex": self.sdpMLineIndex,
        }
        if self.usernameFragment is not None:
            body["usernameFragment"] = self.usernameFragment
        return encode_json_payload(body)


class SignalingRequest(BaseModel):
    """One signaling request: the JSON body of an SQS message on the relay's queue.

    The channel is ``channelArn`` or ``channelName`` (exactly one). The sender is ``role``, plus
    ``clientId`` for a VIEWER (refused for a MASTER). The message is ``action`` and exactly one of
    ``messagePayload`` (base64, as sent on the wire), ``sdp`` (raw SDP, offers and answers) or
    ``iceCandidate`` (ICE candidates). ``recipientClientId`` is required when the sender is the
    MASTER and ignored (and recorded as such in the outcome) when it is a VIEWER.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="SignalingRequest",
        json_schema_extra={
            "$id": f"https://kvs-signaling-relay/schemas/{REQUEST_SCHEMA_FILE}",
            "allOf": [
                {"oneOf": [{"required": ["channelArn"]}, {"required": ["channelName"]}]},
                {
                    "oneOf": [
                        {"required": ["messagePayload"]},
                        {"required": ["sdp"]},
                        {"required": ["iceCandidate"]},
                    ]
                },
                {
                    "if": {"properties": {"role": {"const": "MASTER"}}},
                    "then": {"required": ["recipientClientId"], "not": {"required": ["clientId"]}},
                    "else": {"required": ["clientId"]},
                },
                {
                    "if": {"required": ["sdp"]},
                    "then": {"properties": {"action": {"enum": ["SDP_OFFER", "SDP_ANSWER"]}}},
                },
                {
                    "if": {"required": ["iceCandidate"]},
                    "then": {"properties": {"action": {"const": "ICE_CANDIDATE"}}},
                },
            ],
        },
    )

    channelArn: str | None = Field(
        default=None,
        pattern=f"^{CHANNEL_ARN_PATTERN_TEXT}$",
        max_length=1024,
        description="The signaling channel's ARN. Exactly one of channelArn and channelName.",
    )
    channelName: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=f"^{CHANNEL_NAME_PATTERN_TEXT}$",
        description="The channel's name, resolved with DescribeSignalingChannel (cached).",
    )
    role: Role = Field(description="The role the relay connects as: MASTER or VIEWER.")
    clientId: ClientIdText | None = Field(
        default=None,
        description="The sending viewer's own client id: required for VIEWER, refused for MASTER.",
    )
    action: Action = Field(description="SDP_OFFER, SDP_ANSWER or ICE_CANDIDATE.")
    recipientClientId: ClientIdText | None = Field(
        default=None,
        description="The viewer to send to: required for MASTER; ignored for VIEWER.",
    )
    messagePayload: str | None = Field(
        default=None,
        min_length=PAYLOAD_MIN_LENGTH,
        max_length=PAYLOAD_MAX_LENGTH,
        description="The base64 message content, as on the wire (1 to 10K characters).",
    )
    sdp: str | None = Field(
        default=None,
        min_length=1,
        description='Raw SDP; the relay sends base64 of {"type": "offer"|"answer", "sdp": ...}.',
    )
    iceCandidate: IceCandidate | None = Field(
        default=None,
        description="An RTCIceCandidate object; the relay sends base64 of its JSON.",
    )
    correlationId: ClientIdText | None = Field(
        default=None,
        description="Matches a STATUS_RESPONSE to this request; derived from the message id "
        "when absent.",
    )

    @field_validator("messagePayload")
    @classmethod
    def _payload_is_base64(cls, value: str | None) -> str | None:
        if value is not None and (problem := payload_violation(value)) is not None:
            raise PydanticCustomError("request_rule", "{rule}", {"rule": problem.rule})
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> SignalingRequest:
        if (self.channelArn is None) == (self.channelName is None):
            raise _rule("channelArn", "exactly one of channelArn and channelName is required")
        if self.role is Role.MASTER:
            if self.clientId is not None:
                raise _rule("clientId", "is refused when role is MASTER")
            if self.recipientClientId is None:
                raise _rule("recipientClientId", "is required when role is MASTER")
        elif self.clientId is None:
            raise _rule("clientId", "is required when role is VIEWER")
        forms = [
            name
            for name, value in (
                ("messagePayload", self.messagePayload),
                ("sdp", self.sdp),
                ("iceCandidate", self.iceCandidate),
            )
            if value is not None
        ]
        if len(forms) != 1:
            raise _rule(
                "messagePayload", "exactly one of messagePayload, sdp and iceCandidate is required"
            )
        if self.sdp is not None:
            if self.action not in _SDP_KIND:
                raise _rule("sdp", "is allowed only for SDP_OFFER and SDP_ANSWER")
            if len(self.payload()) > PAYLOAD_MAX_LENGTH:
                raise _rule("sdp", f"encoded payload exceeds {PAYLOAD_MAX_LENGTH} characters")
        if self.iceCandidate is not None:
            if self.action is not Action.ICE_CANDIDATE:
                raise _rule("iceCandidate", "is allowed only for ICE_CANDIDATE")
            if len(self.payload()) > PAYLOAD_MAX_LENGTH:
                raise _rule(
                    "iceCandidate", f"encoded payload exceeds {PAYLOAD_MAX_LENGTH} characters"
                )
        return self

    @property
    def recipient_ignored(self) -> bool:
        """True when a VIEWER named a recipient: the service ignores it, and so do we."""
        return self.role is Role.VIEWER and self.recipientClientId is not None

    @property
    def sender_client_id(self) -> str | None:
        """The client id the relay connects with: the viewer's id, None for the master."""
        return self.clientId if self.role is Role.VIEWER else None

    def payload(self) -> str:
        """The messagePayload to send, encoded from sdp or iceCandidate when given that way."""
        if self.messagePayload is not None:
            return self.messagePayload
        if self.sdp is not None:
            return encode_sdp_payload(_SDP_KIND[self.action], self.sdp)
        if self.iceCandidate is not None:
            return self.iceCandidate.to_payload()
        raise ValueError("request has no payload")  # unreachable after validation

    def client_message(self, correlation_id: str) -> ClientMessage:
        """The frame to send, with ``correlation_id`` (the request's own or a derived one)."""
        return ClientMessage(
            action=self.action,
            message_payload=self.payload(),
            recipient_client_id=self.recipientClientId if self.role is Role.MASTER else None,
            correlation_id=correlation_id,
        )


def derived_correlation_id(message_id: str) -> str:
    """A correlationId for a request without one, derived from its SQS message id.

    SQS message ids are UUIDs (valid for the seed's pattern already); anything else is hashed so
    the result always matches ``[a-zA-Z0-9_.-]+`` and stays within 256 characters.
    """
    candidate = f"sqs-{message_id}"
    if len(candidate) <= ID_MAX_LENGTH and all(
        ch.isascii() and (ch.isalnum() or ch in "_.-") for ch in candidate
    ):
        return candidate
    return "sqs-" + hashlib.sha256(message_id.encode()).hexdigest()


# A refusal is published in the REJECTED outcome, and SNS messages stop at 256 KiB: unknown member
# names come from the body (any length, any number), so they are clipped and counted, not echoed.
MAX_VIOLATIONS = 20
FIELD_NAME_MAX_LENGTH = 64


def _violation_from_error(error: Any) -> FieldViolation:
    context = error.get("ctx") or {}
    if error.get("type") == "request_rule" and "field" in context:
        return FieldViolation(str(context["field"]), str(context["rule"]))
    location = ".".join(str(part) for part in error.get("loc", ())) or "body"
    if len(location) > FIELD_NAME_MAX_LENGTH:
        location = location[:FIELD_NAME_MAX_LENGTH] + "..."
    kind = error.get("type")
    if kind == "extra_forbidden":
        return FieldViolation(location, "is not a known field")
    if kind == "missing":
        return FieldViolation(location, "is required")
    if kind == "string_pattern_mismatch":
        return FieldViolation(location, f"must match the pattern {context.get('pattern')}")
    if kind == "json_invalid":
        return FieldViolation("body", "must be a JSON object")
    if kind == "model_type":
        return FieldViolation(location, "must be a JSON object")
    return FieldViolation(location, str(error.get("msg", "is invalid")))


def request_violations(error: ValidationError) -> list[FieldViolation]:
    """Each broken rule of a refused request, naming the field (dotted for nested ones).

    At most :data:`MAX_VIOLATIONS`: beyond that, the last one counts the rest.
    """
    found = [_violation_from_error(e) for e in error.errors(include_url=False)]
    if len(found) > MAX_VIOLATIONS:
        rest = len(found) - (MAX_VIOLATIONS - 1)
        found = [*found[: MAX_VIOLATIONS - 1], FieldViolation("body", f"{rest} more violations")]
    return found


def parse_request(body: str) -> SignalingRequest | list[FieldViolation]:
    """Validate one SQS body: the request, or every rule it breaks."""
    try:
        return SignalingRequest.model_validate_json(body)
    except ValidationError as exc:
        return request_violations(exc)


def request_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`SignalingRequest` (what the schema file holds)."""
    schema = SignalingRequest.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def outcome_schema() -> dict[str, Any]:
    """The JSON Schema of the outcome message published to SNS."""
    from kvs_relay.outcomes import DeliveryOutcome  # the outcome model imports this module

    schema = DeliveryOutcome.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def schema_files() -> dict[str, str]:
    """File name -> text of every schema file the repository keeps in ``schemas/``."""
    return {
        REQUEST_SCHEMA_FILE: json.dumps(request_schema(), indent=2, sort_keys=True) + "\n",
        OUTCOME_SCHEMA_FILE: json.dumps(outcome_schema(), indent=2, sort_keys=True) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m kvs_relay.contract --write-schemas [--dir schemas]`` (or ``--check``)."""
    parser = argparse.ArgumentParser(prog="python -m kvs_relay.contract")
    parser.add_argument("--dir", type=Path, default=Path("schemas"))
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write-schemas", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for name, text in schema_files().items():
        path: Path = args.dir / name
        if args.write_schemas:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            stale.append(str(path))
    for path_text in stale:
        print(f"stale: {path_text}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "OUTCOME_SCHEMA_FILE",
    "REQUEST_SCHEMA_FILE",
    "IceCandidate",
    "SignalingRequest",
    "derived_correlation_id",
    "parse_request",
    "request_schema",
    "request_violations",
]
