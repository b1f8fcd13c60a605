"""The signaling quotas, each enforced and each shrinkable: connects per second per channel and
role, viewers per channel, sends per second per connection by type, idle timeout, maximum
connection duration, and a GO_AWAY before every service-side close."""

from __future__ import annotations

import time

import pytest
import websocket

from kvs_local.emulator import Emulator, EmulatorConfig
from kvs_local.emulator.pytest_plugin import EmulatorFactory
from kvs_relay.protocol import MessageType, parse_server_event
from kvs_relay.quotas import SignalingQuotas

from .conftest import (
    ANSWER,
    ICE,
    OFFER,
    Client,
    connect_url,
    new_channel,
    open_client,
    refused_status,
)


@pytest.mark.parametrize("client_ids", [[None] * 4, ["a", "b", "c", "d"]], ids=["master", "viewer"])
def test_a_fourth_connect_within_a_second_is_throttled(
    emu: Emulator, clients: list[Client], client_ids: list[str | None]
) -> None:
    arn = new_channel(emu)
    for client_id in client_ids[:3]:
        open_client(clients, connect_url(emu, arn, client_id))
    assert refused_status(connect_url(emu, arn, client_ids[3])) == 429
    assert emu.counters(arn)["connect_throttled"] == 1


def test_master_and_viewer_connects_have_separate_windows(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    for client_id in (None, None, None, "a", "b", "c"):
        open_client(clients, connect_url(emu, arn, client_id))
    assert emu.counters(arn).get("connect_throttled", 0) == 0


def test_viewers_per_channel_are_limited(
    kvs_emulator_factory: EmulatorFactory, clients: list[Client]
) -> None:
    emulator = kvs_emulator_factory(
        EmulatorConfig(quotas=SignalingQuotas(viewer_connections_per_channel=2))
    )
    arn = new_channel(emulator)
    first = open_client(clients, connect_url(emulator, arn, "a"))
    open_client(clients, connect_url(emulator, arn, "b"))
    assert refused_status(connect_url(emulator, arn, "c")) == 429
    assert emulator.counters(arn)["viewer_limit_refused"] == 1
    first.close()
    first.events(0.3)
    time.sleep(1.0)  # out of the connect window, so only the viewer count decides
    open_client(clients, connect_url(emulator, arn, "c"))


@pytest.mark.parametrize(
    ("action", "body", "allowed"),
    [("SDP_OFFER", OFFER, 5), ("SDP_ANSWER", ANSWER, 5), ("ICE_CANDIDATE", ICE, 20)],
)
def test_sends_per_second_per_connection_by_message_type(
    emu: Emulator, clients: list[Client], action: str, body: str, allowed: int
) -> None:
    arn = new_channel(emu)
    master = open_client(clients, connect_url(emu, arn, None))
    viewer = open_client(clients, connect_url(emu, arn, "v"))
    for n in range(allowed + 1):
        viewer.send({"action": action, "messagePayload": body, "correlationId": f"m{n}"})
    statuses = viewer.statuses()
    # All sent within well under a second: exactly the one over the quota is throttled.
    assert list(statuses) == [f"m{allowed}"]
    assert statuses[f"m{allowed}"][0] == "ClientLimitExceededException"
    assert len(master.events()) == allowed
    counters = emu.counters(arn)
    assert counters["send_throttled"] == 1
    assert counters[f"send_throttled_{action.lower()}"] == 1


def test_each_connection_has_its_own_send_window(emu: Emulator, clients: list[Client]) -> None:
    arn = new_channel(emu)
    open_client(clients, connect_url(emu, arn, None))
    viewers = [open_client(clients, connect_url(emu, arn, f"v{n}")) for n in range(2)]
    for viewer in viewers:
        for n in range(5):
            viewer.send({"action": "SDP_OFFER", "messagePayload": OFFER, "correlationId": f"o{n}"})
    assert [viewer.statuses() for viewer in viewers] == [{}, {}]


def _recv_close(client: Client, timeout: float) -> tuple[list[MessageType], int]:
    """Events up to the service's close frame, and its close code."""
    seen: list[MessageType] = []
    client.ws.settimeout(timeout)
    while True:
        opcode, data = client.ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return seen, int.from_bytes(data[:2], "big")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            seen.append(parse_server_event(data).message_type)


def test_an_idle_connection_gets_go_away_then_is_closed(
    kvs_emulator_factory: EmulatorFactory, clients: list[Client]
) -> None:
    emulator = kvs_emulator_factory(
        EmulatorConfig(quotas=SignalingQuotas(idle_timeout_seconds=0.6, go_away_lead_seconds=0.3))
    )
    arn = new_channel(emulator)
    idle = open_client(clients, connect_url(emulator, arn, "idle"))
    events, code = _recv_close(idle, timeout=3)
    assert (events, code) == ([MessageType.GO_AWAY], 1001)
    assert emulator.counters(arn)["closes_idle"] == 1


def test_activity_keeps_a_connection_from_idling_out(
    kvs_emulator_factory: EmulatorFactory, clients: list[Client]
) -> None:
    emulator = kvs_emulator_factory(
        EmulatorConfig(quotas=SignalingQuotas(idle_timeout_seconds=0.6, go_away_lead_seconds=0.1))
    )
    arn = new_channel(emulator)
    busy = open_client(clients, connect_url(emulator, arn, "busy"))
    pinging = open_client(clients, connect_url(emulator, arn, "pinging"))
    for _ in range(8):  # 1.2 s: twice the idle timeout
        busy.send({"action": "ICE_CANDIDATE", "messagePayload": ICE})
        pinging.ws.ping(b"keep-alive")
        time.sleep(0.15)
    assert emulator.counters(arn).get("go_aways", 0) == 0
    assert busy.ws.connected
    assert pinging.ws.connected


def test_the_maximum_duration_ends_even_a_busy_connection(
    kvs_emulator_factory: EmulatorFactory, clients: list[Client]
) -> None:
    emulator = kvs_emulator_factory(
        EmulatorConfig(quotas=SignalingQuotas(max_connection_seconds=0.8, go_away_lead_seconds=0.4))
    )
    arn = new_channel(emulator)
    open_client(clients, connect_url(emulator, arn, None))
    viewer = open_client(clients, connect_url(emulator, arn, "v"))
    started = time.monotonic()
    got_go_away_at = None
    viewer.ws.settimeout(0.1)
    while time.monotonic() - started < 3:
        viewer.send({"action": "ICE_CANDIDATE", "messagePayload": ICE})
        try:
            opcode, data = viewer.ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            continue
        if opcode == websocket.ABNF.OPCODE_TEXT and b"GO_AWAY" in data:
            got_go_away_at = time.monotonic() - started
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
    assert got_go_away_at is not None  # the GO_AWAY came first, then the close
    counters = emulator.counters(arn)
    assert counters["closes_max_duration"] == 2  # the idle master's connection ended too
    assert counters["go_aways"] == 2
