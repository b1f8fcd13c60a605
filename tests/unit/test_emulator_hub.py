"""The emulator's signaling state machine with no sockets: frames in, actions out, time given."""

from __future__ import annotations

import json

from kvs_local.emulator.channels import Channel, ChannelRegistry
from kvs_local.emulator.config import Faults
from kvs_local.emulator.signaling import Close, Connection, Deliver, HubAction, SignalingHub
from kvs_relay.protocol import MessageType, parse_server_event
from kvs_relay.quotas import SignalingQuotas

PAYLOAD = "eyJhIjogMX0="


def setup(quotas: SignalingQuotas | None = None, ttl: int = 60) -> tuple[SignalingHub, Channel]:
    registry = ChannelRegistry()
    channel = registry.create(
        "c", region="us-west-2", account_id="1", now=0.0, message_ttl_seconds=ttl
    )
    return SignalingHub(registry, quotas or SignalingQuotas()), channel


def connect(hub: SignalingHub, channel: Channel, client_id: str | None, now: float) -> Connection:
    admitted = hub.admit(channel, client_id, now)
    assert isinstance(admitted, tuple), admitted
    return admitted[0]


def frame(**body: str) -> str:
    return json.dumps(body)


def delivered(actions: list[HubAction]) -> list[tuple[int, MessageType]]:
    return [
        (a.connection_id, parse_server_event(a.frame).message_type)
        for a in actions
        if isinstance(a, Deliver)
    ]


def test_master_frame_goes_to_the_named_viewer_only() -> None:
    hub, channel = setup()
    master = connect(hub, channel, None, 0)
    v1 = connect(hub, channel, "v1", 0)
    connect(hub, channel, "v2", 0)
    actions = hub.receive(
        master.id,
        frame(action="SDP_ANSWER", recipientClientId="v1", messagePayload=PAYLOAD),
        0.1,
    )
    assert delivered(actions) == [(v1.id, MessageType.SDP_ANSWER)]


def test_held_message_expires_exactly_at_the_ttl() -> None:
    hub, channel = setup(ttl=5)
    master = connect(hub, channel, None, 0)
    hub.receive(
        master.id, frame(action="SDP_ANSWER", recipientClientId="v", messagePayload=PAYLOAD), 1.0
    )
    assert len(hub.pending(channel.arn, "v", 5.99)) == 1
    assert hub.pending(channel.arn, "v", 6.0) == []
    assert hub.counters(channel.arn)["messages_expired"] == 1


def test_idle_connection_gets_go_away_at_the_lead_and_closes_at_the_timeout() -> None:
    hub, channel = setup(SignalingQuotas(idle_timeout_seconds=10, go_away_lead_seconds=3))
    viewer = connect(hub, channel, "v", 0)
    assert hub.tick(6.9) == []
    assert delivered(hub.tick(7.0)) == [(viewer.id, MessageType.GO_AWAY)]
    assert hub.tick(9.9) == []
    assert hub.tick(10.0) == [Close(viewer.id, "idle")]
    assert hub.tick(11.0) == []  # closed once


def test_activity_moves_the_idle_deadline() -> None:
    hub, channel = setup(SignalingQuotas(idle_timeout_seconds=10, go_away_lead_seconds=3))
    viewer = connect(hub, channel, "v", 0)
    hub.activity(viewer.id, 5.0)
    assert hub.tick(11.9) == []
    assert delivered(hub.tick(12.0)) == [(viewer.id, MessageType.GO_AWAY)]


def test_send_window_allows_five_offers_per_second_then_throttles() -> None:
    hub, channel = setup()
    connect(hub, channel, None, 0)
    viewer = connect(hub, channel, "v", 0)
    results = [
        hub.receive(
            viewer.id, frame(action="SDP_OFFER", messagePayload=PAYLOAD, correlationId=f"c{n}"), 0.5
        )
        for n in range(6)
    ]
    assert [len(r) for r in results] == [1, 1, 1, 1, 1, 1]
    assert delivered(results[5]) == [(viewer.id, MessageType.STATUS_RESPONSE)]
    # A second later the window has room again.
    again = hub.receive(viewer.id, frame(action="SDP_OFFER", messagePayload=PAYLOAD), 1.5)
    assert delivered(again)[0][1] is MessageType.SDP_OFFER


def test_drop_fault_aborts_after_the_nth_message() -> None:
    hub, channel = setup()
    master = connect(hub, channel, None, 0)
    hub.set_faults(channel.arn, Faults(drop_after_messages=2))
    body = frame(action="ICE_CANDIDATE", recipientClientId="v", messagePayload=PAYLOAD)
    assert hub.receive(master.id, body, 0.1) == []
    assert hub.receive(master.id, body, 0.2) == [Close(master.id, "dropped by fault", abort=True)]
    # A frame read before the drop is still acted on (held here: no recipient), nothing more.
    assert hub.receive(master.id, body, 0.3) == []
    assert hub.counters(channel.arn)["messages_held"] == 3
    assert hub.counters(channel.arn)["drops"] == 1


def test_disconnected_master_frees_routing_for_the_older_one() -> None:
    hub, channel = setup()
    first = connect(hub, channel, None, 0)
    second = connect(hub, channel, None, 0.1)
    viewer = connect(hub, channel, "v", 0.2)
    offer = frame(action="SDP_OFFER", messagePayload=PAYLOAD)
    assert delivered(hub.receive(viewer.id, offer, 0.3)) == [(second.id, MessageType.SDP_OFFER)]
    hub.disconnect(second.id)
    assert delivered(hub.receive(viewer.id, offer, 0.4)) == [(first.id, MessageType.SDP_OFFER)]


def test_accepted_messages_are_timed_and_throttled_ones_are_not() -> None:
    hub, channel = setup(SignalingQuotas(sdp_answer_per_second=2))
    master = connect(hub, channel, None, 0)
    for at in (0.5, 0.7, 0.9):  # the third is over the quota of 2 per second
        hub.receive(
            master.id,
            frame(action="SDP_ANSWER", recipientClientId="v", messagePayload=PAYLOAD),
            at,
        )
    assert hub.sent_times(channel.arn, None) == [0.5, 0.7]
    assert len(hub.sent_by(channel.arn, None)) == 2
    assert hub.sent_times(channel.arn, "v") == []
