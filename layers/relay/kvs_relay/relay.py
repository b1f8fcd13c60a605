"""The relay: one SQS batch in, one outcome per record out (sent, published, verdict).

:class:`SignalingRelay` is what the Lambda handler calls before Powertools' batch processor
builds the partial batch response. It needs the whole batch at once (grouping and parallel
connections), so it runs first and the processor's record handler only looks verdicts up:

1. every record is validated with :class:`~kvs_relay.contract.SignalingRequest`; a refusal is a
   REJECTED outcome (published, never retried);
2. channel names are resolved (cached); the valid requests go to the
   :class:`~kvs_relay.delivery.DeliveryEngine`, grouped by sender;
3. each outcome is published to SNS; a RETRY, or a failed publish, makes the record a
   batchItemFailure.

A :class:`DeliveryLedger` makes redeliveries safe (SQS delivers at least once; a send is not
idempotent): each record is claimed before anything happens to it, marked *sending* before its
frame can be written, and settled with its outcome. A record that comes back is then never sent
again: a settled one is published again if its outcome is still owed; one marked sending whose
invocation ended before its outcome was known is reported FAILED ("delivery uncertain") rather
than risk a duplicate; one another invocation is handling right now is retried later. The
in-memory ledger covers one warm container; :mod:`kvs_relay.idempotency` keeps the same ledger
in DynamoDB with Powertools Idempotency, across containers and crashes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from kvs_relay.channels import ChannelResolver, ControlPlaneError
from kvs_relay.contract import SignalingRequest, derived_correlation_id, parse_request
from kvs_relay.delivery import Delivery, DeliveryEngine, DeliveryResult, FailedGroups
from kvs_relay.outcomes import (
    DeliveryOutcome,
    OutcomePublisher,
    OutcomeStatus,
    StatusResponseBody,
    Violation,
    must_publish,
)
from kvs_relay.protocol import CHANNEL_ARN_PATTERN, Action, FieldViolation, id_violation

log = logging.getLogger(__name__)

_PARALLEL_CLAIMS = 10  # a batch's ledger claims go out together, ten at a time


class MetricName(StrEnum):
    """The EMF metric names the relay emits."""

    SENT = "Sent"
    REJECTED = "Rejected"
    FAILED = "Failed"
    RETRIED = "Retried"
    CONNECTIONS = "Connections"
    STATUS_WAIT = "StatusWait"
    OUTCOME_PUBLISH_FAILED = "OutcomePublishFailed"


_STATUS_METRIC = {
    OutcomeStatus.SENT: MetricName.SENT,
    OutcomeStatus.REJECTED: MetricName.REJECTED,
    OutcomeStatus.FAILED: MetricName.FAILED,
    OutcomeStatus.RETRY: MetricName.RETRIED,
}


class MetricsSink(Protocol):
    """Where metrics go (Powertools ``Metrics`` fits)."""

    def add_metric(self, name: str, unit: str, value: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Remembered:
    """A record handled before: its outcome and whether that was published.

    ``outcome`` is None when the record was marked sending but its invocation ended before the
    outcome was known: its frame may or may not have been written.
    """

    outcome: DeliveryOutcome | None
    published: bool = False


class InFlight:
    """Another invocation is handling this record right now."""


IN_FLIGHT = InFlight()

Claim = Remembered | InFlight | None
"""What :meth:`DeliveryLedger.claim` finds: None means the record is now ours to handle."""


class DeliveryLedger(Protocol):
    """Which records were handled, by SQS message id (see the module docstring)."""

    def claim(self, message_id: str, remaining_time_ms: int | None = None) -> Claim:
        """Take the record (None), or say why not: handled before, or in flight elsewhere.

        ``remaining_time_ms`` is the invocation's: a claim left by an invocation that died
        expires when that invocation would have been stopped.
        """
        ...

    def sending(self, message_ids: Sequence[str], remaining_time_ms: int | None = None) -> None:
        """These claimed records' frames may be written from now on, by an invocation that has
        ``remaining_time_ms`` left: until then, a duplicate finds them in flight; after it, a
        record still unsettled is uncertain."""
        ...

    def remember(self, outcome: DeliveryOutcome, *, published: bool) -> None:
        """Settle a claimed record with its final outcome."""
        ...

    def release(self, message_id: str) -> None:
        """Give a claimed record up unsent (a RETRY), so that its redelivery is handled anew."""
        ...


class InMemoryLedger:
    """A bounded, thread-safe :class:`DeliveryLedger` living as long as the warm container."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, Remembered] = OrderedDict()
        self._claimed: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, message_id: str, remaining_time_ms: int | None = None) -> Claim:
        with self._lock:
            if message_id in self._entries:
                return self._entries[message_id]
            if message_id in self._claimed:
                return IN_FLIGHT
            self._claimed.add(message_id)
            return None

    def sending(self, message_ids: Sequence[str], remaining_time_ms: int | None = None) -> None:
        with self._lock:
            for message_id in message_ids:
                self._store(message_id, Remembered(None))

    def remember(self, outcome: DeliveryOutcome, *, published: bool) -> None:
        with self._lock:
            self._claimed.discard(outcome.messageId)
            self._store(outcome.messageId, Remembered(outcome, published))

    def release(self, message_id: str) -> None:
        with self._lock:
            self._claimed.discard(message_id)
            self._entries.pop(message_id, None)

    def _store(self, message_id: str, entry: Remembered) -> None:
        self._entries[message_id] = entry
        self._entries.move_to_end(message_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)


@dataclass(frozen=True, slots=True)
class QueueRecord:
    """What the relay needs of one SQS record."""

    message_id: str
    body: str
    receive_count: int | None = None
    message_group_id: str | None = None

    @classmethod
    def from_event_record(cls, record: Mapping[str, Any]) -> QueueRecord:
        attributes = record.get("attributes") or {}
        count = attributes.get("ApproximateReceiveCount")
        return cls(
            message_id=str(record["messageId"]),
            body=str(record.get("body", "")),
            receive_count=int(count) if count is not None and str(count).isdigit() else None,
            message_group_id=attributes.get("MessageGroupId"),
        )


@dataclass(slots=True)
class BatchVerdict:
    """The outcome of every record, and which ones SQS must deliver again."""

    outcomes: dict[str, DeliveryOutcome] = field(default_factory=dict)
    retry: dict[str, str] = field(default_factory=dict)
    """message id -> why it is returned to the queue."""


def is_fifo_event(event: Mapping[str, Any]) -> bool:
    """Whether the SQS event comes from a FIFO queue (its source ARN ends in .fifo)."""
    records = event.get("Records") or []
    return bool(records) and str(records[0].get("eventSourceARN", "")).endswith(".fifo")


class SignalingRelay:
    """Validates, delivers, publishes: one :class:`BatchVerdict` per SQS batch."""

    def __init__(
        self,
        *,
        engine: DeliveryEngine,
        channels: ChannelResolver,
        publisher: OutcomePublisher,
        publish_sent: bool = True,
        ledger: DeliveryLedger | None = None,
        metrics: MetricsSink | None = None,
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._engine = engine
        self._channels = channels
        self._publisher = publisher
        self._publish_sent = publish_sent
        self._ledger = ledger if ledger is not None else InMemoryLedger()
        self._metrics = metrics
        self._now = wall_clock

    def process_event(
        self,
        event: Mapping[str, Any],
        *,
        remaining_time_ms: Callable[[], int] | None = None,
    ) -> BatchVerdict:
        """Process an SQS event (``{"Records": [...]}``); FIFO is detected from the event.

        ``remaining_time_ms`` is the Lambda context's ``get_remaining_time_in_millis``.
        """
        records = [QueueRecord.from_event_record(r) for r in event.get("Records") or []]
        return self.process(records, fifo=is_fifo_event(event), remaining_time_ms=remaining_time_ms)

    def process(
        self,
        records: Sequence[QueueRecord],
        *,
        fifo: bool,
        remaining_time_ms: Callable[[], int] | None = None,
    ) -> BatchVerdict:
        """Process one batch in queue order."""
        verdict = BatchVerdict()
        claimed: list[str] = []
        marked: set[str] = set()
        try:
            self._process(records, fifo, verdict, claimed, marked, remaining_time_ms)
        except BaseException:
            # The invocation fails as a whole and SQS returns every record: give back the claims
            # of records that cannot have been sent (those marked sending stay uncertain).
            for message_id in claimed:
                if message_id not in marked and message_id not in verdict.outcomes:
                    with contextlib.suppress(Exception):
                        self._ledger.release(message_id)
            raise
        return verdict

    def _process(
        self,
        records: Sequence[QueueRecord],
        fifo: bool,
        verdict: BatchVerdict,
        claimed: list[str],
        marked: set[str],
        remaining_time_ms: Callable[[], int] | None,
    ) -> None:
        gate = FailedGroups()
        deliveries: list[Delivery] = []
        requests: dict[str, tuple[QueueRecord, SignalingRequest, Delivery]] = {}
        settled_early: list[tuple[QueueRecord, DeliveryOutcome]] = []

        others: set[str] = set()  # records another invocation holds: not ours to settle
        claims = self._claim_all(records, claimed, remaining_time_ms)
        for record, claim in zip(records, claims, strict=True):
            if isinstance(claim, InFlight):
                others.add(record.message_id)
                outcome = self._outcome_for_raw(
                    record, OutcomeStatus.RETRY, "another invocation is handling this request"
                )
                settled_early.append((record, outcome))
                continue
            if isinstance(claim, Remembered):
                if claim.outcome is not None:
                    self._settle_remembered(record, claim.outcome, claim.published, verdict)
                    continue
                # Its frame may have been written before the invocation ended: sending it again
                # could deliver it twice, so it is reported instead (and never retried).
                uncertain = self._outcome_for_raw(
                    record,
                    OutcomeStatus.FAILED,
                    "delivery uncertain: an earlier invocation ended after it began sending; "
                    "not sent again",
                )
                settled_early.append((record, uncertain))
                continue
            if fifo and record.message_group_id in gate:
                outcome = self._outcome_for_raw(
                    record, OutcomeStatus.RETRY, "an earlier message of its FIFO group failed"
                )
                settled_early.append((record, outcome))
                continue
            parsed = parse_request(record.body)
            if isinstance(parsed, list):
                settled_early.append((record, self._rejected(record, parsed)))
                continue
            try:
                channel_arn = parsed.channelArn or self._channels.channel_arn(
                    parsed.channelName or ""
                )
            except ControlPlaneError as exc:
                status = OutcomeStatus.RETRY if exc.transient else OutcomeStatus.FAILED
                if status is OutcomeStatus.RETRY and fifo:
                    gate.add(record.message_group_id)
                outcome = self._outcome(
                    record,
                    parsed,
                    None,
                    DeliveryResult(status, f"{exc.operation}: {exc.error_type}"),
                )
                settled_early.append((record, outcome))
                continue
            correlation_id = parsed.correlationId or derived_correlation_id(record.message_id)
            delivery = Delivery(
                message_id=record.message_id,
                channel_arn=channel_arn,
                role=parsed.role,
                client_id=parsed.sender_client_id,
                message=parsed.client_message(correlation_id),
                message_group_id=record.message_group_id if fifo else None,
            )
            deliveries.append(delivery)
            requests[record.message_id] = (record, parsed, delivery)

        marked.update(d.message_id for d in deliveries)
        self._ledger.sending(
            [d.message_id for d in deliveries],
            remaining_time_ms() if remaining_time_ms else None,
        )
        report = self._engine.deliver(deliveries, fifo=fifo, failed_groups=gate)
        self._count(MetricName.CONNECTIONS, "Count", report.connections)
        if report.connections:
            self._count(MetricName.STATUS_WAIT, "Seconds", report.status_wait_seconds)

        outcomes = {record.message_id: outcome for record, outcome in settled_early}
        for message_id, (record, parsed, delivery) in requests.items():
            result = report.results.get(message_id) or DeliveryResult(
                OutcomeStatus.RETRY, "not delivered"
            )
            outcomes[message_id] = self._outcome(record, parsed, delivery, result)
        if fifo:
            self._stop_failed_groups(records, outcomes)
        # Publish in queue order, so a FIFO subscriber sees outcomes in the order of requests.
        for record in records:
            finished = outcomes.get(record.message_id)
            if finished is not None:
                self._finish(finished, verdict, settle=record.message_id not in others)

    def _claim_all(
        self,
        records: Sequence[QueueRecord],
        claimed: list[str],
        remaining_time_ms: Callable[[], int] | None,
    ) -> list[Claim]:
        """Claim every record at once (a DynamoDB round trip each, in parallel); the ones taken
        are added to ``claimed`` even when another claim fails, so they can be given back."""
        remaining = remaining_time_ms() if remaining_time_ms else None

        def claim(record: QueueRecord) -> Claim | Exception:
            try:
                return self._ledger.claim(record.message_id, remaining)
            except Exception as exc:  # raised below, once the others are accounted for
                return exc

        if len(records) <= 1:
            results = [claim(record) for record in records]
        else:
            with ThreadPoolExecutor(max_workers=min(_PARALLEL_CLAIMS, len(records))) as pool:
                results = list(pool.map(claim, records))
        claimed.extend(r.message_id for r, c in zip(records, results, strict=True) if c is None)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return [result for result in results if not isinstance(result, Exception)]

    def _stop_failed_groups(
        self, records: Sequence[QueueRecord], outcomes: dict[str, DeliveryOutcome]
    ) -> None:
        # Powertools' FIFO processor returns every record after a group's first failure; an
        # unsent record there must say RETRY too (it is decided again when it comes back). A
        # record already written keeps its outcome; the ledger stops it being sent again.
        failed: set[str | None] = set()
        for record in records:
            outcome = outcomes.get(record.message_id)
            if outcome is None:
                continue
            if (
                record.message_group_id in failed
                and outcome.status
                in (
                    OutcomeStatus.REJECTED,
                    OutcomeStatus.FAILED,
                )
                and outcome.statusResponse is None
            ):
                outcomes[record.message_id] = outcome.model_copy(
                    update={
                        "status": OutcomeStatus.RETRY,
                        "reason": "an earlier message of its FIFO group failed",
                        "violations": [],
                    }
                )
            elif outcome.status is OutcomeStatus.RETRY:
                failed.add(record.message_group_id)

    def _settle_remembered(
        self,
        record: QueueRecord,
        outcome: DeliveryOutcome,
        published: bool,
        verdict: BatchVerdict,
    ) -> None:
        # Already written to the WebSocket once: never send again; publish if still owed.
        log.info(
            "redelivered record already handled; not sending again",
            extra={"message_id": record.message_id, "correlation_id": outcome.correlationId},
        )
        verdict.outcomes[record.message_id] = outcome
        if not published and self._publish(outcome, verdict):
            self._ledger.remember(outcome, published=True)

    def _finish(self, outcome: DeliveryOutcome, verdict: BatchVerdict, *, settle: bool) -> None:
        verdict.outcomes[outcome.messageId] = outcome
        self._count(_STATUS_METRIC[outcome.status], "Count", 1)
        log.info(
            "outcome",
            extra={
                "message_id": outcome.messageId,
                "correlation_id": outcome.correlationId,
                "status": outcome.status.value,
                "action": outcome.action.value if outcome.action else None,
                "reason": outcome.reason,
            },
        )
        if outcome.status is OutcomeStatus.RETRY:
            verdict.retry[outcome.messageId] = outcome.reason or "transient failure"
        owed = must_publish(outcome, publish_sent=self._publish_sent)
        final = settle and outcome.status is not OutcomeStatus.RETRY
        if final:
            # Settled before it is published: an invocation that dies in between leaves an
            # outcome still owed (published on redelivery), never an uncertain send.
            self._ledger.remember(outcome, published=not owed)
        published = self._publish(outcome, verdict) if owed else True
        if final and owed and published:
            self._ledger.remember(outcome, published=True)
        if settle and outcome.status is OutcomeStatus.RETRY:
            # Nothing was delivered (a RETRY is decided before a frame goes out, or the service
            # refused it): the redelivery is handled anew.
            self._ledger.release(outcome.messageId)

    def _publish(self, outcome: DeliveryOutcome, verdict: BatchVerdict) -> bool:
        """Publish; on failure the record goes back to the queue and the outcome stays owed."""
        try:
            self._publisher.publish(outcome)
        except Exception as exc:
            log.warning(
                "outcome publish failed; record will be retried",
                extra={"message_id": outcome.messageId, "error": type(exc).__name__},
            )
            self._count(MetricName.OUTCOME_PUBLISH_FAILED, "Count", 1)
            verdict.retry.setdefault(
                outcome.messageId, f"outcome publish failed: {type(exc).__name__}"
            )
            return False
        return True

    def _count(self, name: MetricName, unit: str, value: float) -> None:
        if self._metrics is not None:
            self._metrics.add_metric(name=name.value, unit=unit, value=value)

    def _rejected(self, record: QueueRecord, violations: list[FieldViolation]) -> DeliveryOutcome:
        reason = "; ".join(str(v) for v in violations)
        base = self._outcome_for_raw(record, OutcomeStatus.REJECTED, reason)
        return base.model_copy(update={"violations": [Violation.of(v) for v in violations]})

    def _outcome_for_raw(
        self, record: QueueRecord, status: OutcomeStatus, reason: str
    ) -> DeliveryOutcome:
        # What can be read safely from a body the model refused, for the SNS attributes.
        raw: dict[str, Any] = {}
        try:
            loaded = json.loads(record.body)
            if isinstance(loaded, dict):
                raw = loaded
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the stack
            pass
        action = raw.get("action")
        channel_arn = raw.get("channelArn")
        correlation = raw.get("correlationId")
        own_correlation = (
            correlation
            if isinstance(correlation, str)
            and id_violation("correlationId", correlation, required=True) is None
            else None
        )
        return DeliveryOutcome(
            status=status,
            messageId=record.message_id,
            correlationId=own_correlation or derived_correlation_id(record.message_id),
            correlationIdDerived=own_correlation is None,
            channelArn=channel_arn
            if isinstance(channel_arn, str) and CHANNEL_ARN_PATTERN.fullmatch(channel_arn)
            else None,
            action=Action(action)
            if isinstance(action, str) and action in Action.__members__
            else None,
            reason=reason,
            approximateReceiveCount=record.receive_count,
            messageGroupId=record.message_group_id,
            occurredAt=self._now(),
        )

    def _outcome(
        self,
        record: QueueRecord,
        request: SignalingRequest,
        delivery: Delivery | None,
        result: DeliveryResult,
    ) -> DeliveryOutcome:
        return DeliveryOutcome(
            status=result.status,
            messageId=record.message_id,
            correlationId=request.correlationId or derived_correlation_id(record.message_id),
            correlationIdDerived=request.correlationId is None,
            channelArn=delivery.channel_arn if delivery else request.channelArn,
            channelName=request.channelName,
            role=request.role,
            clientId=request.clientId,
            action=request.action,
            recipientClientId=request.recipientClientId,
            recipientIgnored=request.recipient_ignored,
            reason=result.reason,
            statusResponse=StatusResponseBody.of(result.status_response)
            if result.status_response
            else None,
            approximateReceiveCount=record.receive_count,
            messageGroupId=record.message_group_id,
            occurredAt=self._now(),
        )
