"""The event-source runner on the local stack: only failed records come back, a record that
always fails ends in the dead-letter queue after maxReceiveCount, and nothing is lost."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kvs_local.demo import function_invoke
from kvs_local.emulator import Emulator, Faults
from kvs_local.invoke import local_function
from kvs_local.sqs_event_source import SqsEventSourceRunner
from kvs_local.stack import LocalStack
from kvs_relay_producer import SignalingProducer

MAX_RECEIVE_COUNT = 2


@pytest.fixture
def stack(moto_endpoint: str, emulator: Emulator) -> Iterator[LocalStack]:
    with LocalStack(
        stack_name=f"runner-{uuid.uuid4().hex[:6]}",
        parameter_overrides={"MaxReceiveCount": str(MAX_RECEIVE_COUNT)},
        moto_endpoint=moto_endpoint,
        emulator=emulator,
    ) as running:
        yield running


def answer(channel: str, viewer: str) -> dict[str, Any]:
    return {
        "channelArn": channel,
        "role": "MASTER",
        "recipientClientId": viewer,
        "action": "SDP_ANSWER",
        "sdp": f"v=0\r\no=- {uuid.uuid4().int % 10**9} 2 IN IP4 127.0.0.1\r\n",
        "correlationId": f"{viewer}-answer",
    }


def queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_only_failed_records_return_and_a_hopeless_one_reaches_the_dlq(
    stack: LocalStack, emulator: Emulator
) -> None:
    state = stack.snapshot()
    sqs = stack.client("sqs")
    settings = state.event_source_settings()
    dlq_url = state.resources["DeadLetterQueue"].ref
    # The template's visibility timeout (six times the function timeout) would keep a failed
    # record away for minutes; one second lets the test see every redelivery.
    sqs.set_queue_attributes(QueueUrl=settings.queue_url, Attributes={"VisibilityTimeout": "1"})
    assert json.loads(
        sqs.get_queue_attributes(QueueUrl=settings.queue_url, AttributeNames=["RedrivePolicy"])[
            "Attributes"
        ]["RedrivePolicy"]
    )["maxReceiveCount"] in (MAX_RECEIVE_COUNT, str(MAX_RECEIVE_COUNT))

    good = stack.ensure_channel(f"good-{uuid.uuid4().hex[:6]}")
    flaky = stack.ensure_channel(f"flaky-{uuid.uuid4().hex[:6]}")
    broken = stack.ensure_channel(f"broken-{uuid.uuid4().hex[:6]}")
    # The relay tries a sender three times per batch: three refusals fail exactly one batch.
    emulator.set_faults(flaky, Faults(refuse_handshakes=3, refuse_status=503))
    emulator.set_faults(broken, Faults(refuse_handshakes=10_000, refuse_status=503))
    inbox = stack.subscribe_queue("OutcomeTopic")

    requests = [answer(good, f"viewer-{n}") for n in range(3)]
    requests += [answer(flaky, "flaky-viewer"), answer(broken, "broken-viewer")]
    report = SignalingProducer(sqs, settings.queue_url).send(requests)
    assert report.ok
    enqueued = {e.index: e.message_id for e in report.enqueued}

    function = local_function(state, build_dir=None).runner("in-process")
    function.start()
    try:
        runner = SqsEventSourceRunner(sqs, settings, function_invoke(function))
        runner.run_until_idle(idle_polls=3, timeout=60)
    finally:
        function.stop()
        emulator.clear_faults(flaky)
        emulator.clear_faults(broken)

    # Every record was sent once or is in the dead-letter queue; none is left, none is lost.
    assert queue_depth(sqs, settings.queue_url) == 0
    dead = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["MessageId"] for m in dead] == [enqueued[4]]
    assert [m.correlation_id for m in emulator.sent_by(good, None)] == [
        "viewer-0-answer",
        "viewer-1-answer",
        "viewer-2-answer",
    ]
    assert [m.correlation_id for m in emulator.sent_by(flaky, None)] == ["flaky-viewer-answer"]
    assert emulator.sent_by(broken, None) == []

    # The first batch held all five; the failed two came back once; on the broken record's next
    # receive SQS moved it to the dead-letter queue instead (maxReceiveCount 2).
    assert runner.stats.batch_sizes == [5, 2]
    assert runner.stats.records_deleted == 4
    assert runner.stats.records_failed == 1 + MAX_RECEIVE_COUNT
    statuses: dict[str, list[str]] = {}
    for item in inbox.drain():
        outcome = item["message"]
        statuses.setdefault(outcome["messageId"], []).append(outcome["status"])
    assert statuses == {
        enqueued[0]: ["SENT"],
        enqueued[1]: ["SENT"],
        enqueued[2]: ["SENT"],
        enqueued[3]: ["RETRY", "SENT"],
        enqueued[4]: ["RETRY"] * MAX_RECEIVE_COUNT,
    }
