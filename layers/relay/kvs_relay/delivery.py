"""The delivery engine: send a batch's valid requests over signaling WebSockets.

Shape (docs/contract.md, "Delivery semantics"):

* requests are grouped by sender, ``(channel ARN, role, clientId)``; each group gets one
  WebSocket that carries its messages in queue order; groups run in parallel (bounded);
* each connect takes a slot of the per-channel connect quota, each send waits for the
  per-connection send quota of its action (:mod:`kvs_relay.pacing`);
* every message carries a correlationId; after a group's last send the engine listens
  ``status_wait`` seconds for STATUS_RESPONSEs and matches them by correlationId;
* a GO_AWAY or an unexpected close makes it reconnect and send only what was not yet sent;
  nothing is sent twice on purpose;
* on FIFO queues a message group stops at its first failure: later messages of that group are
  not sent and come back as RETRY.

All collaborators (endpoints, credentials, connector, clock, sleep) are arguments, so tests run
the engine with the real adapters against the emulator, and with a fake clock where needed.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from botocore.credentials import ReadOnlyCredentials

from kvs_relay.channels import ControlPlaneError, region_of_channel
from kvs_relay.endpoints import EndpointSource
from kvs_relay.outcomes import OutcomeStatus
from kvs_relay.pacing import ConnectPacer, SendPacer
from kvs_relay.presign import presign_connect_url
from kvs_relay.protocol import (
    CLIENT_LIMIT_EXCEEDED,
    ClientMessage,
    EventParseError,
    MessageType,
    Role,
    StatusResponse,
    parse_server_event,
)
from kvs_relay.quotas import DEFAULT_QUOTAS, SignalingQuotas
from kvs_relay.transport import ConnectFailure, ConnectionLost, Connector, SignalingConnection

log = logging.getLogger(__name__)

CredentialsSource = Callable[[], ReadOnlyCredentials]
"""Frozen credentials to sign one connect URL with (read per connect: they may rotate)."""

ConnectionKey = tuple[str, Role, str | None]

_LISTEN_SLICE_SECONDS = 0.02  # how long one read waits when several connections are listened to


@dataclass(frozen=True, slots=True)
class Delivery:
    """One valid request, ready to send: who sends it where, and the frame."""

    message_id: str
    channel_arn: str
    role: Role
    client_id: str | None
    message: ClientMessage
    message_group_id: str | None = None

    @property
    def connection_key(self) -> ConnectionKey:
        """The sender: one WebSocket per key per batch."""
        return (self.channel_arn, self.role, self.client_id)

    @property
    def correlation_id(self) -> str:
        assert self.message.correlation_id is not None  # every Delivery is built with one
        return self.message.correlation_id


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one delivery ended: SENT, FAILED or RETRY (REJECTED happens before delivery)."""

    status: OutcomeStatus
    reason: str | None = None
    status_response: StatusResponse | None = None
    written: bool = False
    """Whether the frame was written to a WebSocket (a RETRY after a write may duplicate)."""


@dataclass(slots=True)
class DeliveryReport:
    """Results by SQS message id, and the figures the metrics report."""

    results: dict[str, DeliveryResult] = field(default_factory=dict)
    connections: int = 0
    status_wait_seconds: float = 0.0
    ignored_events: int = 0


def classify_status(status: StatusResponse) -> OutcomeStatus:
    """A STATUS_RESPONSE's outcome: throttling, 429 and 5xx are transient; the rest permanent."""
    if status.error_type == CLIENT_LIMIT_EXCEEDED:
        return OutcomeStatus.RETRY
    try:
        code = int(status.status_code)
    except ValueError:
        return OutcomeStatus.FAILED
    return OutcomeStatus.RETRY if code == 429 or code >= 500 else OutcomeStatus.FAILED


def group_by_sender(deliveries: Iterable[Delivery]) -> dict[ConnectionKey, list[Delivery]]:
    """Deliveries grouped by sender, each group in queue order (groups in first-seen order)."""
    groups: dict[ConnectionKey, list[Delivery]] = {}
    for delivery in deliveries:
        groups.setdefault(delivery.connection_key, []).append(delivery)
    return groups


class FailedGroups:
    """FIFO message groups that have failed in this batch (thread-safe)."""

    def __init__(self, initial: Iterable[str] = ()) -> None:
        self._groups = set(initial)
        self._lock = threading.Lock()

    def add(self, group_id: str | None) -> None:
        if group_id is not None:
            with self._lock:
                self._groups.add(group_id)

    def __contains__(self, group_id: object) -> bool:
        with self._lock:
            return group_id in self._groups


@dataclass(slots=True)
class _Listening:
    """One connection whose sent messages may still be answered."""

    connection: SignalingConnection
    go_away: bool = False


class DeliveryEngine:
    """Delivers batches of :class:`Delivery` (see the module docstring for the semantics)."""

    def __init__(
        self,
        *,
        endpoints: EndpointSource,
        credentials: CredentialsSource,
        connector: Connector,
        quotas: SignalingQuotas = DEFAULT_QUOTAS,
        status_wait_seconds: float = 1.0,
        pacing_margin_seconds: float = 0.05,
        max_parallel_connections: int = 8,
        max_connects_per_group: int = 3,
        connect_pacer: ConnectPacer | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._endpoints = endpoints
        self._credentials = credentials
        self._connector = connector
        self._quotas = quotas
        self._status_wait = status_wait_seconds
        self._margin = pacing_margin_seconds
        self._max_parallel = max(1, max_parallel_connections)
        self._max_connects = max(1, max_connects_per_group)
        # Shared across batches (the engine lives as long as the warm container).
        self._connect_pacer = connect_pacer or ConnectPacer(quotas, pacing_margin_seconds)
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock

    def deliver(
        self, deliveries: Sequence[Delivery], *, failed_groups: FailedGroups | None = None
    ) -> DeliveryReport:
        """Send every delivery; a result for each message id. Never raises for one delivery."""
        report = DeliveryReport()
        groups = group_by_sender(deliveries)
        if not groups:
            return report
        gate = failed_groups if failed_groups is not None else FailedGroups()
        lock = threading.Lock()

        def run(items: list[Delivery]) -> None:
            partial = self._deliver_group(items, gate)
            with lock:
                report.results.update(partial.results)
                report.connections += partial.connections
                report.status_wait_seconds += partial.status_wait_seconds
                report.ignored_events += partial.ignored_events

        workers = min(self._max_parallel, len(groups))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="signaling") as pool:
            futures = [pool.submit(run, items) for items in groups.values()]
            for future in futures:
                future.result()
        return report

    # One group: one sender, one connection at a time, queue order.

    def _deliver_group(self, items: list[Delivery], gate: FailedGroups) -> DeliveryReport:
        report = DeliveryReport()
        channel_arn, role, client_id = items[0].connection_key
        unsent: deque[Delivery] = deque(items)
        awaiting: dict[str, Delivery] = {}
        listening: list[_Listening] = []
        failures = 0  # failed connects and lost connections; a GO_AWAY is not a failure
        connects = 0
        last_failure = "not connected"

        def settle(delivery: Delivery, result: DeliveryResult) -> None:
            report.results[delivery.message_id] = result
            if result.status is OutcomeStatus.RETRY:
                gate.add(delivery.message_group_id)

        def settle_unsent(status: OutcomeStatus, reason: str) -> None:
            while unsent:
                settle(unsent.popleft(), DeliveryResult(status, reason))

        try:
            while unsent:
                self._skip_failed_fifo_heads(unsent, settle, gate)
                if not unsent:
                    break
                # Every connection sends at least one message unless it fails, so this bounds
                # the loop even when the service keeps sending GO_AWAY.
                if failures >= self._max_connects or connects >= self._max_connects + len(items):
                    settle_unsent(OutcomeStatus.RETRY, last_failure)
                    break
                if failures:
                    self._sleep(0.1 * failures)  # a short back-off before connecting again
                connects += 1
                try:
                    connection = self._open(channel_arn, role, client_id)
                except ControlPlaneError as exc:
                    status = OutcomeStatus.RETRY if exc.transient else OutcomeStatus.FAILED
                    settle_unsent(status, f"{exc.operation}: {exc.error_type}")
                    break
                except ConnectFailure as exc:
                    failures += 1
                    last_failure = exc.reason
                    if exc.permanent:
                        settle_unsent(OutcomeStatus.FAILED, exc.reason)
                        break
                    self._endpoints.forget(channel_arn, role)
                    continue
                report.connections += 1
                current = _Listening(connection)
                listening.append(current)
                try:
                    self._send_all(current, unsent, awaiting, settle, gate, report)
                except ConnectionLost:
                    failures += 1
                    last_failure = "connection lost"
                    log.info("signaling connection lost; reconnecting for unsent messages")
                    listening.remove(current)
                    current.connection.close()
                    continue
                if current.go_away and unsent:
                    last_failure = "GO_AWAY"
                    log.info("GO_AWAY received; reconnecting for unsent messages")
                    continue
            started = self._clock()
            self._listen(listening, awaiting, settle, report)
            report.status_wait_seconds += self._clock() - started
        finally:
            for entry in listening:
                entry.connection.close()
        for delivery in awaiting.values():
            if delivery.message_id not in report.results:
                settle(delivery, DeliveryResult(OutcomeStatus.SENT, written=True))
        return report

    def _skip_failed_fifo_heads(
        self,
        unsent: deque[Delivery],
        settle: Callable[[Delivery, DeliveryResult], None],
        gate: FailedGroups,
    ) -> None:
        while (
            unsent and unsent[0].message_group_id is not None and unsent[0].message_group_id in gate
        ):
            settle(
                unsent.popleft(),
                DeliveryResult(OutcomeStatus.RETRY, "an earlier message of its FIFO group failed"),
            )

    def _open(self, channel_arn: str, role: Role, client_id: str | None) -> SignalingConnection:
        endpoint = self._endpoints.wss_endpoint(channel_arn, role)
        at = self._connect_pacer.reserve(channel_arn, role, self._clock())
        self._wait_until(at)
        url = presign_connect_url(
            endpoint,
            channel_arn,
            client_id,
            self._credentials(),
            region_of_channel(channel_arn),
            signed_at=self._wall_clock(),
        )
        return self._connector.connect(url)

    def _wait_until(self, at: float) -> None:
        delay = at - self._clock()
        if delay > 0:
            self._sleep(delay)

    def _send_all(
        self,
        current: _Listening,
        unsent: deque[Delivery],
        awaiting: dict[str, Delivery],
        settle: Callable[[Delivery, DeliveryResult], None],
        gate: FailedGroups,
        report: DeliveryReport,
    ) -> None:
        pacer = SendPacer(self._quotas, self._margin)  # the send quotas are per connection
        while unsent:
            self._skip_failed_fifo_heads(unsent, settle, gate)
            if not unsent:
                return
            delivery = unsent[0]
            action = delivery.message.action
            send_at = pacer.next_send_at(action, self._clock())
            # Read what has arrived (statuses, GO_AWAY, a close) before writing: this is how a
            # closed connection is noticed before a message is written into it.
            self._read_until(current, send_at, awaiting, settle, report)
            if current.go_away:
                return
            current.connection.send(delivery.message.to_json())
            pacer.sent(action, self._clock())
            unsent.popleft()
            awaiting[delivery.correlation_id] = delivery
            log.debug(
                "sent",
                extra={
                    "correlation_id": delivery.correlation_id,
                    "message_id": delivery.message_id,
                },
            )

    def _read_until(
        self,
        current: _Listening,
        deadline: float,
        awaiting: dict[str, Delivery],
        settle: Callable[[Delivery, DeliveryResult], None],
        report: DeliveryReport,
    ) -> None:
        while True:
            remaining = deadline - self._clock()
            frame = current.connection.receive(max(remaining, 0.0))
            if frame is not None:
                self._handle(frame, current, awaiting, settle, report)
                if current.go_away:
                    return
                continue
            if remaining <= 0:
                return

    def _listen(
        self,
        listening: list[_Listening],
        awaiting: dict[str, Delivery],
        settle: Callable[[Delivery, DeliveryResult], None],
        report: DeliveryReport,
    ) -> None:
        if not awaiting or self._status_wait <= 0:
            return
        deadline = self._clock() + self._status_wait
        open_entries = list(listening)
        while open_entries and self._clock() < deadline:
            if all(d.message_id in report.results for d in awaiting.values()):
                return  # every sent message has its answer: nothing left to wait for
            slice_seconds = (
                deadline - self._clock()
                if len(open_entries) == 1
                else min(_LISTEN_SLICE_SECONDS, deadline - self._clock())
            )
            for entry in list(open_entries):
                try:
                    frame = entry.connection.receive(max(slice_seconds, 0.0))
                except ConnectionLost:
                    # Answers to what was sent on it can no longer come; those count as SENT.
                    open_entries.remove(entry)
                    continue
                if frame is not None:
                    self._handle(frame, entry, awaiting, settle, report)

    def _handle(
        self,
        frame: str,
        entry: _Listening,
        awaiting: dict[str, Delivery],
        settle: Callable[[Delivery, DeliveryResult], None],
        report: DeliveryReport,
    ) -> None:
        try:
            event = parse_server_event(frame)
        except EventParseError:
            report.ignored_events += 1
            return
        if event.message_type is MessageType.GO_AWAY:
            entry.go_away = True
            return
        if event.message_type is MessageType.STATUS_RESPONSE and event.status_response:
            status = event.status_response
            delivery = awaiting.get(status.correlation_id)
            if delivery is None or delivery.message_id in report.results:
                report.ignored_events += 1
                return
            outcome = classify_status(status)
            log.info(
                "status response",
                extra={
                    "correlation_id": status.correlation_id,
                    "message_id": delivery.message_id,
                    "error_type": status.error_type,
                    "status_code": status.status_code,
                },
            )
            settle(
                delivery,
                DeliveryResult(
                    outcome,
                    f"STATUS_RESPONSE {status.error_type} {status.status_code}",
                    status_response=status,
                    written=True,
                ),
            )
            return
        # Messages for the identity we connect as (offers to a master, ICE from peers) are not
        # ours to consume; they are counted, never logged (they carry SDP).
        report.ignored_events += 1
