"""Redeliveries never send twice: the relay's ledger in DynamoDB (moto server) with Powertools
Idempotency, across cold starts, an invocation that died mid-send, and a concurrent duplicate."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from kvs_local.emulator import Emulator
from kvs_relay.idempotency import IdempotencyLedger, idempotency_config
from kvs_relay.relay import Remembered

from .conftest import (
    REGION,
    LambdaContextStub,
    OutcomeInbox,
    Peer,
    RequestQueue,
    load_handler,
    moto_client,
    payload_of,
)

Connect = Callable[[str, str | None], Peer]
ANSWER = payload_of({"type": "answer", "sdp": "v=0\r\n"})


@pytest.fixture
def table(moto_endpoint: str, relay_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A ledger table shaped as template.yaml declares it, and the function pointed at it."""
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    dynamodb = moto_client("dynamodb", moto_endpoint)
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"AttributeName": "expiration", "Enabled": True}
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", name)
    monkeypatch.setenv("IDEMPOTENCY_EXPIRES_SECONDS", "7200")
    return name


def ledger_for(table: str, emulator: Emulator) -> IdempotencyLedger:
    """The ledger as another function instance would see it (same table, same keys)."""
    session = boto3.session.Session(
        region_name=REGION,
        aws_access_key_id=emulator.access_key_id,
        aws_secret_access_key=emulator.secret_access_key,
    )
    return IdempotencyLedger(
        DynamoDBPersistenceLayer(table_name=table, boto3_session=session),
        idempotency_config(7200),
    )


def cold_invoke(monkeypatch: pytest.MonkeyPatch, event: dict[str, Any]) -> dict[str, Any]:
    """A new container (a fresh import: nothing remembered in memory) handles the event."""
    response: dict[str, Any] = load_handler(monkeypatch).lambda_handler(event, LambdaContextStub())
    return response


def answer_to(channel: str, viewer: str) -> dict[str, Any]:
    return {
        "channelArn": channel,
        "role": "MASTER",
        "recipientClientId": viewer,
        "action": "SDP_ANSWER",
        "messagePayload": ANSWER,
    }


def test_a_redelivery_to_a_new_container_is_not_sent_again(
    table: str,
    monkeypatch: pytest.MonkeyPatch,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    channel: str,
    emulator: Emulator,
    moto_endpoint: str,
) -> None:
    viewer = connect_peer(channel, "viewer-1")
    event = request_queue.event([answer_to(channel, "viewer-1")])
    assert cold_invoke(monkeypatch, event) == {"batchItemFailures": []}
    assert cold_invoke(monkeypatch, event) == {"batchItemFailures": []}  # SQS delivers again
    assert len(viewer.receive_all()) == 1
    assert len(emulator.sent_by(channel, None)) == 1
    assert [o["status"] for o in outcome_inbox.drain()] == ["SENT"]  # published once
    [item] = moto_client("dynamodb", moto_endpoint).scan(TableName=table)["Items"]
    # The item expires with the request's retention (TTL attribute `expiration`).
    assert 7000 < int(item["expiration"]["N"]) - time.time() <= 7200
    assert item["status"]["S"] == "COMPLETED"


def test_a_request_marked_sending_by_an_invocation_that_died_is_reported_not_resent(
    table: str,
    monkeypatch: pytest.MonkeyPatch,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    channel: str,
    emulator: Emulator,
) -> None:
    viewer = connect_peer(channel, "viewer-2")
    event = request_queue.event([answer_to(channel, "viewer-2")])
    [message_id] = [r["messageId"] for r in event["Records"]]
    # What an invocation killed between "sending" and its outcome leaves in the table: no local
    # server kills a Lambda on cue, so the test writes that state with the ledger itself.
    dead = ledger_for(table, emulator)
    assert dead.claim(message_id, 1) is None  # its claim expired with its time (1 ms)
    dead.sending([message_id])

    assert cold_invoke(monkeypatch, event) == {"batchItemFailures": []}
    assert viewer.receive_all() == []  # not sent again: it may have gone out before
    [outcome] = outcome_inbox.drain()
    assert outcome["status"] == "FAILED"
    assert outcome["reason"].startswith("delivery uncertain")
    remembered = dead.claim(message_id)
    assert isinstance(remembered, Remembered)
    assert remembered.outcome is not None
    assert remembered.outcome.status.value == "FAILED"


def test_a_request_another_invocation_holds_is_retried_then_settled(
    table: str,
    monkeypatch: pytest.MonkeyPatch,
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    connect_peer: Connect,
    channel: str,
    emulator: Emulator,
) -> None:
    viewer = connect_peer(channel, "viewer-3")
    event = request_queue.event([answer_to(channel, "viewer-3")])
    [message_id] = [r["messageId"] for r in event["Records"]]
    other = ledger_for(table, emulator)
    assert other.claim(message_id, 60_000) is None  # a concurrent invocation has it

    response = cold_invoke(monkeypatch, event)
    assert response == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    assert viewer.receive_all() == []
    [retry] = outcome_inbox.drain()
    assert (retry["status"], retry["reason"]) == (
        "RETRY",
        "another invocation is handling this request",
    )
    # The other invocation would have sent it and settled it; the redelivery then does nothing.
    other.release(message_id)
    assert cold_invoke(monkeypatch, event) == {"batchItemFailures": []}
    assert len(viewer.receive_all()) == 1
    assert cold_invoke(monkeypatch, event) == {"batchItemFailures": []}
    assert len(viewer.receive_all()) == 1
    assert len(emulator.sent_by(channel, None)) == 1


def test_without_the_table_a_new_container_sends_again(
    relay_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    request_queue: RequestQueue,
    connect_peer: Connect,
    channel: str,
) -> None:
    # Idempotency=false in the template: the ledger lives in one container only (documented).
    monkeypatch.delenv("IDEMPOTENCY_TABLE_NAME", raising=False)
    viewer = connect_peer(channel, "viewer-4")
    event = request_queue.event([answer_to(channel, "viewer-4")])
    cold_invoke(monkeypatch, event)
    cold_invoke(monkeypatch, event)
    assert len(viewer.receive_all()) == 2
