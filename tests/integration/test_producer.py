"""The producer client against a real SQS (moto server): validation before sending, batches of
ten, FIFO group and deduplication ids, partial failures, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from kvs_relay.contract import parse_request
from kvs_relay_producer import InvalidRequest, SignalingProducer, message_group_id

from .conftest import REGION, moto_client

CHANNEL = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1234567890123"


def answer(viewer: str, n: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "channelArn": CHANNEL,
        "role": "MASTER",
        "recipientClientId": viewer,
        "action": "SDP_ANSWER",
        "sdp": f"v=0\r\no=- {n} 2 IN IP4 127.0.0.1\r\n",
        **extra,
    }


def new_queue(sqs: Any, fifo: bool = False) -> str:
    name = f"producer-{uuid.uuid4().hex[:8]}" + (".fifo" if fifo else "")
    attributes = {"FifoQueue": "true"} if fifo else {}
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return got
        got += batch
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_requests_are_sent_in_batches_of_ten_and_arrive_valid(moto_endpoint: str) -> None:
    sqs = moto_client("sqs", moto_endpoint)
    url = new_queue(sqs)
    producer = SignalingProducer(sqs, url)
    report = producer.send([answer(f"viewer-{n}", n) for n in range(25)])
    assert report.ok
    assert report.calls == 3
    assert [e.index for e in report.enqueued] == list(range(25))
    bodies = [m["Body"] for m in drain(sqs, url)]
    assert len(bodies) == 25
    for body in bodies:
        assert not isinstance(parse_request(body), list)


def test_an_invalid_request_names_the_field_and_nothing_is_sent(moto_endpoint: str) -> None:
    sqs = moto_client("sqs", moto_endpoint)
    url = new_queue(sqs)
    producer = SignalingProducer(sqs, url)
    good = answer("viewer-1")
    bad = answer("viewer-2", clientId="not-for-a-master")
    with pytest.raises(InvalidRequest) as caught:
        producer.send([good, bad])
    assert caught.value.index == 1
    assert [(v.field, v.rule) for v in caught.value.violations] == [
        ("clientId", "is refused when role is MASTER")
    ]
    assert drain(sqs, url) == []


def test_fifo_sets_the_group_and_deduplicates_a_retried_request(moto_endpoint: str) -> None:
    sqs = moto_client("sqs", moto_endpoint)
    url = new_queue(sqs, fifo=True)
    producer = SignalingProducer(sqs, url)
    assert producer.fifo
    first = producer.send([answer("viewer-1", 1, correlationId="answer-1"), answer("viewer-2", 2)])
    again = producer.send([answer("viewer-1", 1, correlationId="answer-1")])
    assert first.ok
    assert again.ok
    assert [e.message_group_id for e in first.enqueued] == [
        f"{CHANNEL}|viewer-1",
        f"{CHANNEL}|viewer-2",
    ]
    received = drain(sqs, url)
    # The retry within the deduplication window was not enqueued a second time.
    assert sorted(m["Attributes"]["MessageGroupId"] for m in received) == [
        f"{CHANNEL}|viewer-1",
        f"{CHANNEL}|viewer-2",
    ]


def test_a_viewers_requests_are_grouped_by_its_own_id() -> None:
    request = parse_request(
        json.dumps(
            {
                "channelName": "demo",
                "role": "VIEWER",
                "clientId": "viewer-7",
                "action": "SDP_OFFER",
                "sdp": "v=0",
            }
        )
    )
    assert not isinstance(request, list)
    assert message_group_id(request) == "demo|viewer-7"
    long = parse_request(json.dumps({**answer("v" * 200)}))
    assert not isinstance(long, list)
    assert message_group_id(long).startswith("sha256-")
    assert len(message_group_id(long)) <= 128


class FailingFirstCall:
    """The real moto client, except that the first SendMessageBatch reports some entries as
    failed on SQS's side (SenderFault false). No local server produces that fault on demand,
    so this one call is faked; every other call, and the retry, reach the moto server."""

    def __init__(self, sqs: Any, failing_ids: set[str], sender_fault: bool) -> None:
        self._sqs = sqs
        self._failing = failing_ids
        self._sender_fault = sender_fault
        self.calls = 0

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        self.calls += 1
        if self.calls > 1:
            return self._sqs.send_message_batch(QueueUrl=QueueUrl, Entries=Entries)
        passing = [e for e in Entries if e["Id"] not in self._failing]
        response = self._sqs.send_message_batch(QueueUrl=QueueUrl, Entries=passing)
        response["Failed"] = [
            {
                "Id": e["Id"],
                "SenderFault": self._sender_fault,
                "Code": "InternalError" if not self._sender_fault else "InvalidParameterValue",
                "Message": "injected",
            }
            for e in Entries
            if e["Id"] in self._failing
        ]
        return response


def test_entries_sqs_failed_on_its_side_are_retried(moto_endpoint: str) -> None:
    sqs = moto_client("sqs", moto_endpoint)
    url = new_queue(sqs)
    flaky = FailingFirstCall(sqs, {"1", "3"}, sender_fault=False)
    report = SignalingProducer(flaky, url, sleep=lambda _: None).send(
        [answer(f"v{n}", n) for n in range(5)]
    )
    assert report.ok
    assert report.calls == 2
    assert len(drain(sqs, url)) == 5  # each exactly once


def test_entries_refused_as_the_senders_fault_are_reported_not_retried(
    moto_endpoint: str,
) -> None:
    sqs = moto_client("sqs", moto_endpoint)
    url = new_queue(sqs)
    refusing = FailingFirstCall(sqs, {"2"}, sender_fault=True)
    report = SignalingProducer(refusing, url, sleep=lambda _: None).send(
        [answer(f"v{n}", n) for n in range(3)]
    )
    assert not report.ok
    assert report.calls == 1
    assert [(f.index, f.code, f.sender_fault) for f in report.failed] == [
        (2, "InvalidParameterValue", True)
    ]
    assert len(drain(sqs, url)) == 2


def run_cli(moto_endpoint: str, url: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDMOTOTEST",
        "AWS_SECRET_ACCESS_KEY": "moto-test-secret",
        "AWS_DEFAULT_REGION": REGION,
    }
    return subprocess.run(
        [sys.executable, "-m", "kvs_relay_producer", "--queue-url", url],
        input=stdin,
        env={**env, "AWS_ENDPOINT_URL_SQS": moto_endpoint},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_enqueues_json_lines_and_refuses_bad_input(moto_endpoint: str) -> None:
    sqs = moto_client("sqs", moto_endpoint)
    url = new_queue(sqs)
    lines = "\n".join(json.dumps(answer(f"v{n}", n)) for n in range(3))
    done = run_cli(moto_endpoint, url, lines)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["enqueued"]) == 3
    assert len(drain(sqs, url)) == 3

    refused = run_cli(moto_endpoint, url, json.dumps([answer("v1"), {"role": "MASTER"}]))
    assert refused.returncode == 2
    problem = json.loads(refused.stderr)
    assert problem["index"] == 1
    assert {"field": "action", "rule": "is required"} in problem["violations"]
    assert drain(sqs, url) == []
