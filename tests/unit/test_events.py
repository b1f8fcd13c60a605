"""The sample events in events/: well-formed SQS events whose bodies parse as their table says.

EXPECTED names the parse result of every record of every file, in order, so an event that drifts
from the contract (or a contract change that silently turns a sample invalid) fails here.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from kvs_relay.contract import SignalingRequest, parse_request
from kvs_relay.protocol import PAYLOAD_MAX_LENGTH, Action, FieldViolation, Role
from kvs_relay.relay import is_fifo_event

EVENTS = Path(__file__).resolve().parents[2] / "events"
REGION = "us-west-2"
CHANNEL_ARN = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1234567890123"
QUEUE_ARN = re.compile(r"arn:aws:sqs:us-west-2:[0-9]{12}:[A-Za-z0-9_-]{1,75}(\.fifo)?")
RECORD_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}
ATTRIBUTES = {
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
}
FIFO_ATTRIBUTES = {"MessageGroupId", "MessageDeduplicationId", "SequenceNumber"}
MAX_BATCH = 10  # the template's BatchSize default (and the FIFO maximum)


@dataclass(frozen=True)
class Valid:
    """The record parses: the relay sends it as ``role`` with ``action``."""

    role: Role
    action: Action
    recipient_ignored: bool = False


@dataclass(frozen=True)
class Rejected:
    """The record is refused: its violations name exactly these fields, in order."""

    fields: tuple[str, ...]


Expected = Valid | Rejected

MASTER_ANSWER = Valid(Role.MASTER, Action.SDP_ANSWER)
MASTER_ICE = Valid(Role.MASTER, Action.ICE_CANDIDATE)
VIEWER_OFFER = Valid(Role.VIEWER, Action.SDP_OFFER)
VIEWER_ICE = Valid(Role.VIEWER, Action.ICE_CANDIDATE)

EXPECTED: dict[str, list[Expected]] = {
    "master-answer.json": [MASTER_ANSWER, MASTER_ANSWER],
    "viewer-answer.json": [
        Valid(Role.VIEWER, Action.SDP_ANSWER),
        Valid(Role.VIEWER, Action.SDP_ANSWER, recipient_ignored=True),
    ],
    "ice-candidates.json": [MASTER_ICE, MASTER_ICE, VIEWER_ICE, VIEWER_ICE],
    "offer.json": [VIEWER_OFFER],
    "raw-sdp.json": [VIEWER_OFFER, MASTER_ANSWER],
    "invalid-payload.json": [Rejected(("messagePayload",)), Rejected(("messagePayload",))],
    "oversize-payload.json": [Rejected(("messagePayload",)), Rejected(("sdp",))],
    "mixed-batch.json": [
        MASTER_ANSWER,
        Rejected(("clientId",)),
        VIEWER_ICE,
        Rejected(("body",)),
        Rejected(("priority",)),
        Rejected(("channelArn", "messagePayload")),
        VIEWER_OFFER,
    ],
    "fifo-batch.json": [
        VIEWER_OFFER,
        MASTER_ANSWER,
        VIEWER_ICE,
        MASTER_ICE,
        VIEWER_ICE,
        MASTER_ICE,
    ],
}

# The rule text, where the file exists to show one rule.
EXPECTED_RULES: dict[str, list[list[str]]] = {
    "invalid-payload.json": [
        ["messagePayload: must be valid base64"],
        ["messagePayload: must be valid base64"],
    ],
    "oversize-payload.json": [
        [f"messagePayload: String should have at most {PAYLOAD_MAX_LENGTH} characters"],
        [f"sdp: encoded payload exceeds {PAYLOAD_MAX_LENGTH} characters"],
    ],
}


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def records(name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = load(name)["Records"]
    return found


def test_the_table_names_every_event_file() -> None:
    on_disk = {path.name for path in EVENTS.glob("*.json")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_is_a_well_formed_sqs_event(name: str) -> None:
    event = load(name)
    assert set(event) == {"Records"}
    assert 1 <= len(event["Records"]) <= MAX_BATCH
    SqsModel.model_validate(event)  # Powertools' model of the Lambda SQS event
    arns = {record["eventSourceARN"] for record in event["Records"]}
    assert len(arns) == 1, "one event comes from one queue"
    for record in event["Records"]:
        assert set(record) == RECORD_KEYS
        assert str(uuid.UUID(record["messageId"])) == record["messageId"]
        assert record["receiptHandle"]
        assert isinstance(record["body"], str)
        md5 = hashlib.md5(record["body"].encode(), usedforsecurity=False).hexdigest()
        assert record["md5OfBody"] == md5
        assert record["messageAttributes"] == {}
        assert record["eventSource"] == "aws:sqs"
        assert QUEUE_ARN.fullmatch(record["eventSourceARN"])
        assert record["awsRegion"] == REGION
        attributes = record["attributes"]
        assert set(attributes) >= ATTRIBUTES
        assert all(isinstance(value, str) for value in attributes.values())
        assert int(attributes["ApproximateReceiveCount"]) >= 1
        assert int(attributes["ApproximateFirstReceiveTimestamp"]) >= int(
            attributes["SentTimestamp"]
        )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fifo_attributes_exactly_on_fifo_queues(name: str) -> None:
    event = load(name)
    fifo = event["Records"][0]["eventSourceARN"].endswith(".fifo")
    assert is_fifo_event(event) is fifo
    for record in event["Records"]:
        present = FIFO_ATTRIBUTES & set(record["attributes"])
        assert present == (FIFO_ATTRIBUTES if fifo else set())
    if fifo:
        sequence = [int(r["attributes"]["SequenceNumber"]) for r in event["Records"]]
        assert sequence == sorted(set(sequence)), "SequenceNumber grows in queue order"
        for record in event["Records"]:
            # ContentBasedDeduplication: the id is the SHA-256 of the body.
            digest = hashlib.sha256(record["body"].encode()).hexdigest()
            assert record["attributes"]["MessageDeduplicationId"] == digest


def test_message_ids_are_unique_across_files() -> None:
    ids = [record["messageId"] for name in EXPECTED for record in records(name)]
    assert len(ids) == len(set(ids))


def test_the_fifo_sample_interleaves_two_groups() -> None:
    groups = [r["attributes"]["MessageGroupId"] for r in records("fifo-batch.json")]
    assert len(set(groups)) == 2
    assert groups != sorted(groups), "the groups interleave, so lanes are exercised"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_record_parses_as_its_table_says(name: str) -> None:
    expected = EXPECTED[name]
    found = records(name)
    assert len(found) == len(expected), f"{name}: the table lists {len(expected)} records"
    for index, (record, want) in enumerate(zip(found, expected, strict=True)):
        result = parse_request(record["body"])
        where = f"{name} record {index}"
        if isinstance(want, Valid):
            assert isinstance(result, SignalingRequest), f"{where}: {result}"
            assert (result.role, result.action) == (want.role, want.action), where
            assert result.recipient_ignored is want.recipient_ignored, where
            assert len(result.payload()) <= PAYLOAD_MAX_LENGTH, where
            if result.channelArn is not None:
                assert result.channelArn == CHANNEL_ARN, where
            else:
                assert result.channelName == "demo", where
        else:
            assert isinstance(result, list), f"{where}: parsed, expected {want}"
            assert all(isinstance(v, FieldViolation) for v in result)
            assert tuple(v.field for v in result) == want.fields, f"{where}: {result}"


@pytest.mark.parametrize("name", sorted(EXPECTED_RULES))
def test_refusals_carry_the_rule(name: str) -> None:
    for record, rules in zip(records(name), EXPECTED_RULES[name], strict=True):
        result = parse_request(record["body"])
        assert isinstance(result, list)
        assert [str(v) for v in result] == rules


def test_the_oversize_sample_is_over_the_limit_only_once_encoded() -> None:
    first, second = (json.loads(r["body"]) for r in records("oversize-payload.json"))
    assert len(first["messagePayload"]) > PAYLOAD_MAX_LENGTH
    assert len(second["sdp"]) < PAYLOAD_MAX_LENGTH


def test_the_mixed_sample_mixes() -> None:
    kinds = {type(want) for want in EXPECTED["mixed-batch.json"]}
    assert kinds == {Valid, Rejected}
