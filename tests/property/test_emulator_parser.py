"""Properties of the service's frame parser (kvs_relay.protocol.parse_client_message), which the
emulator's hub applies to every frame a client sends, for both roles:

* it never raises, for any str or bytes;
* a rejection is an InvalidArgumentException/400 that names a field and a rule;
* it carries a correlationId only if the frame carried a valid one (and then always does);
* an accepted message re-serialises (to_json) to a frame that parses to the same message.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kvs_relay.protocol import (
    BAD_REQUEST_STATUS,
    ID_MAX_LENGTH,
    ID_PATTERN,
    INVALID_ARGUMENT,
    ClientMessage,
    MessageRejection,
    Role,
    id_violation,
    parse_client_message,
    payload_violation,
)

from .strategies import (
    any_text,
    bad_ids,
    decoded_bytes,
    deep_json,
    ids,
    json_values,
    not_base64,
    not_strings,
    oversized_text,
    payloads,
    unicode_text,
)

roles = st.sampled_from(list(Role))
actions = st.sampled_from(["SDP_OFFER", "SDP_ANSWER", "ICE_CANDIDATE"])


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(value, json_values, not_strings, st.none())


# Frames shaped like client messages, each field valid, invalid, mistyped or absent.
shaped_frames = st.fixed_dictionaries(
    {},
    optional={
        "action": _maybe(actions | unicode_text),
        "recipientClientId": _maybe(ids | bad_ids),
        "messagePayload": _maybe(payloads | not_base64),
        "correlationId": _maybe(ids | bad_ids),
        "extra": json_values,
    },
)


def _as_wire(body: Any, as_bytes: bool) -> str | bytes:
    text = json.dumps(body)
    return text.encode() if as_bytes else text


frames: st.SearchStrategy[str | bytes] = st.one_of(
    any_text,
    st.binary(max_size=400),
    decoded_bytes,
    deep_json,
    oversized_text,
    json_values.map(json.dumps),
    st.builds(_as_wire, shaped_frames, st.booleans()),
    # Broken JSON that still spells a correlationId, as a sloppy client might send it.
    st.builds('{{"correlationId": "{}", {}'.format, ids | bad_ids, any_text),
)


def _json_object(frame: str | bytes) -> dict[str, Any] | None:
    text = frame.decode("utf-8", errors="replace") if isinstance(frame, bytes) else frame
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def _text_of(frame: str | bytes) -> str:
    return frame.decode("utf-8", errors="replace") if isinstance(frame, bytes) else frame


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(frame=frames, role=roles)
# Both found by this test: a JSON action that is not hashable raised TypeError, and a deeply
# nested frame raised RecursionError (json.loads), either of which crashed the hub's worker.
@example(frame='{"action": []}', role=Role.MASTER)
@example(frame=b'{"action": {"a": 1}, "correlationId": "c-1"}', role=Role.VIEWER)
@example(frame="[" * 100_000 + "]" * 100_000, role=Role.MASTER)
@example(frame='{"correlationId": "c-2", "x": ' + "[" * 100_000, role=Role.VIEWER)
@example(frame="\ud800", role=Role.MASTER)
@example(frame=b"\xff\xfe\x00", role=Role.VIEWER)
def test_any_frame_is_parsed_or_rejected_naming_a_field_and_a_rule(
    frame: str | bytes, role: Role
) -> None:
    result = parse_client_message(frame, role)
    body = _json_object(frame)
    carried = body.get("correlationId") if body is not None else None
    carried_valid = id_violation("correlationId", carried, required=True) is None
    if isinstance(result, MessageRejection):
        assert result.violation is not None
        assert result.violation.field.strip()
        assert result.violation.rule.strip()
        assert result.error_type == INVALID_ARGUMENT
        assert result.status_code == BAD_REQUEST_STATUS
        assert result.description == str(result.violation)
        answer = result.status_response()
        assert (answer is None) == (result.correlation_id is None)
        correlation_id = result.correlation_id
    else:
        assert isinstance(result, ClientMessage)
        assert result.violations(role) == []
        correlation_id = result.correlation_id
    if correlation_id is not None:
        assert ID_PATTERN.fullmatch(correlation_id)
        assert len(correlation_id) <= ID_MAX_LENGTH
        if body is not None:
            assert correlation_id == carried
        else:
            spelled = r'"correlationId"\s*:\s*"' + re.escape(correlation_id) + '"'
            assert re.search(spelled, _text_of(frame)), "a correlationId the frame did not carry"
    elif body is not None and carried_valid:
        raise AssertionError(f"the frame's valid correlationId {carried!r} was dropped")


@settings(max_examples=300, deadline=None)
@given(frame=frames, role=roles)
def test_an_accepted_message_round_trips_through_to_json(frame: str | bytes, role: Role) -> None:
    result = parse_client_message(frame, role)
    if not isinstance(result, ClientMessage):
        return
    assert parse_client_message(result.to_json(), role) == result
    assert parse_client_message(result.to_json().encode(), role) == result


valid_frames = st.fixed_dictionaries(
    {"action": actions, "messagePayload": payloads},
    optional={"recipientClientId": ids, "correlationId": ids, "extra": json_values},
)


@settings(max_examples=300, deadline=None)
@given(body=valid_frames, role=roles, as_bytes=st.booleans())
def test_a_valid_frame_is_accepted_and_round_trips(
    body: dict[str, Any], role: Role, as_bytes: bool
) -> None:
    result = parse_client_message(_as_wire(body, as_bytes), role)
    if role is Role.MASTER and "recipientClientId" not in body:
        assert isinstance(result, MessageRejection)
        assert result.violation is not None
        assert result.violation.field == "recipientClientId"
        assert result.correlation_id == body.get("correlationId")
        return
    assert isinstance(result, ClientMessage), result
    assert result.action.value == body["action"]
    assert result.message_payload == body["messagePayload"]
    assert payload_violation(result.message_payload) is None
    assert result.correlation_id == body.get("correlationId")
    # A viewer's recipientClientId is ignored by the service.
    expected_recipient = body.get("recipientClientId") if role is Role.MASTER else None
    assert result.recipient_client_id == expected_recipient
    assert parse_client_message(result.to_json(), role) == result
