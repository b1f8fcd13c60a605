"""The handler end to end: real SQS events in, the emulator's peers and an SNS-subscribed queue
out. Every collaborator is a real local server (the KVS emulator, a moto server)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from kvs_local.emulator import Emulator, Faults
from kvs_relay.protocol import MessageType, decode_json_payload

from .conftest import (
    Handler,
    LambdaContextStub,
    OutcomeInbox,
    Peer,
    RequestQueue,
    load_handler,
    moto_client,
    payload_of,
)

Connect = Callable[[str, str | None], Peer]

ANSWER = payload_of({"type": "answer", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"})


def master_answer(channel: str, viewer: str, **extra: Any) -> dict[str, Any]:
    return {
        "channelArn": channel,
        "role": "MASTER",
        "action": "SDP_ANSWER",
        "recipientClientId": viewer,
        "messagePayload": ANSWER,
        **extra,
    }


def failures(response: dict[str, Any]) -> set[str]:
    return {item["itemIdentifier"] for item in response["batchItemFailures"]}


def ids(event: dict[str, Any]) -> list[str]:
    return [record["messageId"] for record in event["Records"]]


def only_outcome(inbox: OutcomeInbox, message_id: str) -> dict[str, Any]:
    outcomes = inbox.by_message_id()[message_id]
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


def test_master_answer_reaches_the_viewer_and_is_reported_sent(
    invoke: Handler,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    channel: str,
    emulator: Emulator,
) -> None:
    viewer = connect_peer(channel, "viewer-1")
    event = request_queue.event([master_answer(channel, "viewer-1")])
    response = invoke(event)
    assert response == {"batchItemFailures": []}
    events = viewer.receive_all()
    assert [(e.message_type, e.message_payload) for e in events] == [
        (MessageType.SDP_ANSWER, ANSWER)
    ]
    [message_id] = ids(event)
    outcome = only_outcome(outcome_inbox, message_id)
    assert outcome["status"] == "SENT"
    assert outcome["correlationIdDerived"] is True
    assert outcome["correlationId"] == f"sqs-{message_id}"
    assert outcome["_attributes"] == {
        "status": "SENT",
        "action": "SDP_ANSWER",
        "channelArn": channel,
    }
    # What the service received carried the derived correlationId.
    [sent] = emulator.sent_by(channel, None)
    assert sent.correlation_id == f"sqs-{message_id}"


def test_viewer_answer_ignores_the_recipient_and_says_so(
    invoke: Handler,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    channel: str,
    emulator: Emulator,
) -> None:
    master = connect_peer(channel, None)
    body = {
        "channelArn": channel,
        "role": "VIEWER",
        "clientId": "viewer-9",
        "recipientClientId": "some-other-viewer",
        "action": "SDP_ANSWER",
        "messagePayload": ANSWER,
        "correlationId": "answer-9",
    }
    event = request_queue.event([body])
    assert invoke(event) == {"batchItemFailures": []}
    [received] = master.receive_all()
    assert received.message_type is MessageType.SDP_ANSWER
    assert received.sender_client_id == "viewer-9"
    [sent] = emulator.sent_by(channel, "viewer-9")
    assert sent.recipient_client_id is None
    outcome = only_outcome(outcome_inbox, ids(event)[0])
    assert outcome["status"] == "SENT"
    assert outcome["recipientIgnored"] is True
    assert outcome["correlationId"] == "answer-9"
    assert outcome["correlationIdDerived"] is False


def test_raw_sdp_offer_from_a_viewer_is_encoded_like_the_sdks(
    invoke: Handler,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    channel: str,
) -> None:
    master = connect_peer(channel, None)
    sdp = "v=0\r\no=- 42 2 IN IP4 127.0.0.1\r\ns=-\r\n"
    body = {
        "channelName": channel.split("/")[1],
        "role": "VIEWER",
        "clientId": "viewer-2",
        "action": "SDP_OFFER",
        "sdp": sdp,
    }
    event = request_queue.event([body])
    assert invoke(event) == {"batchItemFailures": []}
    [offer] = master.receive_all()
    assert offer.message_type is MessageType.SDP_OFFER
    assert offer.message_payload is not None
    assert decode_json_payload(offer.message_payload) == {"type": "offer", "sdp": sdp}
    outcome = only_outcome(outcome_inbox, ids(event)[0])
    assert outcome["channelArn"] == channel
    assert outcome["status"] == "SENT"


def test_ice_candidates_go_in_queue_order_on_one_connection(
    invoke: Handler,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    channel: str,
    emulator: Emulator,
) -> None:
    viewer = connect_peer(channel, "viewer-3")
    candidates = [
        {
            "candidate": f"candidate:{n} 1 udp 1 127.0.0.1 {9000 + n} typ host",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        }
        for n in range(4)
    ]
    bodies: list[dict[str, Any]] = [
        {
            "channelArn": channel,
            "role": "MASTER",
            "recipientClientId": "viewer-3",
            "action": "ICE_CANDIDATE",
            "iceCandidate": candidate,
        }
        for candidate in candidates[:3]
    ]
    bodies.append(
        {
            "channelArn": channel,
            "role": "MASTER",
            "recipientClientId": "viewer-3",
            "action": "ICE_CANDIDATE",
            "messagePayload": payload_of(candidates[3]),
        }
    )
    connects_before = emulator.counters(channel).get("connects", 0)
    event = request_queue.event(bodies)
    assert invoke(event) == {"batchItemFailures": []}
    # The relay sends in the event's order (SQS chose it): the viewer gets exactly that.
    expected = []
    for record in event["Records"]:
        request = json.loads(record["body"])
        expected.append(request.get("messagePayload") or payload_of(request["iceCandidate"]))
    assert [e.message_payload for e in viewer.receive_all()] == expected
    assert sorted(expected) == sorted(payload_of(c) for c in candidates)
    assert emulator.counters(channel)["connects"] - connects_before == 1
    statuses = {o["status"] for o in outcome_inbox.drain()}
    assert statuses == {"SENT"}


@pytest.mark.parametrize(
    ("body", "field", "rule_part"),
    [
        ("not json at all", "body", "JSON"),
        ({"role": "MASTER"}, "action", "required"),
        ({"unknown": 1}, "unknown", "not a known field"),
        ({"recipientClientId": None}, "recipientClientId", "required when role is MASTER"),
        ({"clientId": "v1"}, "clientId", "refused when role is MASTER"),
        ({"role": "VIEWER"}, "clientId", "required when role is VIEWER"),
        ({"messagePayload": "%%%"}, "messagePayload", "base64"),
        ({"messagePayload": "QUFB" * 2561}, "messagePayload", "10240"),
        ({"sdp": "v=0"}, "messagePayload", "exactly one of"),
        ({"correlationId": "no spaces allowed"}, "correlationId", "pattern"),
        ({"channelArn": "arn:aws:s3:::bucket"}, "channelArn", "pattern"),
    ],
)
def test_each_rejection_is_published_and_never_retried(
    invoke_offline: Handler,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    body: dict[str, Any] | str,
    field: str,
    rule_part: str,
) -> None:
    # No KVS behind this handler: a rejection must be decided without contacting the service.
    channel = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/never-used/1"
    if isinstance(body, dict):
        if body == {"role": "MASTER"}:
            text: dict[str, Any] | str = {"channelArn": channel, "role": "MASTER"}
        else:
            text = {
                k: v for k, v in {**master_answer(channel, "v"), **body}.items() if v is not None
            }
    else:
        text = body
    event = request_queue.event([text])
    assert invoke_offline(event) == {"batchItemFailures": []}
    outcome = only_outcome(outcome_inbox, ids(event)[0])
    assert outcome["status"] == "REJECTED"
    assert outcome["_attributes"]["status"] == "REJECTED"
    assert any(v["field"] == field and rule_part in v["rule"] for v in outcome["violations"]), (
        outcome
    )


def test_throttling_status_responses_make_records_retry(
    invoke: Handler,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    channel: str,
    emulator: Emulator,
) -> None:
    viewer = connect_peer(channel, "viewer-4")
    emulator.set_faults(channel, Faults(throttle=True))
    event = request_queue.event(
        [
            master_answer(channel, "viewer-4"),
            master_answer(channel, "viewer-4", correlationId="mine"),
        ]
    )
    response = invoke(event)
    assert failures(response) == set(ids(event))
    assert viewer.receive_all() == []
    for message_id in ids(event):
        outcome = only_outcome(outcome_inbox, message_id)
        assert outcome["status"] == "RETRY"
        assert outcome["statusResponse"]["errorType"] == "ClientLimitExceededException"
        assert outcome["statusResponse"]["correlationId"] == outcome["correlationId"]


def test_pacing_keeps_the_service_from_ever_throttling(
    invoke: Handler,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    channel: str,
    emulator: Emulator,
) -> None:
    # Six offers from one viewer exceed 5/s on its connection; five viewers connecting exceed
    # 3 connects/s on the channel. Both must be paced, not throttled (same SlidingWindow class).
    master = connect_peer(channel, None)
    bodies: list[dict[str, Any]] = [
        {
            "channelArn": channel,
            "role": "VIEWER",
            "clientId": "busy" if n < 6 else f"viewer-{n}",
            "action": "SDP_OFFER",
            "messagePayload": ANSWER,
            "correlationId": f"offer-{n}",
        }
        for n in range(10)
    ]
    event = request_queue.event(bodies)
    assert invoke(event) == {"batchItemFailures": []}
    assert len(master.receive_all()) == 10
    counters = emulator.counters(channel)
    throttled = {k: v for k, v in counters.items() if "throttled" in k and v}
    assert throttled == {}
    assert {o["status"] for o in outcome_inbox.drain()} == {"SENT"}


def test_go_away_mid_batch_reconnects_and_sends_each_message_once(
    invoke: Handler,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    channel: str,
    emulator: Emulator,
) -> None:
    viewer = connect_peer(channel, "viewer-5")
    # The fault counts messages per connection; the peer sends none, so only the relay is hit.
    emulator.set_faults(channel, Faults(go_away_after_messages=2, go_away_close_seconds=0.5))
    payloads = [
        payload_of({"candidate": f"candidate:{n}", "sdpMid": "0", "sdpMLineIndex": 0})
        for n in range(5)
    ]
    bodies = [
        {
            "channelArn": channel,
            "role": "MASTER",
            "recipientClientId": "viewer-5",
            "action": "ICE_CANDIDATE",
            "messagePayload": p,
        }
        for p in payloads
    ]
    event = request_queue.event(bodies)
    assert invoke(event) == {"batchItemFailures": []}
    emulator.clear_faults(channel)
    got = [e.message_payload or "" for e in viewer.receive_all()]
    assert sorted(got) == sorted(payloads)  # every message exactly once
    counters = emulator.counters(channel)
    assert counters.get("go_aways", 0) >= 1
    assert {o["status"] for o in outcome_inbox.drain()} == {"SENT"}


def test_offline_recipient_gets_the_answer_when_it_connects_within_the_ttl(
    invoke: Handler,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    channel: str,
    emulator: Emulator,
) -> None:
    event = request_queue.event([master_answer(channel, "late-viewer")])
    assert invoke(event) == {"batchItemFailures": []}
    assert len(emulator.pending(channel, "late-viewer")) == 1
    assert only_outcome(outcome_inbox, ids(event)[0])["status"] == "SENT"
    late = connect_peer(channel, "late-viewer")
    [answer] = late.receive_all()
    assert answer.message_type is MessageType.SDP_ANSWER
    assert answer.message_payload == ANSWER


def test_fifo_batch_stops_a_group_at_its_first_failure(
    invoke: Handler,
    fifo_request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    emulator: Emulator,
) -> None:
    good = emulator.create_channel(f"fifo-good-{uuid.uuid4().hex[:6]}")
    broken = emulator.create_channel(f"fifo-broken-{uuid.uuid4().hex[:6]}")
    emulator.set_faults(broken, Faults(refuse_handshakes=100, refuse_status=503))
    viewer = connect_peer(good, "fifo-viewer")
    bodies = [
        master_answer(good, "fifo-viewer", correlationId="g1-first"),  # group g1: sent
        master_answer(broken, "x", correlationId="g1-second"),  # group g1: connect refused
        master_answer(good, "fifo-viewer", correlationId="g1-third"),  # g1: must not be sent
        master_answer(good, "fifo-viewer", correlationId="g2-only"),  # group g2: unaffected
    ]
    event = fifo_request_queue.event(bodies, groups=["g1", "g1", "g1", "g2"])
    by_correlation = {
        json.loads(r["body"])["correlationId"]: r["messageId"] for r in event["Records"]
    }
    response = invoke(event)
    assert failures(response) == {by_correlation["g1-second"], by_correlation["g1-third"]}
    received = [str(m.correlation_id) for m in emulator.sent_by(good, None)]
    assert sorted(received) == ["g1-first", "g2-only"]
    assert len(viewer.receive_all()) == 2
    assert only_outcome(outcome_inbox, by_correlation["g1-second"])["status"] == "RETRY"
    emulator.clear_faults(broken)


def test_temporary_credentials_sign_the_connect_url_with_their_token(
    invoke: Handler,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    channel: str,
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_id, secret, token = emulator.issue_session_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    viewer = connect_peer(channel, "viewer-6")
    event = request_queue.event([master_answer(channel, "viewer-6")])
    assert invoke(event) == {"batchItemFailures": []}
    assert len(viewer.receive_all()) == 1
    assert only_outcome(outcome_inbox, ids(event)[0])["status"] == "SENT"


def test_sent_outcomes_can_be_switched_off(
    relay_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    channel: str,
    handler_module: Any,
) -> None:
    monkeypatch.setenv("PUBLISH_SENT_OUTCOMES", "false")
    handler_module._relay = None  # a new container reads the changed environment
    event = request_queue.event([master_answer(channel, "v"), "rejected: not json"])
    response = handler_module.lambda_handler(event, LambdaContextStub())
    assert response == {"batchItemFailures": []}
    assert [o["status"] for o in outcome_inbox.drain()] == ["REJECTED"]


def test_unknown_channel_name_fails_without_retry(
    invoke: Handler, request_queue: RequestQueue, outcome_inbox: OutcomeInbox
) -> None:
    body = {
        "channelName": f"no-such-channel-{uuid.uuid4().hex[:6]}",
        "role": "MASTER",
        "recipientClientId": "v",
        "action": "SDP_ANSWER",
        "messagePayload": base64.b64encode(b"x").decode(),
    }
    event = request_queue.event([body])
    assert invoke(event) == {"batchItemFailures": []}
    outcome = only_outcome(outcome_inbox, ids(event)[0])
    assert outcome["status"] == "FAILED"
    assert "ResourceNotFoundException" in outcome["reason"]


def test_a_failed_outcome_publish_retries_the_record_without_sending_it_twice(
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    relay_env: dict[str, str],
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    channel: str,
) -> None:
    # The outcome topic does not exist yet: a real NotFound from the moto server stands in for
    # an SNS outage. It is created (same ARN) before the record comes back.
    sns = moto_client("sns", moto_endpoint)
    topic_name = f"late-outcomes-{uuid.uuid4().hex[:8]}"
    topic_arn = outcome_inbox.topic_arn.rsplit(":", 1)[0] + ":" + topic_name
    monkeypatch.setenv("OUTCOME_TOPIC_ARN", topic_arn)
    app = load_handler(monkeypatch)
    viewer = connect_peer(channel, "viewer-8")
    event = request_queue.event([master_answer(channel, "viewer-8")])
    assert failures(app.lambda_handler(event, LambdaContextStub())) == set(ids(event))
    assert len(viewer.receive_all()) == 1

    assert sns.create_topic(Name=topic_name)["TopicArn"] == topic_arn
    queue_arn = outcome_inbox.sqs.get_queue_attributes(
        QueueUrl=outcome_inbox.queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    # The same warm container gets the record again: it publishes, and does not resend.
    assert app.lambda_handler(event, LambdaContextStub()) == {"batchItemFailures": []}
    assert len(viewer.receive_all()) == 1
    assert only_outcome(outcome_inbox, ids(event)[0])["status"] == "SENT"
