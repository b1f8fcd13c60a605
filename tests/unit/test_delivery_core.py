"""The socket-free parts of delivery: grouping, pacing, status classification, caches,
outcomes and settings."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kvs_relay.channels import ExpiringCache, region_of_channel
from kvs_relay.delivery import (
    Delivery,
    FailedGroups,
    classify_status,
    group_by_sender,
    lanes,
    status_window,
)
from kvs_relay.outcomes import DeliveryOutcome, OutcomeStatus, StatusResponseBody, must_publish
from kvs_relay.pacing import ConnectPacer, SendPacer
from kvs_relay.protocol import Action, ClientMessage, Role, StatusResponse
from kvs_relay.quotas import SignalingQuotas, SlidingWindow
from kvs_relay.relay import IN_FLIGHT, InMemoryLedger, Remembered, is_fifo_event
from kvs_relay.settings import DEFAULT_STATUS_WAIT_SECONDS, RelaySettings, SettingsError

ARN = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1234567890123"
OTHER = "arn:aws:kinesisvideo:eu-west-1:123456789012:channel/other/42"


def delivery(message_id: str, channel: str, role: Role, client: str | None) -> Delivery:
    return Delivery(
        message_id=message_id,
        channel_arn=channel,
        role=role,
        client_id=client,
        message=ClientMessage(Action.ICE_CANDIDATE, "QQ==", "v", correlation_id=message_id),
    )


def test_groups_are_per_sender_and_keep_queue_order() -> None:
    items = [
        delivery("1", ARN, Role.MASTER, None),
        delivery("2", ARN, Role.VIEWER, "a"),
        delivery("3", ARN, Role.MASTER, None),
        delivery("4", OTHER, Role.MASTER, None),
        delivery("5", ARN, Role.VIEWER, "b"),
        delivery("6", ARN, Role.VIEWER, "a"),
    ]
    groups = group_by_sender(items)
    assert [[d.message_id for d in g] for g in groups.values()] == [
        ["1", "3"],
        ["2", "6"],
        ["4"],
        ["5"],
    ]


@pytest.mark.parametrize(
    ("error_type", "code", "expected"),
    [
        ("ClientLimitExceededException", "400", OutcomeStatus.RETRY),
        ("InternalFailure", "500", OutcomeStatus.RETRY),
        ("ServiceUnavailable", "503", OutcomeStatus.RETRY),
        ("TooManyRequests", "429", OutcomeStatus.RETRY),
        ("InvalidArgumentException", "400", OutcomeStatus.FAILED),
        ("AccessDeniedException", "403", OutcomeStatus.FAILED),
        ("Weird", "not-a-number", OutcomeStatus.FAILED),
    ],
)
def test_status_responses_are_classified(
    error_type: str, code: str, expected: OutcomeStatus
) -> None:
    assert classify_status(StatusResponse("c", error_type, code, "d")) is expected


def test_send_pacer_holds_each_action_to_its_own_rate() -> None:
    pacer = SendPacer(SignalingQuotas(), margin=0.05)
    for _ in range(5):
        assert pacer.next_send_at(Action.SDP_ANSWER, 10.0) == 10.0
        pacer.sent(Action.SDP_ANSWER, 10.0)
    # The sixth answer waits a full second plus the margin; ICE candidates are not held up.
    assert pacer.next_send_at(Action.SDP_ANSWER, 10.0) == pytest.approx(11.05)
    assert pacer.next_send_at(Action.ICE_CANDIDATE, 10.0) == 10.0


def test_paced_sends_are_never_refused_by_the_services_window() -> None:
    # The emulator enforces with SlidingWindow.try_acquire; the pacer plans with the same class.
    quotas = SignalingQuotas(sdp_answer_per_second=2.0)
    pacer = SendPacer(quotas, margin=0.0)
    service = SlidingWindow.per_second(2.0)
    now = 0.0
    for _ in range(9):
        now = pacer.next_send_at(Action.SDP_ANSWER, now)
        pacer.sent(Action.SDP_ANSWER, now)
        assert service.try_acquire(now)


def test_connect_pacer_shares_the_quota_per_channel_and_role() -> None:
    pacer = ConnectPacer(SignalingQuotas(), margin=0.0)
    slots = [pacer.reserve(ARN, Role.VIEWER, 0.0) for _ in range(7)]
    assert slots == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0]
    # Another role or channel has its own window.
    assert pacer.reserve(ARN, Role.MASTER, 0.0) == 0.0
    assert pacer.reserve(OTHER, Role.VIEWER, 0.0) == 0.0


def test_expiring_cache_loads_once_per_period() -> None:
    now = [0.0]
    cache: ExpiringCache[str, int] = ExpiringCache(ttl=300, clock=lambda: now[0])
    loads: list[int] = []

    def load() -> int:
        loads.append(1)
        return len(loads)

    assert cache.get_or_load("k", load) == 1
    now[0] = 299.0
    assert cache.get_or_load("k", load) == 1
    now[0] = 300.0
    assert cache.get_or_load("k", load) == 2
    cache.discard("k")
    assert cache.get_or_load("k", load) == 3


def test_region_comes_from_the_channel_arn() -> None:
    assert region_of_channel(OTHER) == "eu-west-1"
    with pytest.raises(ValueError, match="ARN"):
        region_of_channel("arn:aws:s3:::b")


def test_failed_fifo_groups() -> None:
    groups = FailedGroups(["g1"])
    groups.add(None)
    groups.add("g2")
    assert "g1" in groups
    assert "g2" in groups
    assert None not in groups


def outcome(status: OutcomeStatus, **fields: Any) -> DeliveryOutcome:
    return DeliveryOutcome(
        status=status, messageId="m", occurredAt=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), **fields
    )


def test_sns_attributes_carry_status_action_and_channel() -> None:
    attrs = outcome(OutcomeStatus.SENT, action=Action.SDP_ANSWER, channelArn=ARN).sns_attributes()
    assert attrs == {
        "status": {"DataType": "String", "StringValue": "SENT"},
        "action": {"DataType": "String", "StringValue": "SDP_ANSWER"},
        "channelArn": {"DataType": "String", "StringValue": ARN},
    }
    assert set(outcome(OutcomeStatus.REJECTED).sns_attributes()) == {"status"}


def test_only_plain_sent_outcomes_can_be_switched_off() -> None:
    status = StatusResponseBody(correlationId="c", errorType="E", statusCode="400", description="d")
    assert not must_publish(outcome(OutcomeStatus.SENT), publish_sent=False)
    assert must_publish(outcome(OutcomeStatus.SENT), publish_sent=True)
    for status_kind in (OutcomeStatus.REJECTED, OutcomeStatus.FAILED, OutcomeStatus.RETRY):
        assert must_publish(outcome(status_kind), publish_sent=False)
    assert must_publish(outcome(OutcomeStatus.SENT, statusResponse=status), publish_sent=False)


def test_fifo_is_detected_from_the_event_source() -> None:
    fifo = {"Records": [{"eventSourceARN": "arn:aws:sqs:us-west-2:1:q.fifo"}]}
    standard = {"Records": [{"eventSourceARN": "arn:aws:sqs:us-west-2:1:q"}]}
    assert is_fifo_event(fifo)
    assert not is_fifo_event(standard)
    assert not is_fifo_event({"Records": []})


def test_settings_defaults_and_overrides() -> None:
    env = {"OUTCOME_TOPIC_ARN": "arn:aws:sns:us-west-2:1:t", "AWS_REGION": "us-west-2"}
    defaults = RelaySettings.from_environ(env)
    assert defaults.publish_sent_outcomes is True
    assert defaults.endpoint_cache_ttl_seconds == 300.0
    assert defaults.status_wait_seconds == DEFAULT_STATUS_WAIT_SECONDS
    assert (defaults.status_wait_min_seconds, defaults.status_wait_handshake_factor) == (0.1, 2.0)
    assert defaults.max_parallel_connections == 10
    custom = RelaySettings.from_environ(
        {
            **env,
            "PUBLISH_SENT_OUTCOMES": "false",
            "MAX_PARALLEL_CONNECTIONS": "2",
            "AWS_CA_BUNDLE": "/ca.pem",
            "STATUS_WAIT_MIN_SECONDS": "0.25",
            "STATUS_WAIT_HANDSHAKE_FACTOR": "0",
        }
    )
    assert (custom.status_wait_min_seconds, custom.status_wait_handshake_factor) == (0.25, 0.0)
    assert custom.publish_sent_outcomes is False
    assert custom.max_parallel_connections == 2
    assert custom.ca_bundle == "/ca.pem"


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ({"OUTCOME_TOPIC_ARN": ""}, "OUTCOME_TOPIC_ARN"),
        ({"PUBLISH_SENT_OUTCOMES": "maybe"}, "PUBLISH_SENT_OUTCOMES"),
        ({"STATUS_WAIT_SECONDS": "soon"}, "STATUS_WAIT_SECONDS"),
        ({"MAX_PARALLEL_CONNECTIONS": "0"}, "MAX_PARALLEL_CONNECTIONS"),
    ],
)
def test_bad_settings_name_the_variable(extra: dict[str, str], name: str) -> None:
    env = {"OUTCOME_TOPIC_ARN": "arn:aws:sns:us-west-2:1:t", "AWS_REGION": "us-west-2", **extra}
    with pytest.raises(SettingsError, match=name):
        RelaySettings.from_environ(env)


def test_fifo_lanes_join_senders_that_share_a_message_group() -> None:
    def item(message_id: str, client: str, group: str) -> Delivery:
        return Delivery(
            message_id=message_id,
            channel_arn=ARN,
            role=Role.VIEWER,
            client_id=client,
            message=ClientMessage(Action.SDP_OFFER, "QQ==", None, correlation_id=message_id),
            message_group_id=group,
        )

    items = [item("1", "a", "g1"), item("2", "b", "g2"), item("3", "c", "g1"), item("4", "b", "g3")]
    fifo = [[d.message_id for d in lane] for lane in lanes(items, fifo=True)]
    standard = [[d.message_id for d in lane] for lane in lanes(items, fifo=False)]
    assert fifo == [["1", "3"], ["2", "4"]]
    assert standard == [["1"], ["2", "4"], ["3"]]


def test_ledger_remembers_the_newest_outcomes_within_its_capacity() -> None:
    ledger = InMemoryLedger(capacity=2)
    for message_id in ("a", "b", "c"):
        assert ledger.claim(message_id) is None
        ledger.remember(
            outcome(OutcomeStatus.SENT).model_copy(update={"messageId": message_id}),
            published=False,
        )
    assert ledger.claim("a") is None  # forgotten: handled anew
    remembered = ledger.claim("c")
    assert isinstance(remembered, Remembered)
    assert remembered.outcome is not None
    assert remembered.outcome.messageId == "c"
    assert remembered.published is False


def test_ledger_claims_marks_sending_and_releases() -> None:
    ledger = InMemoryLedger()
    assert ledger.claim("m1") is None
    assert ledger.claim("m1") is IN_FLIGHT  # claimed and not settled: someone is on it
    ledger.sending(["m1"])
    assert ledger.claim("m1") == Remembered(None)  # may have been written: uncertain
    assert ledger.claim("m2") is None
    ledger.release("m2")
    assert ledger.claim("m2") is None  # released unsent: handled anew


@pytest.mark.parametrize(
    ("handshake", "factor", "expected"),
    [
        (0.002, 2.0, 0.1),  # loopback: the floor
        (0.2, 2.0, 0.4),  # a 200 ms handshake: twice that
        (0.9, 2.0, 1.0),  # a slow network: the cap
        (0.002, 0.0, 1.0),  # factor 0: always the cap
    ],
)
def test_the_status_window_follows_the_handshake_within_floor_and_cap(
    handshake: float, factor: float, expected: float
) -> None:
    assert status_window(handshake, cap=1.0, floor=0.1, factor=factor) == pytest.approx(expected)
