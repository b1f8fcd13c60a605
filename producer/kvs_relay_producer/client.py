"""Put signaling requests on the relay's queue: validated, grouped for FIFO, sent in batches.

:class:`SignalingProducer` is what other services use. It validates each request with the
relay's own model (``kvs_relay.contract.SignalingRequest``) before anything is sent, so a bad
request fails in the producer, naming the field and the rule, instead of coming back REJECTED.
It sends with SendMessageBatch (at most 10 entries per call), retries the entries SQS reports
as failed on its side, and reports every request's fate. For a FIFO queue it sets
MessageGroupId (the channel and the viewer session) and MessageDeduplicationId.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kvs_relay.contract import SignalingRequest, parse_request
from kvs_relay.protocol import FieldViolation, Role

SQS_BATCH_LIMIT = 10
GROUP_ID_MAX_LENGTH = 128


class InvalidRequest(ValueError):
    """A request the relay would refuse; ``violations`` name each field and rule."""

    def __init__(self, index: int, violations: Sequence[FieldViolation]) -> None:
        self.index = index
        self.violations = list(violations)
        super().__init__(f"request {index}: " + "; ".join(str(v) for v in self.violations))


@dataclass(frozen=True, slots=True)
class Enqueued:
    """A request SQS accepted."""

    index: int
    message_id: str
    message_group_id: str | None = None


@dataclass(frozen=True, slots=True)
class NotEnqueued:
    """A request that is not on the queue: SQS refused it (``sender_fault``) or kept failing."""

    index: int
    code: str
    message: str
    sender_fault: bool


@dataclass(slots=True)
class EnqueueReport:
    """What happened to each request of one :meth:`SignalingProducer.send` call."""

    enqueued: list[Enqueued] = field(default_factory=list)
    failed: list[NotEnqueued] = field(default_factory=list)
    calls: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


def message_group_id(request: SignalingRequest) -> str:
    """FIFO group: the channel and the viewer session the request belongs to.

    A master's messages to one viewer, and a viewer's messages, form one ordered conversation:
    ``<channel>|<viewer>``. SQS allows 128 characters; longer keys are hashed (still stable).
    """
    channel = request.channelArn or request.channelName or ""
    viewer = request.recipientClientId if request.role is Role.MASTER else request.clientId
    group = f"{channel}|{viewer}"
    if len(group) <= GROUP_ID_MAX_LENGTH:
        return group
    return "sha256-" + hashlib.sha256(group.encode()).hexdigest()


def deduplication_id(request: SignalingRequest, body: str) -> str:
    """FIFO deduplication: the request's correlationId when it has one, else its content.

    A producer that retries the same request within SQS's five-minute window does not enqueue
    it twice.
    """
    if request.correlationId is not None:
        return "c-" + hashlib.sha256(request.correlationId.encode()).hexdigest()
    return "b-" + hashlib.sha256(body.encode()).hexdigest()


def _body(request: Mapping[str, Any] | SignalingRequest) -> str:
    if isinstance(request, SignalingRequest):
        return request.model_dump_json(exclude_none=True)
    return json.dumps(dict(request), separators=(",", ":"))


class SignalingProducer:
    """Enqueue requests for the relay (``sqs`` is a boto3 SQS client, AWS or the local stack)."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        *,
        fifo: bool | None = None,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._fifo = queue_url.endswith(".fifo") if fifo is None else fifo
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff_seconds
        self._sleep = sleep

    @property
    def fifo(self) -> bool:
        return self._fifo

    def validate(
        self, requests: Iterable[Mapping[str, Any] | SignalingRequest]
    ) -> list[tuple[SignalingRequest, str]]:
        """Each request checked against the relay's model; raises :class:`InvalidRequest`."""
        checked = []
        for index, request in enumerate(requests):
            body = _body(request)
            parsed = parse_request(body)
            if isinstance(parsed, list):
                raise InvalidRequest(index, parsed)
            checked.append((parsed, body))
        return checked

    def send(self, requests: Iterable[Mapping[str, Any] | SignalingRequest]) -> EnqueueReport:
        """Validate every request (nothing is sent if one is invalid), then enqueue them all."""
        checked = self.validate(requests)
        report = EnqueueReport()
        for start in range(0, len(checked), SQS_BATCH_LIMIT):
            self._send_batch(list(enumerate(checked))[start : start + SQS_BATCH_LIMIT], report)
        report.enqueued.sort(key=lambda e: e.index)
        report.failed.sort(key=lambda f: f.index)
        return report

    def _entry(self, index: int, request: SignalingRequest, body: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": str(index), "MessageBody": body}
        if self._fifo:
            entry["MessageGroupId"] = message_group_id(request)
            entry["MessageDeduplicationId"] = deduplication_id(request, body)
        return entry

    def _send_batch(
        self, items: list[tuple[int, tuple[SignalingRequest, str]]], report: EnqueueReport
    ) -> None:
        pending = {index: self._entry(index, *request) for index, request in items}
        for attempt in range(1, self._max_attempts + 1):
            report.calls += 1
            response = self._sqs.send_message_batch(
                QueueUrl=self._queue_url, Entries=list(pending.values())
            )
            for ok in response.get("Successful", []):
                entry = pending.pop(int(ok["Id"]))
                report.enqueued.append(
                    Enqueued(int(ok["Id"]), ok["MessageId"], entry.get("MessageGroupId"))
                )
            retry: dict[int, dict[str, Any]] = {}
            for failure in response.get("Failed", []):
                index = int(failure["Id"])
                entry = pending.pop(index)
                sender_fault = bool(failure.get("SenderFault"))
                if sender_fault or attempt == self._max_attempts:
                    report.failed.append(
                        NotEnqueued(
                            index,
                            str(failure.get("Code", "")),
                            str(failure.get("Message", "")),
                            sender_fault,
                        )
                    )
                else:
                    retry[index] = entry  # SQS's own fault: worth another try
            if not retry:
                return
            pending = retry
            self._sleep(self._backoff * attempt)
