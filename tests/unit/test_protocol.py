"""The protocol core with no sockets: frames in, messages and rejections out."""

from __future__ import annotations

import base64
import json

import pytest

from kvs_relay.protocol import (
    CLIENT_LIMIT_EXCEEDED,
    INVALID_ARGUMENT,
    PAYLOAD_MAX_LENGTH,
    Action,
    ClientMessage,
    EventParseError,
    MessageRejection,
    MessageType,
    Role,
    ServerEvent,
    StatusResponse,
    decode_json_payload,
    encode_ice_candidate_payload,
    encode_sdp_payload,
    parse_client_message,
    parse_server_event,
)

PAYLOAD = base64.b64encode(b'{"type":"answer","sdp":"v=0"}').decode()


def frame(**fields: object) -> str:
    return json.dumps(fields)


def test_master_answer_round_trips() -> None:
    message = ClientMessage(Action.SDP_ANSWER, PAYLOAD, "viewer-1", "corr-1")
    parsed = parse_client_message(message.to_json(), Role.MASTER)
    assert parsed == message
    assert json.loads(message.to_json()) == {
        "action": "SDP_ANSWER",
        "recipientClientId": "viewer-1",
        "messagePayload": PAYLOAD,
        "correlationId": "corr-1",
    }


def test_viewer_recipient_is_ignored() -> None:
    parsed = parse_client_message(
        frame(action="SDP_ANSWER", recipientClientId="not a valid id!", messagePayload=PAYLOAD),
        Role.VIEWER,
    )
    assert isinstance(parsed, ClientMessage)
    assert parsed.recipient_client_id is None


@pytest.mark.parametrize(
    ("fields", "field", "rule_part"),
    [
        ({"messagePayload": PAYLOAD, "recipientClientId": "v"}, "action", "required"),
        (
            {"action": "SDP_PRANSWER", "messagePayload": PAYLOAD, "recipientClientId": "v"},
            "action",
            "one of",
        ),
        ({"action": "SDP_ANSWER", "messagePayload": PAYLOAD}, "recipientClientId", "required"),
        (
            {"action": "SDP_ANSWER", "messagePayload": PAYLOAD, "recipientClientId": "a b"},
            "recipientClientId",
            "pattern",
        ),
        (
            {"action": "SDP_ANSWER", "messagePayload": PAYLOAD, "recipientClientId": "v" * 257},
            "recipientClientId",
            "length",
        ),
        ({"action": "SDP_ANSWER", "recipientClientId": "v"}, "messagePayload", "required"),
        (
            {"action": "SDP_ANSWER", "recipientClientId": "v", "messagePayload": "@@@"},
            "messagePayload",
            "base64",
        ),
        (
            {"action": "SDP_ANSWER", "recipientClientId": "v", "messagePayload": ""},
            "messagePayload",
            "length",
        ),
        (
            {
                "action": "SDP_ANSWER",
                "recipientClientId": "v",
                "messagePayload": "A" * (PAYLOAD_MAX_LENGTH + 4),
            },
            "messagePayload",
            "length",
        ),
    ],
)
def test_rejection_names_field_and_rule(
    fields: dict[str, object], field: str, rule_part: str
) -> None:
    parsed = parse_client_message(json.dumps({**fields, "correlationId": "c-1"}), Role.MASTER)
    assert isinstance(parsed, MessageRejection)
    assert parsed.violation is not None
    assert parsed.violation.field == field
    assert rule_part in parsed.violation.rule
    status = parsed.status_response()
    assert status is not None
    assert status.correlation_id == "c-1"
    assert status.error_type == INVALID_ARGUMENT
    assert status.status_code == "400"
    assert field in status.description


def test_no_status_response_without_correlation_id() -> None:
    parsed = parse_client_message(frame(action="NOPE", messagePayload=PAYLOAD), Role.MASTER)
    assert isinstance(parsed, MessageRejection)
    assert parsed.status_response() is None


def test_not_json_still_answers_its_correlation_id() -> None:
    parsed = parse_client_message('{"correlationId": "c-9", "action": ', Role.MASTER)
    assert isinstance(parsed, MessageRejection)
    status = parsed.status_response()
    assert status is not None
    assert status.correlation_id == "c-9"


def test_invalid_correlation_id_is_refused_and_not_echoed() -> None:
    parsed = parse_client_message(
        frame(action="SDP_ANSWER", recipientClientId="v", messagePayload=PAYLOAD, correlationId=""),
        Role.MASTER,
    )
    assert isinstance(parsed, MessageRejection)
    assert parsed.violation is not None
    assert parsed.violation.field == "correlationId"
    assert parsed.status_response() is None


def test_json_that_is_not_an_object_is_refused() -> None:
    parsed = parse_client_message("[1, 2]", Role.VIEWER)
    assert isinstance(parsed, MessageRejection)
    assert parsed.violation is not None
    assert parsed.violation.field == "message"


def test_server_event_round_trip_with_status() -> None:
    event = ServerEvent(
        MessageType.STATUS_RESPONSE,
        status_response=StatusResponse("c-1", CLIENT_LIMIT_EXCEEDED, "400", "throttled"),
    )
    assert parse_server_event(event.to_json()) == event


def test_relayed_event_keeps_payload_unchanged() -> None:
    raw = frame(senderClientId="viewer-7", messageType="SDP_OFFER", messagePayload=PAYLOAD)
    event = parse_server_event(raw)
    assert event.sender_client_id == "viewer-7"
    assert event.message_payload == PAYLOAD


@pytest.mark.parametrize("raw", ["nope", "[]", '{"messageType": "HELLO"}'])
def test_unparseable_events_raise(raw: str) -> None:
    with pytest.raises(EventParseError):
        parse_server_event(raw)


def test_payload_encoders_match_the_sdks_shapes() -> None:
    assert decode_json_payload(encode_sdp_payload("answer", "v=0\r\n")) == {
        "type": "answer",
        "sdp": "v=0\r\n",
    }
    assert decode_json_payload(encode_ice_candidate_payload("candidate:1 1 udp", "0", 0)) == {
        "candidate": "candidate:1 1 udp",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }
