"""Properties of the request model (kvs_relay.contract) for any SQS body.

* parse_request never raises: it returns a SignalingRequest, or a non-empty list of violations
  that each name a field and a rule;
* a valid request broken in one way is refused, naming the broken field;
* what the relay accepts, the service accepts: the frame built from any valid request is
  accepted by the emulator's parser and by its hub (no InvalidArgumentException).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kvs_local.emulator.channels import ChannelRegistry
from kvs_local.emulator.signaling import Deliver, SignalingHub
from kvs_relay.contract import SignalingRequest, derived_correlation_id, parse_request
from kvs_relay.protocol import (
    ID_MAX_LENGTH,
    ID_PATTERN,
    PAYLOAD_MAX_LENGTH,
    Action,
    ClientMessage,
    FieldViolation,
    MessageType,
    Role,
    decode_json_payload,
    parse_client_message,
    parse_server_event,
)
from kvs_relay.quotas import SignalingQuotas

from .strategies import (
    SQS_MAX_BODY,
    Mutation,
    hostile_bodies,
    mutated_requests,
    valid_requests,
)

SDP_KIND = {"SDP_OFFER": "offer", "SDP_ANSWER": "answer"}
SLOW_INPUTS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]


def assert_model_or_explained(result: SignalingRequest | list[FieldViolation]) -> None:
    if isinstance(result, SignalingRequest):
        return
    assert isinstance(result, list)
    assert result, "a refusal must list at least one violation"
    for violation in result:
        assert isinstance(violation, FieldViolation)
        assert isinstance(violation.field, str), violation
        assert violation.field, violation  # an unknown member is named as sent, even "\r"
        assert isinstance(violation.rule, str), violation
        assert violation.rule.strip(), violation


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_INPUTS)
@given(body=hostile_bodies)
@example(body="")
@example(body="\x00")
@example(body="\ud800")
@example(body='{"sdp": "\ud800"}')
@example(body='{"sdp": "\\ud800"}')
@example(body='{"\\r": null}')
@example(body='{"": 1}')
@example(body="[" * 100_000 + "]" * 100_000)
@example(body='{"a":' * 100_000 + "1" + "}" * 100_000)
@example(body='{"role": "MASTER", "role": ' + "9" * 5000 + "}")
@example(body=b"\xff\xfe{\x80}".decode("utf-8", "surrogateescape"))
@example(body=json.dumps({"x" * (SQS_MAX_BODY - 20): 1}))
def test_parse_request_never_raises_and_every_refusal_names_a_field_and_a_rule(body: str) -> None:
    assert_model_or_explained(parse_request(body))


@settings(max_examples=300, deadline=None)
@given(mutation=mutated_requests())
def test_a_request_broken_in_one_way_is_refused_naming_that_field(mutation: Mutation) -> None:
    result = parse_request(json.dumps(mutation.body))
    assert isinstance(result, list), f"{mutation.how} was accepted: {mutation.body!r}"
    assert_model_or_explained(result)
    assert mutation.field in {v.field for v in result}, (mutation.how, result)


def test_many_unknown_fields_give_a_bounded_refusal() -> None:
    body = json.dumps({f"k{n:05d}": 1 for n in range(20_000)})
    result = parse_request(body)
    assert isinstance(result, list)
    assert_model_or_explained(result)
    assert 3 <= len(result) <= 20
    assert {"role", "action"} <= {v.field for v in result}
    text = "; ".join(str(v) for v in result)
    assert len(text) < 8 * 1024, "the REJECTED outcome would not fit an SNS message"


def test_a_huge_unknown_field_name_is_named_but_clipped() -> None:
    name = "x" * (SQS_MAX_BODY - 20)
    result = parse_request(json.dumps({name: 1}))
    assert isinstance(result, list)
    [unknown] = [v for v in result if v.rule == "is not a known field"]
    assert name.startswith(unknown.field.removesuffix("..."))
    assert len(unknown.field) <= 100


def _expected_frame(request: dict[str, Any], correlation_id: str) -> ClientMessage:
    parsed = parse_request(json.dumps(request))
    assert isinstance(parsed, SignalingRequest)
    payload: str = request.get("messagePayload") or parsed.payload()
    return ClientMessage(
        action=Action(request["action"]),
        message_payload=payload,
        recipient_client_id=request.get("recipientClientId")
        if request["role"] == "MASTER"
        else None,
        correlation_id=correlation_id,
    )


message_ids = st.one_of(st.uuids().map(str), st.text(max_size=300))


@settings(max_examples=300, deadline=None)
@given(request=valid_requests(), message_id=message_ids)
def test_what_the_relay_accepts_the_service_parser_accepts(
    request: dict[str, Any], message_id: str
) -> None:
    parsed = parse_request(json.dumps(request))
    assert isinstance(parsed, SignalingRequest), parsed
    correlation_id = parsed.correlationId or derived_correlation_id(message_id)
    message = parsed.client_message(correlation_id)
    frame = message.to_json()
    assert len(message.message_payload) <= PAYLOAD_MAX_LENGTH
    for wire in (frame, frame.encode()):
        accepted = parse_client_message(wire, parsed.role)
        assert isinstance(accepted, ClientMessage), accepted
        assert accepted == _expected_frame(request, correlation_id)
    # The payload says what the request said.
    if "sdp" in request:
        assert decode_json_payload(message.message_payload) == {
            "type": SDP_KIND[request["action"]],
            "sdp": request["sdp"],
        }
    if "iceCandidate" in request:
        decoded = decode_json_payload(message.message_payload)
        candidate = request["iceCandidate"]
        assert decoded["candidate"] == candidate["candidate"]
        assert decoded["sdpMid"] == candidate.get("sdpMid")
        assert decoded["sdpMLineIndex"] == candidate.get("sdpMLineIndex")
        assert decoded.get("usernameFragment") == candidate.get("usernameFragment")


@settings(max_examples=100, deadline=None)
@given(request=valid_requests(), message_id=message_ids)
def test_what_the_relay_sends_never_draws_an_invalid_argument_from_the_hub(
    request: dict[str, Any], message_id: str
) -> None:
    """The emulator's hub (the service's decisions, no sockets) takes the frame as sent."""
    parsed = parse_request(json.dumps(request))
    assert isinstance(parsed, SignalingRequest)
    registry = ChannelRegistry()
    channel = registry.create("c", region="us-west-2", account_id="1", now=0.0)
    hub = SignalingHub(registry, SignalingQuotas())
    admitted = hub.admit(channel, parsed.sender_client_id, 0.0)
    assert isinstance(admitted, tuple), admitted
    sender, _ = admitted
    correlation_id = parsed.correlationId or derived_correlation_id(message_id)
    actions = hub.receive(sender.id, parsed.client_message(correlation_id).to_json(), 0.5)
    to_sender = [
        parse_server_event(a.frame)
        for a in actions
        if isinstance(a, Deliver) and a.connection_id == sender.id
    ]
    assert not any(e.message_type is MessageType.STATUS_RESPONSE for e in to_sender), to_sender
    counters = hub.counters(channel.arn)
    assert counters.get("messages_rejected", 0) == 0
    assert counters["messages_accepted"] == 1
    [sent] = hub.sent_by(channel.arn, parsed.sender_client_id)
    assert sent.correlation_id == correlation_id


@given(message_id=message_ids)
def test_a_derived_correlation_id_is_always_a_valid_id(message_id: str) -> None:
    derived = derived_correlation_id(message_id)
    assert ID_PATTERN.fullmatch(derived)
    assert len(derived) <= ID_MAX_LENGTH
    assert derived == derived_correlation_id(message_id)


@given(uuid=st.uuids())
def test_an_sqs_message_id_is_kept_readable_in_the_derived_id(uuid: Any) -> None:
    assert derived_correlation_id(str(uuid)) == f"sqs-{uuid}"


def test_the_largest_sdp_that_fits_is_accepted_and_one_more_character_is_refused() -> None:
    def body(sdp: str) -> str:
        return json.dumps(
            {
                "channelName": "c",
                "role": "VIEWER",
                "clientId": "v",
                "action": "SDP_ANSWER",
                "sdp": sdp,
            }
        )

    # {"type":"answer","sdp":"..."} is 26 characters plus the SDP; 7680 bytes encode to 10240.
    fits = parse_request(body("x" * (7680 - 26)))
    assert isinstance(fits, SignalingRequest)
    assert len(fits.payload()) == PAYLOAD_MAX_LENGTH
    frame = fits.client_message("c-1").to_json()
    assert isinstance(parse_client_message(frame, Role.VIEWER), ClientMessage)
    refused = parse_request(body("x" * (7680 - 25)))
    assert isinstance(refused, list)
    assert [v.field for v in refused] == ["sdp"]
