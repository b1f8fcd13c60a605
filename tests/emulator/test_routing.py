"""Where messages go: master to a viewer, viewer to the master, held for offline recipients,
overwritten answers, and the STATUS_RESPONSE for every rejected frame (raw frames included)."""

from __future__ import annotations

import pytest

from kvs_local.emulator import Emulator, EmulatorConfig, SecondMasterPolicy
from kvs_local.emulator.pytest_plugin import EmulatorFactory
from kvs_relay.protocol import MessageType

from .conftest import (
    ANSWER,
    ICE,
    OFFER,
    Client,
    connect_url,
    new_channel,
    open_client,
    payload,
)


def test_master_reaches_the_viewer_named_by_recipient_client_id(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    master = open_client(clients, connect_url(emu, arn, None))
    v1 = open_client(clients, connect_url(emu, arn, "v1"))
    v2 = open_client(clients, connect_url(emu, arn, "v2"))
    master.send({"action": "SDP_ANSWER", "recipientClientId": "v1", "messagePayload": ANSWER})
    [event] = v1.events()
    assert (event.message_type, event.sender_client_id, event.message_payload) == (
        MessageType.SDP_ANSWER,
        "",
        ANSWER,
    )
    assert v2.events() == []
    assert master.events() == []  # nothing comes back for an accepted message


def test_a_viewer_reaches_the_master_whatever_recipient_it_names(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    master = open_client(clients, connect_url(emu, arn, None))
    v1 = open_client(clients, connect_url(emu, arn, "v1"))
    v2 = open_client(clients, connect_url(emu, arn, "v2"))
    v1.send({"action": "SDP_OFFER", "recipientClientId": "v2", "messagePayload": OFFER})
    v1.send({"action": "ICE_CANDIDATE", "messagePayload": ICE, "correlationId": "ice-1"})
    events = master.events()
    assert [(e.message_type, e.sender_client_id, e.message_payload) for e in events] == [
        (MessageType.SDP_OFFER, "v1", OFFER),
        (MessageType.ICE_CANDIDATE, "v1", ICE),
    ]
    assert v2.events() == []  # never viewer to viewer
    assert v1.events() == []
    [offer, _] = emu.sent_by(arn, "v1")
    assert offer.recipient_client_id is None  # ignored, as the service ignores it


def test_a_message_for_an_offline_viewer_waits_for_it_within_the_ttl(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    master = open_client(clients, connect_url(emu, arn, None))
    master.send({"action": "SDP_ANSWER", "recipientClientId": "late", "messagePayload": ANSWER})
    master.send({"action": "ICE_CANDIDATE", "recipientClientId": "late", "messagePayload": ICE})
    master.events(0.1)
    assert [e.message_type for e in emu.pending(arn, "late")] == [
        MessageType.SDP_ANSWER,
        MessageType.ICE_CANDIDATE,
    ]
    late = open_client(clients, connect_url(emu, arn, "late"))
    assert [e.message_payload for e in late.events()] == [ANSWER, ICE]
    assert emu.pending(arn, "late") == []
    assert emu.counters(arn)["messages_delivered_from_hold"] == 2


def test_a_message_for_the_absent_master_waits_for_it(emu: Emulator, clients: list[Client]) -> None:
    arn = new_channel(emu)
    viewer = open_client(clients, connect_url(emu, arn, "early"))
    viewer.send({"action": "SDP_OFFER", "messagePayload": OFFER})
    viewer.events(0.1)
    master = open_client(clients, connect_url(emu, arn, None))
    [offer] = master.events()
    assert (offer.message_type, offer.sender_client_id) == (MessageType.SDP_OFFER, "early")


def test_held_messages_expire_after_the_channels_ttl(emu: Emulator, clients: list[Client]) -> None:
    arn = new_channel(emu, ttl=1)  # below the API's 5 s minimum: only the Python API allows it
    master = open_client(clients, connect_url(emu, arn, None))
    master.send({"action": "SDP_ANSWER", "recipientClientId": "slow", "messagePayload": ANSWER})
    master.events(1.2)
    assert emu.pending(arn, "slow") == []
    slow = open_client(clients, connect_url(emu, arn, "slow"))
    assert slow.events() == []
    assert emu.counters(arn)["messages_expired"] == 1


def test_a_newer_undelivered_answer_overwrites_the_older(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    master = open_client(clients, connect_url(emu, arn, None))
    first, second = payload({"n": 1}), payload({"n": 2})
    for body in (first, ICE, second, ICE):
        action = "ICE_CANDIDATE" if body == ICE else "SDP_ANSWER"
        master.send({"action": action, "recipientClientId": "v", "messagePayload": body})
    master.events(0.1)
    viewer = open_client(clients, connect_url(emu, arn, "v"))
    assert [e.message_payload for e in viewer.events()] == [ICE, second, ICE]
    assert emu.counters(arn)["messages_overwritten"] == 1


def test_inspection_shows_what_each_client_sent_and_received(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    master = open_client(clients, connect_url(emu, arn, None))
    viewer = open_client(clients, connect_url(emu, arn, "v"))
    viewer.send({"action": "SDP_OFFER", "messagePayload": OFFER, "correlationId": "o1"})
    master.events()
    master.send({"action": "SDP_ANSWER", "recipientClientId": "v", "messagePayload": ANSWER})
    viewer.events()
    assert [m.correlation_id for m in emu.sent_by(arn, "v")] == ["o1"]
    assert [e.message_payload for e in emu.delivered_to(arn, None)] == [OFFER]
    assert [m.message_payload for m in emu.sent_by(arn, None)] == [ANSWER]
    assert [e.message_payload for e in emu.delivered_to(arn, "v")] == [ANSWER]


@pytest.mark.parametrize(
    ("frame", "error", "rule"),
    [
        ('{"action": "SDP_OFFER", oops "correlationId": "c"}', "InvalidArgumentException", "JSON"),
        ({"action": "SEND_FAX", "messagePayload": ANSWER}, "InvalidArgumentException", "action"),
        ({"messagePayload": ANSWER}, "InvalidArgumentException", "action: is required"),
        ({"action": "SDP_ANSWER", "messagePayload": ANSWER}, "InvalidArgumentException", "recip"),
        (
            {"action": "SDP_ANSWER", "recipientClientId": "a b", "messagePayload": ANSWER},
            "InvalidArgumentException",
            "recipientClientId: must match",
        ),
        ({"action": "SDP_ANSWER", "recipientClientId": "v"}, "InvalidArgumentException", "Pay"),
        (
            {"action": "SDP_ANSWER", "recipientClientId": "v", "messagePayload": "QUFB" * 2561},
            "InvalidArgumentException",
            "messagePayload: length",
        ),
        (
            {"action": "SDP_ANSWER", "recipientClientId": "v", "messagePayload": "%%%"},
            "InvalidArgumentException",
            "base64",
        ),
    ],
)
def test_every_rejected_frame_with_a_correlation_id_gets_a_status_response(
    emu: Emulator, clients: list[Client], frame: dict[str, str] | str, error: str, rule: str
) -> None:
    arn = new_channel(emu)
    master = open_client(clients, connect_url(emu, arn, None))
    viewer = open_client(clients, connect_url(emu, arn, "v"))
    master.send(frame if isinstance(frame, str) else {**frame, "correlationId": "c"})
    statuses = master.statuses()
    assert list(statuses) == ["c"]
    error_type, status_code, description = statuses["c"]
    assert (error_type, status_code) == (error, "400")
    assert rule.lower() in description.lower()
    assert viewer.events() == []
    assert emu.counters(arn)["messages_rejected"] == 1


def test_nothing_answers_a_rejected_frame_without_a_correlation_id(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    master = open_client(clients, connect_url(emu, arn, None))
    master.send({"action": "SDP_ANSWER", "recipientClientId": "v", "messagePayload": "%%%"})
    master.send("not json")
    # An invalid correlationId cannot be echoed, so it is not answered either.
    master.send({"action": "SEND_FAX", "messagePayload": ANSWER, "correlationId": "a b"})
    assert master.events() == []
    assert emu.counters(arn)["messages_rejected"] == 3


def test_a_second_master_takes_the_messages_and_the_first_stays_open(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    first = open_client(clients, connect_url(emu, arn, None))
    second = open_client(clients, connect_url(emu, arn, None))  # no error at connect time
    viewer = open_client(clients, connect_url(emu, arn, "v"))
    viewer.send({"action": "SDP_OFFER", "messagePayload": OFFER})
    assert [e.message_type for e in second.events()] == [MessageType.SDP_OFFER]
    assert first.events() == []
    assert emu.counters(arn)["master_superseded"] == 1
    second.close()
    second.events(0.2)  # let the close reach the service
    viewer.send({"action": "SDP_OFFER", "messagePayload": OFFER})
    assert [e.message_type for e in first.events()] == [MessageType.SDP_OFFER]


def test_the_close_older_policy_closes_the_first_master(
    kvs_emulator_factory: EmulatorFactory, clients: list[Client]
) -> None:
    emulator = kvs_emulator_factory(EmulatorConfig(second_master=SecondMasterPolicy.CLOSE_OLDER))
    arn = new_channel(emulator)
    first = open_client(clients, connect_url(emulator, arn, None))
    open_client(clients, connect_url(emulator, arn, None))
    first.ws.settimeout(3)
    opcode, data = first.ws.recv_data(control_frame=True)
    assert opcode == 8  # a close frame
    assert int.from_bytes(data[:2], "big") == 1001


def test_deleting_a_channel_closes_its_connections(emu: Emulator, clients: list[Client]) -> None:
    arn = new_channel(emu)
    viewer = open_client(clients, connect_url(emu, arn, "v"))
    emu.delete_channel(arn)
    viewer.ws.settimeout(3)
    opcode, _ = viewer.ws.recv_data(control_frame=True)
    assert opcode == 8
