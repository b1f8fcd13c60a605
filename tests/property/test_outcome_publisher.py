"""Properties of the outcome and its publication (kvs_relay.outcomes).

* any DeliveryOutcome (valid-typed fields, any Unicode in the text fields) serialises to JSON
  that validates against schemas/delivery-outcome.v1.schema.json (formats checked) and reads
  back to the same outcome;
* its SNS message attributes are String, non-empty, and only status/action/channelArn;
* published to a real (moto) SNS topic, generated outcomes reach an SQS subscriber intact.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvs_relay.outcomes import (
    DeliveryOutcome,
    OutcomeStatus,
    SnsOutcomePublisher,
    StatusResponseBody,
    Violation,
)
from kvs_relay.protocol import Action, Role
from tests.integration.conftest import OutcomeInbox, moto_client

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "schemas" / "delivery-outcome.v1.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
ATTRIBUTE_NAMES = {"status", "action", "channelArn"}


def outcome_strategy(text: st.SearchStrategy[str]) -> st.SearchStrategy[DeliveryOutcome]:
    optional = st.none() | text
    # RFC 3339 offsets are whole minutes; the relay stamps UTC.
    zones = st.just(dt.UTC) | st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
        lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
    )
    return st.builds(
        DeliveryOutcome,
        status=st.sampled_from(list(OutcomeStatus)),
        messageId=text,
        correlationId=optional,
        correlationIdDerived=st.booleans(),
        channelArn=optional,
        channelName=optional,
        role=st.none() | st.sampled_from(list(Role)),
        clientId=optional,
        action=st.none() | st.sampled_from(list(Action)),
        recipientClientId=optional,
        recipientIgnored=st.booleans(),
        reason=st.none() | text | st.text(st.characters(exclude_categories=["Cs"]), max_size=2000),
        violations=st.lists(st.builds(Violation, field=text, rule=text), max_size=4),
        statusResponse=st.none()
        | st.builds(
            StatusResponseBody,
            correlationId=text,
            errorType=text,
            statusCode=text,
            description=text,
        ),
        approximateReceiveCount=st.none() | st.integers(),
        messageGroupId=optional,
        occurredAt=st.datetimes(timezones=zones),
    )


# Every Unicode scalar value (NUL, controls, astral, private use, noncharacters).
any_unicode = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
# What SNS and SQS carry: XML 1.0 characters (no C0 controls but tab, LF, CR; no U+FFFE/FFFF).
sns_text = st.text(
    st.characters(
        exclude_categories=["Cs"],
        exclude_characters="".join(chr(c) for c in range(32) if chr(c) not in "\t\n\r")
        + "\ufffe\uffff",
    ),
    max_size=60,
)


class RecordingSns:
    """An SNS client stand-in that keeps what publish was called with."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(kwargs)
        return {"MessageId": "m"}


def check_attributes(outcome: DeliveryOutcome, attributes: dict[str, Any]) -> None:
    assert set(attributes) <= ATTRIBUTE_NAMES
    for name, value in attributes.items():
        assert value == {"DataType": "String", "StringValue": value["StringValue"]}, name
        assert isinstance(value["StringValue"], str), name
        assert value["StringValue"], name
    assert attributes["status"]["StringValue"] == outcome.status.value
    assert ("action" in attributes) == (outcome.action is not None)
    if outcome.action is not None:
        assert attributes["action"]["StringValue"] == outcome.action.value
    assert ("channelArn" in attributes) == bool(outcome.channelArn)
    if outcome.channelArn:
        assert attributes["channelArn"]["StringValue"] == outcome.channelArn


@settings(max_examples=300, deadline=None)
@given(outcome=outcome_strategy(any_unicode))
def test_any_outcome_serialises_to_schema_valid_json_and_reads_back(
    outcome: DeliveryOutcome,
) -> None:
    sns = RecordingSns()
    SnsOutcomePublisher(sns, "arn:aws:sns:us-west-2:123456789012:outcomes").publish(outcome)
    [call] = sns.calls
    assert call["TopicArn"] == "arn:aws:sns:us-west-2:123456789012:outcomes"
    message = call["Message"]
    assert isinstance(message, str)
    errors = [e.message for e in VALIDATOR.iter_errors(json.loads(message))]
    assert errors == []
    assert DeliveryOutcome.model_validate_json(message) == outcome
    check_attributes(outcome, call["MessageAttributes"])


@settings(max_examples=300, deadline=None)
@given(outcome=outcome_strategy(any_unicode))
def test_sns_attributes_are_non_empty_strings_named_status_action_channel_arn(
    outcome: DeliveryOutcome,
) -> None:
    check_attributes(outcome, outcome.sns_attributes())


def test_an_outcome_with_a_lone_surrogate_from_the_service_can_still_be_published() -> None:
    outcome = DeliveryOutcome(
        status=OutcomeStatus.FAILED,
        messageId="m-1",
        statusResponse=StatusResponseBody(
            correlationId="c-1", errorType="X\ud800", statusCode="400", description="\udc80"
        ),
        occurredAt=dt.datetime.now(dt.UTC),
    )
    sns = RecordingSns()
    SnsOutcomePublisher(sns, "arn:aws:sns:us-west-2:123456789012:outcomes").publish(outcome)
    assert len(sns.calls) == 1


def _receive_all(inbox: OutcomeInbox, expected: int) -> list[dict[str, Any]]:
    """The SNS envelopes delivered to the subscribed queue (deleted once read)."""
    envelopes: list[dict[str, Any]] = []
    for _ in range(20):
        got = inbox.sqs.receive_message(
            QueueUrl=inbox.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        for message in got:
            envelopes.append(json.loads(message["Body"]))
            inbox.sqs.delete_message(
                QueueUrl=inbox.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        if len(envelopes) >= expected and not got:
            break
    return envelopes


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(outcomes=st.lists(outcome_strategy(sns_text), min_size=1, max_size=3))
def test_published_outcomes_reach_an_sqs_subscriber_intact(
    outcomes: list[DeliveryOutcome], outcome_inbox: OutcomeInbox, moto_endpoint: str
) -> None:
    publisher = SnsOutcomePublisher(moto_client("sns", moto_endpoint), outcome_inbox.topic_arn)
    for outcome in outcomes:
        publisher.publish(outcome)
    envelopes = _receive_all(outcome_inbox, len(outcomes))
    assert len(envelopes) == len(outcomes)
    received = []
    for envelope in envelopes:
        body = json.loads(envelope["Message"])
        assert list(VALIDATOR.iter_errors(body)) == []
        attributes = envelope.get("MessageAttributes", {})
        assert all(value["Type"] == "String" for value in attributes.values())
        received.append(
            (_canonical(body), {name: value["Value"] for name, value in attributes.items()})
        )
    expected = [
        (
            _canonical(json.loads(outcome.model_dump_json())),
            {name: value["StringValue"] for name, value in outcome.sns_attributes().items()},
        )
        for outcome in outcomes
    ]
    assert sorted(received, key=lambda r: r[0]) == sorted(expected, key=lambda r: r[0])
