"""What Lambda's SQS event source mapping does, on the local stack.

:class:`SqsEventSourceRunner` long-polls a queue, gathers a batch (BatchSize records or the
batching window, whichever comes first), invokes the function with the SQS event Lambda would
build, deletes only the records that succeeded, and leaves the ``batchItemFailures`` (or the whole
batch, when the invocation fails) to reappear after the visibility timeout. The queue's own
RedrivePolicy moves a record to the dead-letter queue after maxReceiveCount receives, as SQS does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

Invoke = Callable[[dict[str, Any]], Mapping[str, Any]]
"""Invoke the function with an event and return its response (raise on a function error)."""

SQS_MAX_RECEIVE = 10


@dataclass(frozen=True)
class EventSourceSettings:
    """The mapping's settings, as template.yaml declares them for the function's SQS event."""

    queue_url: str
    queue_arn: str
    region: str
    batch_size: int = 10
    batching_window_seconds: float = 0.0
    report_batch_item_failures: bool = True
    poll_wait_seconds: int = 1  # long-poll length per receive (short here so stop() is quick)


@dataclass
class RunnerStats:
    """What the runner did (read by tests, the demo and the benchmarks)."""

    invocations: int = 0
    records_received: int = 0
    records_deleted: int = 0
    records_failed: int = 0
    invocation_errors: int = 0
    batch_sizes: list[int] = field(default_factory=list)


def lambda_sqs_record(message: Mapping[str, Any], settings: EventSourceSettings) -> dict[str, Any]:
    """One SQS message as Lambda puts it in the event's ``Records``."""
    attributes = dict(message.get("Attributes", {}))
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": settings.queue_arn,
        "awsRegion": settings.region,
    }


class SqsEventSourceRunner:
    """Poll ``settings.queue_url`` and feed batches to ``invoke`` until stopped."""

    def __init__(self, sqs: Any, settings: EventSourceSettings, invoke: Invoke) -> None:
        self._sqs = sqs
        self._settings = settings
        self._invoke = invoke
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = RunnerStats()

    def _receive(self, max_records: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self._settings.queue_url,
            MaxNumberOfMessages=min(SQS_MAX_RECEIVE, max_records),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def gather_batch(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages, waiting at most the batching window once one arrived."""
        settings = self._settings
        batch = self._receive(settings.batch_size, settings.poll_wait_seconds)
        if not batch:
            return batch
        deadline = time.monotonic() + settings.batching_window_seconds
        while len(batch) < settings.batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            batch += self._receive(settings.batch_size - len(batch), min(20, int(remaining)))
        return batch

    def process_batch(self, messages: list[dict[str, Any]]) -> None:
        """Invoke the function with one batch and settle each record as Lambda does."""
        if not messages:
            return
        event = {"Records": [lambda_sqs_record(m, self._settings) for m in messages]}
        self.stats.invocations += 1
        self.stats.records_received += len(messages)
        self.stats.batch_sizes.append(len(messages))
        try:
            response = self._invoke(event)
        except Exception:
            # A failed invocation returns the whole batch to the queue (visibility timeout).
            logger.exception("invocation failed; %d records stay on the queue", len(messages))
            self.stats.invocation_errors += 1
            self.stats.records_failed += len(messages)
            return
        failed: set[str] = set()
        if self._settings.report_batch_item_failures:
            failed = {
                str(item.get("itemIdentifier"))
                for item in (response or {}).get("batchItemFailures", []) or []
            }
        done = [m for m in messages if m["MessageId"] not in failed]
        self.stats.records_failed += len(messages) - len(done)
        for start in range(0, len(done), SQS_MAX_RECEIVE):
            chunk = done[start : start + SQS_MAX_RECEIVE]
            self._sqs.delete_message_batch(
                QueueUrl=self._settings.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
            self.stats.records_deleted += len(chunk)

    def run_once(self) -> int:
        """Gather and process one batch; the number of records it held."""
        batch = self.gather_batch()
        self.process_batch(batch)
        return len(batch)

    def run_until_idle(self, idle_polls: int = 2, timeout: float = 60.0) -> None:
        """Process batches until ``idle_polls`` receives in a row come back empty."""
        deadline = time.monotonic() + timeout
        empty = 0
        while empty < idle_polls and time.monotonic() < deadline:
            empty = empty + 1 if self.run_once() == 0 else 0

    def start(self) -> None:
        """Poll on a background thread until :meth:`stop`."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sqs-event-source", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                logger.exception("event source poll failed")
                self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
