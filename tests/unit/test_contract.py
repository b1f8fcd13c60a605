"""The request contract: every acceptance and refusal rule, the encoders, the schema files."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvs_relay.contract import (
    SignalingRequest,
    derived_correlation_id,
    parse_request,
    request_schema,
    schema_files,
)
from kvs_relay.protocol import ID_PATTERN, Action, FieldViolation, decode_json_payload

REPO = Path(__file__).resolve().parents[2]
ARN = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1234567890123"
PAYLOAD = base64.b64encode(b'{"type":"answer","sdp":"v=0"}').decode()


def body(**fields: Any) -> str:
    base: dict[str, Any] = {
        "channelArn": ARN,
        "role": "MASTER",
        "action": "SDP_ANSWER",
        "recipientClientId": "viewer-1",
        "messagePayload": PAYLOAD,
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


def refusal(text: str) -> list[FieldViolation]:
    result = parse_request(text)
    assert isinstance(result, list), "expected a refusal"
    return result


def test_master_answer_is_accepted_and_framed_with_the_given_correlation_id() -> None:
    request = SignalingRequest.model_validate_json(body(correlationId="c-1"))
    message = request.client_message("c-1")
    assert json.loads(message.to_json()) == {
        "action": "SDP_ANSWER",
        "recipientClientId": "viewer-1",
        "messagePayload": PAYLOAD,
        "correlationId": "c-1",
    }
    assert request.sender_client_id is None
    assert not request.recipient_ignored


def test_viewer_recipient_is_ignored_and_not_sent() -> None:
    request = SignalingRequest.model_validate_json(
        body(role="VIEWER", clientId="viewer-7", recipientClientId="someone")
    )
    assert request.recipient_ignored
    assert request.sender_client_id == "viewer-7"
    assert "recipientClientId" not in json.loads(request.client_message("c").to_json())


def test_viewer_without_recipient_is_accepted() -> None:
    request = SignalingRequest.model_validate_json(
        body(role="VIEWER", clientId="v", recipientClientId=None, action="SDP_OFFER")
    )
    assert not request.recipient_ignored
    assert request.action is Action.SDP_OFFER


def test_channel_name_is_accepted_instead_of_arn() -> None:
    request = SignalingRequest.model_validate_json(body(channelArn=None, channelName="demo"))
    assert request.channelName == "demo"


@pytest.mark.parametrize(("action", "kind"), [("SDP_ANSWER", "answer"), ("SDP_OFFER", "offer")])
def test_raw_sdp_is_encoded_as_the_sdks_do(action: str, kind: str) -> None:
    sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"
    request = SignalingRequest.model_validate_json(
        body(action=action, messagePayload=None, sdp=sdp)
    )
    assert decode_json_payload(request.payload()) == {"type": kind, "sdp": sdp}


def test_ice_candidate_object_is_encoded_as_its_json() -> None:
    candidate = {
        "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }
    request = SignalingRequest.model_validate_json(
        body(action="ICE_CANDIDATE", messagePayload=None, iceCandidate=candidate)
    )
    assert decode_json_payload(request.payload()) == candidate


@pytest.mark.parametrize(
    ("fields", "field", "rule_part"),
    [
        ({"extra": 1}, "extra", "not a known field"),
        ({"channelArn": None}, "channelArn", "exactly one of channelArn and channelName"),
        ({"channelName": "demo"}, "channelArn", "exactly one of channelArn and channelName"),
        ({"channelArn": "arn:aws:s3:::bucket"}, "channelArn", "pattern"),
        ({"channelArn": None, "channelName": "bad name"}, "channelName", "pattern"),
        ({"role": "OBSERVER"}, "role", "MASTER"),
        ({"role": None}, "role", "required"),
        ({"clientId": "v-1"}, "clientId", "refused when role is MASTER"),
        ({"role": "VIEWER"}, "clientId", "required when role is VIEWER"),
        ({"role": "VIEWER", "clientId": "bad id"}, "clientId", "pattern"),
        ({"role": "VIEWER", "clientId": "x" * 257}, "clientId", "256"),
        ({"recipientClientId": None}, "recipientClientId", "required when role is MASTER"),
        ({"recipientClientId": "a/b"}, "recipientClientId", "pattern"),
        ({"recipientClientId": ""}, "recipientClientId", "at least 1"),
        ({"action": "GO_AWAY"}, "action", "SDP_OFFER"),
        ({"messagePayload": "not base64!"}, "messagePayload", "base64"),
        ({"messagePayload": ""}, "messagePayload", "at least 1"),
        ({"messagePayload": "QUFB" * 2561}, "messagePayload", "10240"),
        ({"messagePayload": None}, "messagePayload", "exactly one of messagePayload"),
        ({"sdp": "v=0"}, "messagePayload", "exactly one of messagePayload"),
        ({"messagePayload": None, "action": "ICE_CANDIDATE", "sdp": "v=0"}, "sdp", "only for SDP"),
        (
            {"messagePayload": None, "iceCandidate": {"candidate": "c"}},
            "iceCandidate",
            "only for ICE_CANDIDATE",
        ),
        (
            {"messagePayload": None, "action": "ICE_CANDIDATE", "iceCandidate": {"x": 1}},
            "iceCandidate.candidate",
            "required",
        ),
        ({"messagePayload": None, "sdp": "v" * 8000}, "sdp", "exceeds 10240"),
        ({"correlationId": "has space"}, "correlationId", "pattern"),
        ({"correlationId": "c" * 257}, "correlationId", "256"),
    ],
)
def test_each_refusal_names_the_field_and_the_rule(
    fields: dict[str, Any], field: str, rule_part: str
) -> None:
    violations = (
        refusal(body(**fields))
        if "extra" not in fields
        else refusal(json.dumps({**json.loads(body()), **fields}))
    )
    assert any(v.field == field and rule_part in v.rule for v in violations), violations


def test_a_body_that_is_not_json_is_refused() -> None:
    assert refusal("not json")[0].field == "body"
    assert refusal("[1, 2]")[0].rule == "must be a JSON object"


@given(st.text(min_size=1, max_size=300))
def test_derived_correlation_ids_always_match_the_seed_pattern(message_id: str) -> None:
    derived = derived_correlation_id(message_id)
    assert ID_PATTERN.fullmatch(derived)
    assert 1 <= len(derived) <= 256
    assert derived == derived_correlation_id(message_id)


def test_sqs_uuid_message_ids_stay_readable_in_derived_ids() -> None:
    message_id = "059f36b4-87a3-44ab-83d2-661975830a7d"
    assert derived_correlation_id(message_id) == f"sqs-{message_id}"


def test_schema_files_are_up_to_date_with_the_models() -> None:
    for name, text in schema_files().items():
        path = REPO / "schemas" / name
        assert path.exists(), f"{path} missing: python -m kvs_relay.contract --write-schemas"
        assert path.read_text() == text, (
            f"{path} stale: python -m kvs_relay.contract --write-schemas"
        )


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        (body(), True),
        (body(role="VIEWER", clientId="v"), True),
        (body(messagePayload=None, sdp="v=0"), True),
        (body(channelName="demo"), False),
        (body(clientId="v"), False),
        (body(role="VIEWER"), False),
        (body(messagePayload=None), False),
        (body(messagePayload=None, action="ICE_CANDIDATE", sdp="v=0"), False),
        (body(correlationId="bad id"), False),
    ],
)
def test_the_json_schema_agrees_with_the_model(text: str, valid: bool) -> None:
    instance = json.loads(text)
    schema_ok = jsonschema.Draft202012Validator(request_schema()).is_valid(instance)
    model_ok = not isinstance(parse_request(text), list)
    assert schema_ok == model_ok == valid
