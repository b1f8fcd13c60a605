"""The signaling data plane as a state machine: no sockets, no clock of its own.

:class:`SignalingHub` decides everything the service decides for a signaling WebSocket (who may
connect, what happens to each frame a client sends, when the service closes a connection) and
answers with :class:`Deliver` and :class:`Close` actions. The server adapter performs them on
real WebSockets; tests can drive the hub directly. Frames are parsed and built with the same
:mod:`kvs_relay.protocol` definitions the sender uses.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field

from kvs_local.emulator.channels import Channel, ChannelRegistry
from kvs_local.emulator.config import Faults, SecondMasterPolicy
from kvs_relay.protocol import (
    BAD_REQUEST_STATUS,
    CLIENT_LIMIT_EXCEEDED,
    INVALID_ARGUMENT,
    Action,
    ClientMessage,
    MessageRejection,
    MessageType,
    Role,
    ServerEvent,
    StatusResponse,
    id_violation,
    parse_client_message,
)
from kvs_relay.quotas import SignalingQuotas, SlidingWindow

SERVICE_CLOSE_CODE = 1001
"""WebSocket close code for service-side closes ("going away"); the real code is undocumented."""
_OVERWRITTEN_WHEN_HELD = (Action.SDP_OFFER, Action.SDP_ANSWER)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused handshake: the HTTP status and the error the body names."""

    status: int
    error_type: str
    message: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """Write ``frame`` to connection ``connection_id``."""

    connection_id: int
    frame: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close connection ``connection_id``; ``abort`` drops it without a close frame."""

    connection_id: int
    reason: str
    code: int = SERVICE_CLOSE_CODE
    abort: bool = False


HubAction = Deliver | Close


@dataclass(slots=True)
class Connection:
    """One open signaling WebSocket as the service tracks it."""

    id: int
    channel_arn: str
    client_id: str | None
    opened_at: float
    last_activity: float
    windows: dict[Action, SlidingWindow]
    messages: int = 0
    go_away_sent: bool = False
    close_at: float | None = None
    close_reason: str = ""
    closing: bool = False

    @property
    def role(self) -> Role:
        return Role.MASTER if self.client_id is None else Role.VIEWER


@dataclass(slots=True)
class _Held:
    held_at: float
    sender: str | None
    action: Action
    event: ServerEvent


@dataclass(slots=True)
class _ChannelState:
    masters: list[int] = field(default_factory=list)
    viewers: dict[str, list[int]] = field(default_factory=dict)
    held: dict[str | None, list[_Held]] = field(default_factory=dict)
    connect_windows: dict[Role, SlidingWindow] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    faults: Faults = field(default_factory=Faults)
    refusals_left: int = 0
    sent_by: dict[str | None, list[ClientMessage]] = field(default_factory=dict)
    sent_at: dict[str | None, list[float]] = field(default_factory=dict)
    delivered_to: dict[str | None, list[ServerEvent]] = field(default_factory=dict)


def _status_event(correlation_id: str, error_type: str, status: str, text: str) -> ServerEvent:
    return ServerEvent(
        message_type=MessageType.STATUS_RESPONSE,
        sender_client_id="",
        status_response=StatusResponse(correlation_id, error_type, status, text),
    )


class SignalingHub:
    """Connections, routing, held messages, quotas and faults of every channel (thread-safe)."""

    def __init__(
        self,
        registry: ChannelRegistry,
        quotas: SignalingQuotas,
        second_master: SecondMasterPolicy = SecondMasterPolicy.LATEST_WINS,
    ) -> None:
        self._registry = registry
        self._quotas = quotas
        self._second_master = second_master
        self._channels: dict[str, _ChannelState] = {}
        self._connections: dict[int, Connection] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # Faults and inspection (the Python and admin API).

    def _state(self, channel_arn: str) -> _ChannelState:
        return self._channels.setdefault(channel_arn, _ChannelState())

    def set_faults(self, channel_arn: str, faults: Faults) -> None:
        with self._lock:
            state = self._state(channel_arn)
            state.faults = faults
            state.refusals_left = faults.refuse_handshakes

    def faults(self, channel_arn: str) -> Faults:
        with self._lock:
            state = self._channels.get(channel_arn)
            return state.faults if state else Faults()

    def counters(self, channel_arn: str) -> dict[str, int]:
        with self._lock:
            state = self._channels.get(channel_arn)
            return dict(state.counters) if state else {}

    def sent_by(self, channel_arn: str, client_id: str | None) -> list[ClientMessage]:
        """Messages the service accepted from this client (None: the master), in order."""
        with self._lock:
            state = self._channels.get(channel_arn)
            return list(state.sent_by.get(client_id, [])) if state else []

    def sent_times(self, channel_arn: str, client_id: str | None) -> list[float]:
        """When the service accepted each of :meth:`sent_by`'s messages (the hub's clock, the
        emulator's monotonic one), in the same order."""
        with self._lock:
            state = self._channels.get(channel_arn)
            return list(state.sent_at.get(client_id, [])) if state else []

    def delivered_to(self, channel_arn: str, client_id: str | None) -> list[ServerEvent]:
        """Events delivered to this client (None: the master), STATUS_RESPONSE and GO_AWAY too."""
        with self._lock:
            state = self._channels.get(channel_arn)
            return list(state.delivered_to.get(client_id, [])) if state else []

    def pending(self, channel_arn: str, client_id: str | None, now: float) -> list[ServerEvent]:
        """Messages held for a recipient that is not connected, still within the TTL."""
        with self._lock:
            self._expire_held(channel_arn, now)
            state = self._channels.get(channel_arn)
            if state is None:
                return []
            return [held.event for held in state.held.get(client_id, [])]

    def connections(self, channel_arn: str | None = None) -> list[Connection]:
        with self._lock:
            return [
                c
                for c in self._connections.values()
                if channel_arn is None or c.channel_arn == channel_arn
            ]

    def open_connection_ids(self) -> list[int]:
        with self._lock:
            return list(self._connections)

    # Handshakes.

    def handshake_fault(self, channel_arn: str) -> Refusal | None:
        """A refusal injected by the channel's faults (each one used up), or None."""
        with self._lock:
            state = self._state(channel_arn)
            if state.refusals_left <= 0:
                return None
            state.refusals_left -= 1
            state.counters["handshakes_refused_by_fault"] += 1
            return Refusal(state.faults.refuse_status, "InjectedFault", "Handshake refused.")

    def admit(
        self, channel: Channel, client_id: str | None, now: float
    ) -> tuple[Connection, list[HubAction]] | Refusal:
        """Open a connection for the master (``client_id`` None) or a viewer, or refuse it.

        The caller has verified the signature and the caller's right to the channel.
        """
        with self._lock:
            state = self._state(channel.arn)
            if client_id is not None:
                problem = id_violation("X-Amz-ClientId", client_id, required=True)
                if problem is not None:
                    state.counters["handshakes_refused_invalid"] += 1
                    return Refusal(400, INVALID_ARGUMENT, str(problem))
            role = Role.MASTER if client_id is None else Role.VIEWER
            if role is Role.VIEWER:
                viewers = sum(len(ids) for ids in state.viewers.values())
                if viewers >= self._quotas.viewer_connections_per_channel:
                    state.counters["viewer_limit_refused"] += 1
                    return Refusal(
                        429,
                        CLIENT_LIMIT_EXCEEDED,
                        f"The channel has {viewers} viewer connections, the most it allows.",
                    )
            rate = (
                self._quotas.connect_as_master_per_second
                if role is Role.MASTER
                else self._quotas.connect_as_viewer_per_second
            )
            window = state.connect_windows.setdefault(role, SlidingWindow.per_second(rate))
            if not window.try_acquire(now):
                state.counters["connect_throttled"] += 1
                return Refusal(
                    429, CLIENT_LIMIT_EXCEEDED, f"ConnectAs{role.value.title()} rate exceeded."
                )
            connection = Connection(
                id=next(self._ids),
                channel_arn=channel.arn,
                client_id=client_id,
                opened_at=now,
                last_activity=now,
                windows={
                    action: SlidingWindow.per_second(self._quotas.sends_per_second(action))
                    for action in Action
                },
            )
            self._connections[connection.id] = connection
            state.counters["connects"] += 1
            state.counters[f"connects_{role.value.lower()}"] += 1
            actions: list[HubAction] = []
            if role is Role.MASTER:
                # One concurrent master by quota: beyond it, the second-master policy applies.
                if len(state.masters) >= self._quotas.master_connections_per_channel:
                    state.counters["master_superseded"] += 1
                    if self._second_master is SecondMasterPolicy.CLOSE_OLDER:
                        for older in state.masters:
                            self._connections[older].closing = True
                            actions.append(Close(older, "another master connected"))
                state.masters.append(connection.id)
            else:
                assert client_id is not None
                state.viewers.setdefault(client_id, []).append(connection.id)
            actions += self._release_held(channel, state, client_id, now)
            return connection, actions

    def disconnect(self, connection_id: int) -> None:
        """Forget a connection that has closed (either side)."""
        with self._lock:
            connection = self._connections.pop(connection_id, None)
            if connection is None:
                return
            state = self._state(connection.channel_arn)
            state.counters["disconnects"] += 1
            if connection.client_id is None:
                state.masters.remove(connection.id)
            else:
                ids = state.viewers.get(connection.client_id, [])
                if connection.id in ids:
                    ids.remove(connection.id)
                if not ids:
                    state.viewers.pop(connection.client_id, None)

    # Messages.

    def activity(self, connection_id: int, now: float) -> None:
        """A ping or any other frame: the connection is not idle."""
        with self._lock:
            connection = self._connections.get(connection_id)
            if connection is not None:
                connection.last_activity = now

    def receive(self, connection_id: int, frame: str | bytes, now: float) -> list[HubAction]:
        """What the service does with one frame a client sent.

        A frame the service has read is acted on even when its connection is closing (dropped,
        or closed after a GO_AWAY): only frames it never read are lost with a connection.
        """
        with self._lock:
            connection = self._connections.get(connection_id)
            channel = self._registry.get(connection.channel_arn) if connection else None
            if connection is None or channel is None:
                return []
            state = self._state(channel.arn)
            connection.last_activity = now
            state.counters["messages_received"] += 1
            actions = self._handle(channel, state, connection, frame, now)
            connection.messages += 1
            if not connection.closing:
                actions += self._message_faults(state, connection, now)
            return actions

    def _handle(
        self,
        channel: Channel,
        state: _ChannelState,
        sender: Connection,
        frame: str | bytes,
        now: float,
    ) -> list[HubAction]:
        parsed = parse_client_message(frame, sender.role)
        if isinstance(parsed, MessageRejection):
            state.counters["messages_rejected"] += 1
            status = parsed.status_response()
            if status is None:
                return []
            return [
                self._to_sender(
                    state,
                    sender,
                    _status_event(
                        status.correlation_id,
                        status.error_type,
                        status.status_code,
                        status.description,
                    ),
                )
            ]
        throttled_by = None
        if state.faults.throttle:
            throttled_by = "throttled_by_fault"
        elif not sender.windows[parsed.action].try_acquire(now):
            throttled_by = "send_throttled"
            state.counters[f"send_throttled_{parsed.action.value.lower()}"] += 1
        if throttled_by is not None:
            state.counters[throttled_by] += 1
            if parsed.correlation_id is None:
                return []
            return [
                self._to_sender(
                    state,
                    sender,
                    _status_event(
                        parsed.correlation_id,
                        CLIENT_LIMIT_EXCEEDED,
                        BAD_REQUEST_STATUS,
                        f"Rate exceeded for {parsed.action.value} on this connection.",
                    ),
                )
            ]
        state.counters["messages_accepted"] += 1
        state.sent_by.setdefault(sender.client_id, []).append(parsed)
        state.sent_at.setdefault(sender.client_id, []).append(now)
        recipient = None if sender.role is Role.VIEWER else parsed.recipient_client_id
        event = ServerEvent(
            message_type=MessageType(parsed.action.value),
            sender_client_id=sender.client_id or "",
            message_payload=parsed.message_payload,
        )
        target = self._current_connection(state, recipient)
        if target is not None:
            state.counters["messages_delivered"] += 1
            return [self._deliver(state, target, event)]
        self._hold(state, recipient, _Held(now, sender.client_id, parsed.action, event))
        return []

    def _to_sender(self, state: _ChannelState, sender: Connection, event: ServerEvent) -> Deliver:
        state.counters["status_responses"] += 1
        return self._deliver(state, sender, event)

    def _deliver(self, state: _ChannelState, target: Connection, event: ServerEvent) -> Deliver:
        state.delivered_to.setdefault(target.client_id, []).append(event)
        return Deliver(target.id, event.to_json())

    def _current_connection(self, state: _ChannelState, recipient: str | None) -> Connection | None:
        ids = state.masters if recipient is None else state.viewers.get(recipient, [])
        for connection_id in reversed(ids):  # the newest open connection of that identity
            connection = self._connections.get(connection_id)
            if connection is not None and not connection.closing:
                return connection
        return None

    def _hold(self, state: _ChannelState, recipient: str | None, held: _Held) -> None:
        queue = state.held.setdefault(recipient, [])
        if held.action in _OVERWRITTEN_WHEN_HELD:
            # An undelivered offer or answer for the same client is overwritten by a newer one.
            kept = [h for h in queue if (h.sender, h.action) != (held.sender, held.action)]
            state.counters["messages_overwritten"] += len(queue) - len(kept)
            queue[:] = kept
        queue.append(held)
        state.counters["messages_held"] += 1

    def _release_held(
        self, channel: Channel, state: _ChannelState, recipient: str | None, now: float
    ) -> list[HubAction]:
        self._expire_held(channel.arn, now)
        waiting = state.held.pop(recipient, [])
        target = self._current_connection(state, recipient)
        if target is None:
            if waiting:
                state.held[recipient] = waiting
            return []
        state.counters["messages_delivered_from_hold"] += len(waiting)
        state.counters["messages_delivered"] += len(waiting)
        return [self._deliver(state, target, held.event) for held in waiting]

    def _expire_held(self, channel_arn: str, now: float) -> None:
        state = self._channels.get(channel_arn)
        channel = self._registry.get(channel_arn)
        if state is None or channel is None:
            return
        for recipient, queue in list(state.held.items()):
            kept = [h for h in queue if now < h.held_at + channel.message_ttl_seconds]
            state.counters["messages_expired"] += len(queue) - len(kept)
            if kept:
                state.held[recipient] = kept
            else:
                del state.held[recipient]

    def _message_faults(
        self, state: _ChannelState, connection: Connection, now: float
    ) -> list[HubAction]:
        faults = state.faults
        if faults.drop_after_messages is not None and (
            connection.messages >= faults.drop_after_messages
        ):
            connection.closing = True
            state.counters["drops"] += 1
            return [Close(connection.id, "dropped by fault", abort=True)]
        if (
            faults.go_away_after_messages is not None
            and connection.messages >= faults.go_away_after_messages
            and not connection.go_away_sent
        ):
            return self._go_away(state, connection, now + faults.go_away_close_seconds, "fault")
        return []

    def _go_away(
        self, state: _ChannelState, connection: Connection, close_at: float, reason: str
    ) -> list[HubAction]:
        connection.go_away_sent = True
        connection.close_at = close_at
        connection.close_reason = reason
        state.counters["go_aways"] += 1
        return [self._deliver(state, connection, ServerEvent(MessageType.GO_AWAY))]

    # Time.

    def tick(self, now: float) -> list[HubAction]:
        """Service-side closes that are due (GO_AWAY first), and held-message expiry."""
        actions: list[HubAction] = []
        with self._lock:
            for channel_arn in list(self._channels):
                self._expire_held(channel_arn, now)
            quotas = self._quotas
            for connection in list(self._connections.values()):
                if connection.closing:
                    continue
                state = self._state(connection.channel_arn)
                if connection.close_at is not None and now >= connection.close_at:
                    connection.closing = True
                    state.counters[f"closes_{connection.close_reason.replace(' ', '_')}"] += 1
                    actions.append(Close(connection.id, connection.close_reason))
                    continue
                if connection.go_away_sent:
                    continue
                idle_at = connection.last_activity + quotas.idle_timeout_seconds
                expires_at = connection.opened_at + quotas.max_connection_seconds
                close_at, reason = min((idle_at, "idle"), (expires_at, "max duration"))
                if now >= close_at - quotas.go_away_lead_seconds:
                    actions += self._go_away(state, connection, max(close_at, now), reason)
        return actions

    def channel_deleted(self, channel_arn: str) -> list[HubAction]:
        """Close every connection of a deleted channel and forget its state."""
        with self._lock:
            actions: list[HubAction] = []
            for connection in self._connections.values():
                if connection.channel_arn == channel_arn and not connection.closing:
                    connection.closing = True
                    actions.append(Close(connection.id, "channel deleted"))
            state = self._channels.pop(channel_arn, None)
            if state is not None:
                state.held.clear()
            return actions
