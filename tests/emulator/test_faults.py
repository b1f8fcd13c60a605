"""Fault injection per channel, switched at run time from Python and from the admin endpoint;
inspection through the admin endpoint."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import websocket
from botocore.credentials import ReadOnlyCredentials

from kvs_local.emulator import Emulator, Faults
from kvs_relay.protocol import MessageType

from .conftest import (
    ANSWER,
    ICE,
    Client,
    connect_url,
    new_channel,
    open_client,
    payload,
    refused_status,
)


def admin(emulator: Emulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (the emulator's loopback admin URL)
        emulator.admin_endpoint + path, data=data, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def frames_until_the_end(client: Client) -> list[int]:
    """Opcodes of the frames read until the connection ends (a close frame counts as one)."""
    opcodes: list[int] = []
    client.ws.settimeout(3)
    while True:
        try:
            opcode, _ = client.ws.recv_data(control_frame=True)
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return opcodes
        if opcode == 0:  # websocket-client's answer when the socket has ended
            return opcodes
        opcodes.append(opcode)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return opcodes


def test_refused_handshakes_use_the_status_asked_for_then_stop(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    emu.set_faults(arn, Faults(refuse_handshakes=2, refuse_status=503))
    assert refused_status(connect_url(emu, arn, "v")) == 503
    assert refused_status(connect_url(emu, arn, "v")) == 503
    open_client(clients, connect_url(emu, arn, "v"))
    assert emu.counters(arn)["handshakes_refused_by_fault"] == 2


def test_delayed_handshakes_take_at_least_the_delay(emu: Emulator, clients: list[Client]) -> None:
    arn = new_channel(emu)
    emu.set_faults(arn, Faults(handshake_delay_seconds=0.4))
    started = time.monotonic()
    open_client(clients, connect_url(emu, arn, "v"))
    assert time.monotonic() - started >= 0.4  # a lower bound: the delay was applied


def test_a_connection_is_dropped_after_n_messages(emu: Emulator, clients: list[Client]) -> None:
    arn = new_channel(emu)
    viewer = open_client(clients, connect_url(emu, arn, "v"))
    master = open_client(clients, connect_url(emu, arn, None))
    emu.set_faults(arn, Faults(drop_after_messages=2))
    master.send({"action": "ICE_CANDIDATE", "recipientClientId": "v", "messagePayload": ICE})
    master.send({"action": "ICE_CANDIDATE", "recipientClientId": "v", "messagePayload": ICE})
    # Dropped, not closed: the socket just ends, without a close frame.
    assert frames_until_the_end(master) == []
    assert len(viewer.events()) == 2  # both messages were handled before the drop
    assert emu.counters(arn)["drops"] == 1


def test_go_away_after_n_messages_then_a_close(emu: Emulator, clients: list[Client]) -> None:
    arn = new_channel(emu)
    master = open_client(clients, connect_url(emu, arn, None))
    emu.set_faults(arn, Faults(go_away_after_messages=1, go_away_close_seconds=0.3))
    master.send({"action": "SDP_ANSWER", "recipientClientId": "v", "messagePayload": ANSWER})
    [event] = master.events(0.2)
    assert event.message_type is MessageType.GO_AWAY
    master.ws.settimeout(3)
    opcode, data = master.ws.recv_data(control_frame=True)
    assert (opcode, int.from_bytes(data[:2], "big")) == (websocket.ABNF.OPCODE_CLOSE, 1001)
    assert emu.counters(arn)["closes_fault"] == 1


def test_throttle_answers_every_message_with_client_limit_exceeded(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    master = open_client(clients, connect_url(emu, arn, None))
    viewer = open_client(clients, connect_url(emu, arn, "v"))
    emu.set_faults(arn, Faults(throttle=True))
    master.send(
        {
            "action": "SDP_ANSWER",
            "recipientClientId": "v",
            "messagePayload": ANSWER,
            "correlationId": "t",
        }
    )
    assert master.statuses()["t"][0] == "ClientLimitExceededException"
    assert viewer.events() == []
    emu.clear_faults(arn)
    master.send({"action": "SDP_ANSWER", "recipientClientId": "v", "messagePayload": ANSWER})
    assert len(viewer.events()) == 1


def test_latency_delays_every_message_and_keeps_the_order(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    master = open_client(clients, connect_url(emu, arn, None))
    viewer = open_client(clients, connect_url(emu, arn, "v"))
    emu.set_faults(arn, Faults(latency_seconds=0.3))
    payloads = [payload({"candidate": n}) for n in range(5)]
    started = time.monotonic()
    for p in payloads:
        master.send({"action": "ICE_CANDIDATE", "recipientClientId": "v", "messagePayload": p})
    first = viewer.next_event(timeout=3)
    assert time.monotonic() - started >= 0.3  # a lower bound: the latency was applied
    rest = viewer.events(0.5)
    assert [first.message_payload, *[e.message_payload for e in rest]] == payloads


def test_faults_and_inspection_from_the_admin_endpoint(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    status, faults = admin(emu, "PUT", f"/faults?channelArn={arn}", {"refuse_handshakes": 1})
    assert (status, faults["refuse_handshakes"]) == (200, 1)
    assert emu.hub.faults(arn).refuse_handshakes == 1
    assert refused_status(connect_url(emu, arn, None)) == 503
    master = open_client(clients, connect_url(emu, arn, None))
    master.send({"action": "SDP_ANSWER", "recipientClientId": "off", "messagePayload": ANSWER})
    master.events(0.1)

    status, seen = admin(emu, "GET", f"/recipient?channelArn={arn}&clientId=off")
    assert status == 200
    assert [e["messagePayload"] for e in seen["pending"]] == [ANSWER]
    assert seen["sentBy"] == []
    status, by_master = admin(emu, "GET", f"/recipient?channelArn={arn}")
    assert [m["recipientClientId"] for m in by_master["sentBy"]] == ["off"]
    status, counters = admin(emu, "GET", f"/counters?channelArn={arn}")
    assert counters["handshakes_refused_by_fault"] == 1
    assert counters["messages_held"] == 1
    status, channels = admin(emu, "GET", "/channels")
    [listed] = [c for c in channels if c["ChannelARN"] == arn]
    assert [c["role"] for c in listed["connections"]] == ["MASTER"]

    assert admin(emu, "DELETE", f"/faults?channelArn={arn}")[1]["refuse_handshakes"] == 0


def test_the_admin_endpoint_names_a_bad_fault(emu: Emulator) -> None:
    arn = new_channel(emu)
    status, body = admin(emu, "PUT", f"/faults?channelArn={arn}", {"explode": True})
    assert status == 400
    assert body["error"].startswith("explode: is not a fault")
    status, body = admin(emu, "PUT", f"/faults?channelArn={arn}", {"latency_seconds": "soon"})
    assert (status, body["error"]) == (400, "latency_seconds: must be a non-negative float")
    status, body = admin(emu, "GET", "/counters?channelArn=arn:nope")
    assert status == 400
    assert "channelArn" in body["error"]


def test_session_credentials_from_the_admin_endpoint_connect(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    status, issued = admin(emu, "POST", "/session-credentials", {"DurationSeconds": 60})
    assert status == 200
    credentials = ReadOnlyCredentials(
        issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"]
    )
    open_client(clients, connect_url(emu, arn, "v", credentials=credentials))
