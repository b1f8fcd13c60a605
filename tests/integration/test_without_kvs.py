"""The handler when the signaling service cannot be reached (nothing listens on its endpoint):
transient control-plane failures retry, and FIFO groups stop at their first failure.

Real SQS/SNS (moto server); the KVS endpoint is a closed loopback port, a real connect error.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from .conftest import Handler, OutcomeInbox, RequestQueue, payload_of

ARN = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/unreachable/1"


def answer(**extra: Any) -> dict[str, Any]:
    return {
        "channelArn": ARN,
        "role": "MASTER",
        "action": "SDP_ANSWER",
        "recipientClientId": "viewer",
        "messagePayload": payload_of({"type": "answer", "sdp": "v=0"}),
        **extra,
    }


def test_unreachable_service_makes_the_record_retry_and_says_why(
    invoke_offline: Handler, request_queue: RequestQueue, outcome_inbox: OutcomeInbox
) -> None:
    event = request_queue.event([answer()])
    [message_id] = [r["messageId"] for r in event["Records"]]
    response = invoke_offline(event)
    assert response == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    [outcome] = outcome_inbox.drain()
    assert outcome["status"] == "RETRY"
    assert outcome["reason"].startswith("GetSignalingChannelEndpoint: ")
    assert outcome["_attributes"]["status"] == "RETRY"


def test_fifo_group_stops_at_its_first_failure_even_for_later_rejections(
    invoke_offline: Handler, fifo_request_queue: RequestQueue, outcome_inbox: OutcomeInbox
) -> None:
    event = fifo_request_queue.event(
        [answer(correlationId="a1"), "not json", "not json either"],
        groups=["a", "a", "b"],
    )
    first, second, third = (r["messageId"] for r in event["Records"])
    response = invoke_offline(event)
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == {first, second}
    statuses = {o["messageId"]: o["status"] for o in outcome_inbox.drain()}
    assert statuses == {first: "RETRY", second: "RETRY", third: "REJECTED"}


def test_an_all_failed_batch_is_answered_not_raised(
    invoke_offline: Handler, request_queue: RequestQueue
) -> None:
    event = request_queue.event([answer(), answer()])
    response = invoke_offline(event)
    assert len(response["batchItemFailures"]) == 2


def test_metrics_are_emitted_as_emf(
    invoke_offline: Handler,
    request_queue: RequestQueue,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = request_queue.event([answer(), "not json"])
    capsys.readouterr()
    invoke_offline(event)
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert blobs, "no EMF blob printed"
    emf = blobs[-1]
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "KvsSignalingRelayTest"
    assert emf["Rejected"] == [1.0]
    assert emf["Retried"] == [1.0]
    assert emf["Connections"] == [0.0]


def test_logs_carry_correlation_ids_and_never_payloads(
    invoke_offline: Handler,
    request_queue: RequestQueue,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_sdp = "v=0 do-not-log-me"
    event = request_queue.event(
        [answer(messagePayload=None, sdp=secret_sdp, correlationId="log-1")]
    )
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        invoke_offline(event)
    records = [r for r in caplog.records if r.name.startswith("kvs_relay")]
    assert any(getattr(r, "correlation_id", None) == "log-1" for r in records)
    everything = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "do-not-log-me" not in everything
    assert payload_of({"type": "answer", "sdp": secret_sdp}) not in everything
    assert "X-Amz-Signature" not in everything
