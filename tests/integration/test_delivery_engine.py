"""The delivery engine with its real adapters against the emulator: status matching, closes,
endpoint caching. (The handler-level cases live in test_send_signaling.py.)"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.credentials import ReadOnlyCredentials

from kvs_local.emulator import Emulator, Faults
from kvs_relay.channels import ChannelResolver
from kvs_relay.delivery import Delivery, DeliveryEngine
from kvs_relay.endpoints import EndpointResolver
from kvs_relay.outcomes import OutcomeStatus
from kvs_relay.protocol import Action, ClientMessage, Role
from kvs_relay.quotas import SignalingQuotas
from kvs_relay.transport import WebSocketConnector

from .conftest import REGION, Peer, payload_of

Connect = Callable[[str, str | None], Peer]


@pytest.fixture
def kinesisvideo(emulator: Emulator) -> Any:
    return boto3.client(
        "kinesisvideo",
        region_name=REGION,
        endpoint_url=emulator.control_endpoint,
        aws_access_key_id=emulator.access_key_id,
        aws_secret_access_key=emulator.secret_access_key,
        verify=emulator.ca_cert_path or True,
    )


@pytest.fixture
def endpoints(kinesisvideo: Any) -> EndpointResolver:
    return EndpointResolver(kinesisvideo, ttl=300, clock=time.monotonic)


def engine_for(
    emulator: Emulator, endpoints: EndpointResolver, quotas: SignalingQuotas | None = None
) -> DeliveryEngine:
    credentials = ReadOnlyCredentials(emulator.access_key_id, emulator.secret_access_key, None)
    return DeliveryEngine(
        endpoints=endpoints,
        credentials=lambda: credentials,
        connector=WebSocketConnector(5, emulator.ca_cert_path),
        quotas=quotas or SignalingQuotas(),
        status_wait_seconds=1.0,
    )


def ice(message_id: str, channel: str, viewer: str, payload: str | None = None) -> Delivery:
    return Delivery(
        message_id=message_id,
        channel_arn=channel,
        role=Role.MASTER,
        client_id=None,
        message=ClientMessage(
            Action.ICE_CANDIDATE,
            payload or payload_of({"candidate": message_id, "sdpMid": "0", "sdpMLineIndex": 0}),
            viewer,
            correlation_id=f"corr-{message_id}",
        ),
    )


@pytest.fixture
def clean_faults(emulator: Emulator, channel: str) -> Iterator[None]:
    yield
    emulator.clear_faults(channel)


def test_a_status_response_is_matched_to_its_message_and_fails_it(
    emulator: Emulator, endpoints: EndpointResolver, channel: str
) -> None:
    # The request model never produces a frame the service refuses, so the engine is given one
    # directly: a payload that is not base64 draws InvalidArgumentException from the emulator.
    report = engine_for(emulator, endpoints).deliver(
        [
            ice("ok-1", channel, "v1"),
            ice("bad", channel, "v1", payload="%%%"),
            ice("ok-2", channel, "v1"),
        ]
    )
    assert report.results["ok-1"].status is OutcomeStatus.SENT
    assert report.results["ok-2"].status is OutcomeStatus.SENT
    bad = report.results["bad"]
    assert bad.status is OutcomeStatus.FAILED
    assert bad.status_response is not None
    assert bad.status_response.correlation_id == "corr-bad"
    assert bad.status_response.error_type == "InvalidArgumentException"


def test_an_unexpected_close_reconnects_and_sends_only_the_rest(
    emulator: Emulator,
    endpoints: EndpointResolver,
    channel: str,
    connect_peer: Connect,
    clean_faults: None,
) -> None:
    viewer = connect_peer(channel, "v2")
    emulator.set_faults(channel, Faults(drop_after_messages=2))
    # Pacing at 2 ICE/s leaves time for the drop to be seen before the next write, so nothing
    # is written into the dead connection. The drop can still beat the pong of the last message
    # the service read (an abort discards the pong): that one is reported uncertain, not resent.
    engine = engine_for(emulator, endpoints, SignalingQuotas(ice_candidate_per_second=2.0))
    report = engine.deliver([ice(f"m{n}", channel, "v2") for n in range(4)])
    for result in report.results.values():
        if result.status is not OutcomeStatus.SENT:
            assert result.status is OutcomeStatus.FAILED
            assert (result.reason or "").startswith("delivery uncertain")
    assert report.connections == 2
    got = [e.message_payload for e in viewer.receive_all()]
    assert got == [ice(f"m{n}", channel, "v2").message.message_payload for n in range(4)]


def test_endpoints_are_fetched_once_per_channel_and_role(
    emulator: Emulator, endpoints: EndpointResolver, channel: str
) -> None:
    engine = engine_for(emulator, endpoints)
    engine.deliver([ice("a", channel, "v3")])
    engine.deliver([ice("b", channel, "v3"), ice("c", channel, "v4")])
    assert endpoints.calls == 1


def test_channel_names_are_resolved_once_per_period(
    emulator: Emulator, kinesisvideo: Any, channel: str
) -> None:
    resolver = ChannelResolver(kinesisvideo, ttl=300, clock=time.monotonic)
    name = channel.split("/")[1]
    assert resolver.channel_arn(name) == channel
    assert resolver.channel_arn(name) == channel
    assert resolver.calls == 1


def test_refused_handshakes_are_retried_then_reported_retry(
    emulator: Emulator, endpoints: EndpointResolver, channel: str, clean_faults: None
) -> None:
    emulator.set_faults(channel, Faults(refuse_handshakes=1, refuse_status=503))
    once = engine_for(emulator, endpoints).deliver([ice("after-one-refusal", channel, "v5")])
    assert once.results["after-one-refusal"].status is OutcomeStatus.SENT
    emulator.set_faults(channel, Faults(refuse_handshakes=10, refuse_status=503))
    never = engine_for(emulator, endpoints).deliver([ice("refused", channel, "v5")])
    assert never.results["refused"].status is OutcomeStatus.RETRY
    assert never.results["refused"].reason == "handshake refused: HTTP 503"


def test_a_drop_at_full_speed_loses_nothing_silently_and_sends_nothing_twice(
    emulator: Emulator,
    endpoints: EndpointResolver,
    channel: str,
    clean_faults: None,
) -> None:
    # Unpaced writes race the drop: some frames land in a socket the service already closed.
    # Each message must end SENT and accepted once, FAILED "delivery uncertain" and accepted at
    # most once (it may have been read just before the drop), or RETRY and not accepted (the
    # sender gave up reconnecting before writing it).
    emulator.set_faults(channel, Faults(drop_after_messages=3))
    deliveries = [ice(f"d{n}", channel, "v6") for n in range(12)]
    report = engine_for(emulator, endpoints).deliver(deliveries)
    accepted = [m.correlation_id for m in emulator.sent_by(channel, None)]
    assert len(accepted) == len(set(accepted))  # nothing twice
    for delivery in deliveries:
        result = report.results[delivery.message_id]
        if result.status is OutcomeStatus.SENT:
            assert delivery.correlation_id in accepted
        elif result.status is OutcomeStatus.RETRY:
            assert delivery.correlation_id not in accepted
        else:
            assert result.status is OutcomeStatus.FAILED
            assert result.reason is not None
            assert result.reason.startswith("delivery uncertain")
    assert emulator.counters(channel)["drops"] >= 2
