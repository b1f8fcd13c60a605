"""The relay's ledger in DynamoDB, with Powertools Idempotency.

Keyed on the SQS message id: SQS redelivers a message (a batchItemFailure, a visibility timeout
running out, a whole batch returned after a crash) with the same message id, and that is exactly
the repetition that must not send twice. A body hash would also swallow two requests a producer
meant to send (the same ICE candidate for two sessions of one viewer id); a producer's own
duplicate enqueues are stopped at the queue instead (FIFO deduplication, the producer client's
deduplication ids).

The relay delivers a batch at once (one WebSocket per sender), so instead of wrapping one
function call with ``@idempotent_function`` it drives the same Powertools persistence layer
through the same steps itself: ``save_inprogress`` to claim a record (with the invocation's
remaining time, so a crashed invocation's claim expires when Lambda would have stopped it),
``save_success`` to mark it *sending* before its frame can be written and again with its outcome,
``delete_record`` when it is given up unsent. A concurrent duplicate meets the in-progress record
and is retried later (Powertools' ``IdempotencyAlreadyInProgressError`` case); a settled one
returns its stored outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer, IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (
    STATUS_CONSTANTS,
    DataRecord,
)

from kvs_relay.outcomes import DeliveryOutcome
from kvs_relay.relay import IN_FLIGHT, Claim, Remembered

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY = "messageId"
"""The record field the key is taken from (``event_key_jmespath``)."""
LEDGER_NAME = "SendSignaling.ledger"
"""Namespaces the keys in the table (Powertools prefixes every key with a function name)."""
_PARALLEL_WRITES = 10  # one batch's "sending" marks go out together, not one after another


def idempotency_config(expires_after_seconds: int) -> IdempotencyConfig:
    """Keys from the record's ``messageId``; records kept ``expires_after_seconds``."""
    return IdempotencyConfig(
        event_key_jmespath=IDEMPOTENCY_KEY,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=expires_after_seconds,
    )


class IdempotencyLedger:
    """A :class:`kvs_relay.relay.DeliveryLedger` on a Powertools persistence layer."""

    def __init__(self, persistence: BasePersistenceLayer, config: IdempotencyConfig) -> None:
        persistence.configure(config, key_prefix=LEDGER_NAME)
        self._store = persistence

    @staticmethod
    def _data(message_id: str) -> dict[str, Any]:
        return {IDEMPOTENCY_KEY: message_id}

    def claim(self, message_id: str, remaining_time_ms: int | None = None) -> Claim:
        data = self._data(message_id)
        for _ in range(2):  # a record that expires between the two calls is claimed again
            try:
                self._store.save_inprogress(data, remaining_time_ms)
            except IdempotencyItemAlreadyExistsError as exists:
                record = exists.old_data_record or self._existing(data)
                if record is None:
                    continue
                return self._found(record)
            return None
        return IN_FLIGHT  # it keeps changing under us: someone else is on it

    def _existing(self, data: dict[str, Any]) -> DataRecord | None:
        try:
            return self._store.get_record(data)
        except IdempotencyItemNotFoundError:
            return None

    @staticmethod
    def _found(record: DataRecord) -> Claim:
        if record.status != STATUS_CONSTANTS["COMPLETED"]:
            return IN_FLIGHT
        stored = record.response_json_as_dict() or {}
        if stored.get("phase") != "done":
            until = stored.get("until")
            if isinstance(until, int | float) and time.time() * 1000 < until:
                # Still sending, in an invocation that has not run out of time: a concurrent
                # duplicate (the queue's visibility timeout ran out first). Retried later.
                return IN_FLIGHT
            return Remembered(None)  # marked sending, never settled: the send may have happened
        return Remembered(
            DeliveryOutcome.model_validate(stored["outcome"]), bool(stored.get("published"))
        )

    def sending(self, message_ids: Sequence[str], remaining_time_ms: int | None = None) -> None:
        if not message_ids:
            return
        mark: dict[str, Any] = {"phase": "sending"}
        if remaining_time_ms is not None:
            mark["until"] = int(time.time() * 1000) + remaining_time_ms
        with ThreadPoolExecutor(max_workers=min(_PARALLEL_WRITES, len(message_ids))) as pool:
            list(
                pool.map(
                    lambda message_id: self._store.save_success(self._data(message_id), mark),
                    message_ids,
                )
            )

    def remember(self, outcome: DeliveryOutcome, *, published: bool) -> None:
        self._store.save_success(
            self._data(outcome.messageId),
            {"phase": "done", "outcome": outcome.model_dump(mode="json"), "published": published},
        )

    def release(self, message_id: str) -> None:
        self._store.delete_record(self._data(message_id), RuntimeError("released unsent"))
