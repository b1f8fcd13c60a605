"""The handler end to end with bad SQS bodies: each record is REJECTED once, nothing is sent.

The function runs with the ``invoke_offline`` environment: real SNS/SQS (moto server), and a KVS
endpoint on a closed loopback port. A body that got past validation would be resolved or
delivered, and the closed port would turn it into RETRY (a batchItemFailure), so "every record
REJECTED, no batchItemFailures, no connections" also proves nothing was sent.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kvs_relay.contract import parse_request
from tests.integration.conftest import REGION, Handler, OutcomeInbox, RequestQueue

from .strategies import (
    SQS_MAX_BODY,
    any_text,
    decoded_bytes,
    json_non_objects,
    json_objects,
    many_unknown_fields,
    mutated_requests,
    oversized_requests,
    oversized_text,
)

QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:requests"
SLOW = [
    HealthCheck.function_scoped_fixture,
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
]


def sqs_record(body: str) -> dict[str, Any]:
    """One record as Lambda's SQS event source hands it to the function."""
    message_id = str(uuid.uuid4())
    digest = hashlib.md5(body.encode("utf-8", "surrogatepass"), usedforsecurity=False)
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1700000000000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1700000000001",
        },
        "messageAttributes": {},
        "md5OfBody": digest.hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": REGION,
    }


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# Nesting beyond Python's recursion limit has a test of its own below.
moderately_nested = st.builds(_nested, st.integers(1, 500)) | st.builds(
    lambda depth: '{"a":' * depth + "1" + "}" * depth, st.integers(1, 500)
)
huge_unknown_field = st.builds(
    lambda size: json.dumps({"x" * size: 1}), st.integers(300, SQS_MAX_BODY - 20)
)

bad_bodies = st.one_of(
    any_text,
    decoded_bytes,
    json_objects,
    json_non_objects,
    mutated_requests().map(lambda m: json.dumps(m.body)),
    moderately_nested,
    oversized_text,
    oversized_requests(),
    many_unknown_fields,
    huge_unknown_field,
).filter(lambda body: isinstance(parse_request(body), list))


def assert_each_rejected_once(
    event: dict[str, Any], response: dict[str, Any], inbox: OutcomeInbox
) -> None:
    assert response == {"batchItemFailures": []}
    grouped = inbox.by_message_id()
    for record in event["Records"]:
        outcomes = grouped.get(record["messageId"], [])
        assert len(outcomes) == 1, (record["body"][:200], outcomes)
        [outcome] = outcomes
        assert outcome["status"] == "REJECTED", (record["body"][:200], outcome["reason"])
        assert outcome["_attributes"]["status"] == "REJECTED"
        assert set(outcome["_attributes"]) <= {"status", "action", "channelArn"}
        assert outcome["reason"]
        assert outcome["violations"]
        assert all(v["field"] and v["rule"].strip() for v in outcome["violations"])
        assert outcome["correlationId"]


def emf_blobs(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW)
@given(bodies=st.lists(bad_bodies, min_size=1, max_size=4))
@example(bodies=[json.dumps({f"k{n:05d}": 1 for n in range(20_000)})])
@example(bodies=[json.dumps({"x" * (SQS_MAX_BODY - 20): 1})])
@example(bodies=["\ud800", "\x00", "", "[]"])
def test_bad_bodies_are_each_rejected_once_and_nothing_is_sent(
    bodies: list[str],
    invoke_offline: Handler,
    outcome_inbox: OutcomeInbox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    event = {"Records": [sqs_record(body) for body in bodies]}
    response = invoke_offline(event)
    assert_each_rejected_once(event, response, outcome_inbox)
    [emf] = emf_blobs(capsys.readouterr().out)
    assert sum(emf["Rejected"]) == len(bodies)  # one value per record
    assert emf["Connections"] == [0.0]
    assert {"Retried", "Sent", "Failed", "OutcomePublishFailed"}.isdisjoint(emf)


@settings(max_examples=12, deadline=None, suppress_health_check=SLOW)
@given(
    bodies=st.lists(
        # SQS takes Unicode text (no lone surrogates) up to 1 MiB.
        bad_bodies.filter(
            lambda body: (
                not any(0xD800 <= ord(ch) <= 0xDFFF for ch in body)
                and len(body.encode()) < 1024 * 1024
            )
        ),
        min_size=1,
        max_size=4,
    )
)
def test_bad_bodies_through_a_real_queue_are_each_rejected_once(
    bodies: list[str],
    invoke_offline: Handler,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
) -> None:
    """The same, with the event built from what SQS (moto) returns for the sent bodies."""
    event = request_queue.event(bodies)
    assert sorted(r["body"] for r in event["Records"]) == sorted(bodies)
    response = invoke_offline(event)
    assert_each_rejected_once(event, response, outcome_inbox)


def test_a_body_nested_deeper_than_the_recursion_limit_is_rejected_not_raised(
    invoke_offline: Handler, outcome_inbox: OutcomeInbox
) -> None:
    event = {"Records": [sqs_record(_nested(100_000)), sqs_record("not json")]}
    response = invoke_offline(event)
    assert_each_rejected_once(event, response, outcome_inbox)
