"""The delivery engine: send a batch's valid requests over signaling WebSockets.

Shape (docs/contract.md, "Delivery semantics"):

* requests are grouped by sender, ``(channel ARN, role, clientId)``; each sender gets one
  WebSocket per batch that carries its messages in queue order; senders run in parallel
  (bounded). On a FIFO queue, senders sharing a message group share a lane (one thread), so a
  group's messages go out strictly in queue order even across senders (:func:`lanes`);
* each connect takes a slot of the per-channel connect quota, each send waits for the
  per-connection send quota of its action (:mod:`kvs_relay.pacing`);
* every message carries a correlationId; after a lane's last send the engine listens for
  STATUS_RESPONSEs and matches them by correlationId, for a window that follows the network
  (:func:`status_window`: a multiple of the slowest handshake, within a floor and a cap);
* a GO_AWAY or an unexpected close makes it reconnect and send only what was not yet sent;
  nothing is sent twice on purpose. Each write is followed by a ping: the pong proves the service
  read every frame before it. A message written into a connection that then drops before its
  pong is reported FAILED, "delivery uncertain" (it may or may not have arrived), never resent;
* on FIFO queues a message group stops at its first failure: later messages of that group are
  not sent and come back as RETRY.

All collaborators (endpoints, credentials, connector, clock, sleep) are arguments, so tests run
the engine with the real adapters against the emulator, and with a fake clock where needed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
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
from kvs_relay.transport import (
    ConnectFailure,
    ConnectionLost,
    Connector,
    Pong,
    SignalingConnection,
)

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


def status_window(handshake_seconds: float, *, cap: float, floor: float, factor: float) -> float:
    """How long to listen for STATUS_RESPONSEs after a lane's last send.

    A rejection comes back one round trip after the send; a WebSocket handshake spans several
    (TCP, TLS, the HTTP upgrade), so ``factor`` times the lane's slowest handshake covers it with
    room to spare, whatever the network. Never below ``floor``, never above ``cap``
    (``STATUS_WAIT_SECONDS``); a factor of 0 always waits the cap.
    """
    if factor <= 0:
        return cap
    return min(cap, max(floor, factor * handshake_seconds))


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


def lanes(deliveries: Sequence[Delivery], *, fifo: bool) -> list[list[Delivery]]:
    """Independent sequences of deliveries, each in queue order; lanes run in parallel.

    On a standard queue a lane is one sender's group. On a FIFO queue, senders that share a
    message group share a lane, so that group's messages go out strictly in queue order.
    """
    parent: dict[object, object] = {}

    def root(node: object) -> object:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for delivery in deliveries:
        sender = ("sender", delivery.connection_key)
        root(sender)
        if fifo and delivery.message_group_id is not None:
            parent[root(("group", delivery.message_group_id))] = root(sender)
    grouped: dict[object, list[Delivery]] = {}
    for delivery in deliveries:
        grouped.setdefault(root(("sender", delivery.connection_key)), []).append(delivery)
    return list(grouped.values())


@dataclass(slots=True)
class _Listening:
    """One connection whose sent messages may still be answered."""

    connection: SignalingConnection
    handshake_seconds: float = 0.0
    go_away: bool = False
    written: list[Delivery] = field(default_factory=list)
    """Every message written on this connection, in order (ping n follows message n)."""
    confirmed: int = 0
    """How many of them the service has read (proved by the latest pong)."""

    def unconfirmed(self) -> list[Delivery]:
        return self.written[self.confirmed :]


@dataclass(slots=True)
class _Sender:
    """One sender's connection state within a lane."""

    key: ConnectionKey
    current: _Listening | None = None
    pacer: SendPacer | None = None
    failures: int = 0  # failed connects and lost connections; a GO_AWAY is not a failure
    connects: int = 0
    last_failure: str = "not connected"
    gave_up: DeliveryResult | None = None


Settle = Callable[[Delivery, DeliveryResult], None]


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
        status_wait_min_seconds: float = 0.1,
        status_wait_handshake_factor: float = 2.0,
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
        self._status_min = status_wait_min_seconds
        self._status_factor = status_wait_handshake_factor
        self._margin = pacing_margin_seconds
        self._max_parallel = max(1, max_parallel_connections)
        self._max_failures = max(1, max_connects_per_group)
        # Shared across batches (the engine lives as long as the warm container).
        self._connect_pacer = connect_pacer or ConnectPacer(quotas, pacing_margin_seconds)
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock

    def deliver(
        self,
        deliveries: Sequence[Delivery],
        *,
        fifo: bool = False,
        failed_groups: FailedGroups | None = None,
    ) -> DeliveryReport:
        """Send every delivery; a result for each message id. Never raises for one delivery."""
        report = DeliveryReport()
        work = lanes(deliveries, fifo=fifo)
        if not work:
            return report
        gate = failed_groups if failed_groups is not None else FailedGroups()
        lock = threading.Lock()

        def run(items: list[Delivery]) -> None:
            partial = self._deliver_lane(items, gate)
            with lock:
                report.results.update(partial.results)
                report.connections += partial.connections
                report.status_wait_seconds += partial.status_wait_seconds
                report.ignored_events += partial.ignored_events

        workers = min(self._max_parallel, len(work))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="signaling") as pool:
            futures = [pool.submit(run, items) for items in work]
            for future in futures:
                future.result()
        return report

    def _deliver_lane(self, items: list[Delivery], gate: FailedGroups) -> DeliveryReport:
        report = DeliveryReport()
        awaiting: dict[str, Delivery] = {}
        listening: list[_Listening] = []
        senders: dict[ConnectionKey, _Sender] = {}

        def settle(delivery: Delivery, result: DeliveryResult) -> None:
            report.results[delivery.message_id] = result
            if result.status is OutcomeStatus.RETRY:
                gate.add(delivery.message_group_id)

        try:
            for delivery in items:
                if delivery.message_group_id is not None and delivery.message_group_id in gate:
                    settle(
                        delivery,
                        DeliveryResult(
                            OutcomeStatus.RETRY, "an earlier message of its FIFO group failed"
                        ),
                    )
                    continue
                sender = senders.setdefault(
                    delivery.connection_key, _Sender(delivery.connection_key)
                )
                failure = self._send_one(
                    sender, delivery, len(items), awaiting, listening, settle, report
                )
                if failure is not None:
                    settle(delivery, failure)
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

    def _send_one(
        self,
        sender: _Sender,
        delivery: Delivery,
        lane_size: int,
        awaiting: dict[str, Delivery],
        listening: list[_Listening],
        settle: Settle,
        report: DeliveryReport,
    ) -> DeliveryResult | None:
        """Send one message on its sender's connection (connecting as needed).

        None when sent; otherwise the result to settle it with. Reconnects after a GO_AWAY or
        a lost connection and sends this message on the new one.
        """
        channel_arn, role, client_id = sender.key
        while True:
            if sender.gave_up is not None:
                return sender.gave_up
            if sender.current is None or sender.pacer is None:
                # Every connection sends at least one message unless it fails, so the second
                # bound holds even when the service keeps sending GO_AWAY.
                if sender.failures >= self._max_failures or sender.connects >= (
                    self._max_failures + lane_size
                ):
                    sender.gave_up = DeliveryResult(OutcomeStatus.RETRY, sender.last_failure)
                    continue
                if sender.failures:
                    self._sleep(0.1 * sender.failures)  # a short back-off before reconnecting
                sender.connects += 1
                try:
                    opened = self._open(channel_arn, role, client_id)
                except ControlPlaneError as exc:
                    status = OutcomeStatus.RETRY if exc.transient else OutcomeStatus.FAILED
                    sender.gave_up = DeliveryResult(status, f"{exc.operation}: {exc.error_type}")
                    continue
                except ConnectFailure as exc:
                    sender.failures += 1
                    sender.last_failure = exc.reason
                    if exc.permanent:
                        sender.gave_up = DeliveryResult(OutcomeStatus.FAILED, exc.reason)
                    else:
                        self._endpoints.forget(channel_arn, role)
                    continue
                report.connections += 1
                sender.current = opened
                sender.pacer = SendPacer(self._quotas, self._margin)  # quotas are per connection
                listening.append(sender.current)
            current, pacer = sender.current, sender.pacer
            action = delivery.message.action
            try:
                # Read what has arrived (statuses, GO_AWAY, a close) before writing: this is how
                # a closed connection is noticed before a message is written into it.
                self._read_until(
                    current, pacer.next_send_at(action, self._clock()), awaiting, settle, report
                )
                if current.go_away:
                    # Keep listening on it for answers to what it carried; send on a new one.
                    log.info("GO_AWAY received; reconnecting")
                    sender.current = None
                    continue
                current.connection.send(delivery.message.to_json())
                current.written.append(delivery)
                current.connection.ping(str(len(current.written)).encode())
            except ConnectionLost:
                log.info("signaling connection lost; reconnecting")
                sender.failures += 1
                sender.last_failure = "connection lost"
                listening.remove(current)
                current.connection.close()
                self._uncertain(current, report, settle)
                sender.current = None
                if current.written and current.written[-1] is delivery:
                    return None  # written, then lost: settled as uncertain, not sent again
                continue
            pacer.sent(action, self._clock())
            awaiting[delivery.correlation_id] = delivery
            return None

    def _open(self, channel_arn: str, role: Role, client_id: str | None) -> _Listening:
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
        started = self._clock()
        connection = self._connector.connect(url)
        return _Listening(connection, handshake_seconds=self._clock() - started)

    def _wait_until(self, at: float) -> None:
        delay = at - self._clock()
        if delay > 0:
            self._sleep(delay)

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
        slowest = max((entry.handshake_seconds for entry in listening), default=0.0)
        window = status_window(
            slowest, cap=self._status_wait, floor=self._status_min, factor=self._status_factor
        )
        deadline = self._clock() + window
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
                    # What the service read on it (pong-confirmed) stays SENT; the rest may
                    # never have arrived.
                    open_entries.remove(entry)
                    self._uncertain(entry, report, settle)
                    continue
                if frame is not None:
                    self._handle(frame, entry, awaiting, settle, report)

    @staticmethod
    def _uncertain(entry: _Listening, report: DeliveryReport, settle: Settle) -> None:
        """Settle what was written on a lost connection but never confirmed read."""
        for delivery in entry.unconfirmed():
            if delivery.message_id not in report.results:
                settle(
                    delivery,
                    DeliveryResult(
                        OutcomeStatus.FAILED,
                        "delivery uncertain: the connection was lost before the service "
                        "confirmed it read the message; not sent again",
                        written=True,
                    ),
                )
        entry.confirmed = len(entry.written)

    def _handle(
        self,
        frame: str | Pong,
        entry: _Listening,
        awaiting: dict[str, Delivery],
        settle: Callable[[Delivery, DeliveryResult], None],
        report: DeliveryReport,
    ) -> None:
        if isinstance(frame, Pong):
            with contextlib.suppress(ValueError):  # not one of our pings: nothing confirmed
                entry.confirmed = max(entry.confirmed, int(frame.payload))
            return
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
