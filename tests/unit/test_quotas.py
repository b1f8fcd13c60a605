"""The sliding-window rule shared by the emulator (enforcing) and the sender (pacing)."""

from __future__ import annotations

import pytest

from kvs_relay.protocol import Action
from kvs_relay.quotas import DEFAULT_QUOTAS, SlidingWindow


def test_allows_limit_then_refuses_within_the_window() -> None:
    window = SlidingWindow.per_second(5)
    assert all(window.try_acquire(0.0) for _ in range(5))
    assert not window.try_acquire(0.5)
    assert window.try_acquire(1.0)


def test_next_allowed_paces_exactly_under_the_enforcer() -> None:
    pacer = SlidingWindow.per_second(5)
    enforcer = SlidingWindow.per_second(5)
    now = 0.0
    for _ in range(23):
        now = pacer.next_allowed(now, margin=0.0)
        pacer.record(now)
        assert enforcer.try_acquire(now)
    # 23 sends at 5/s: bursts of 5 at t = 0, 1, 2, 3 and the last 3 at t = 4.
    assert now == pytest.approx(4.0)


def test_margin_delays_the_next_send() -> None:
    pacer = SlidingWindow.per_second(1)
    pacer.record(0.0)
    assert pacer.next_allowed(0.1, margin=0.05) == pytest.approx(1.05)


def test_fractional_rate_keeps_its_meaning() -> None:
    window = SlidingWindow.per_second(2.5)
    assert window.limit == 3
    assert window.period == pytest.approx(1.2)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SlidingWindow.per_second(0)


def test_default_quotas_by_action() -> None:
    assert DEFAULT_QUOTAS.sends_per_second(Action.SDP_ANSWER) == 5
    assert DEFAULT_QUOTAS.sends_per_second(Action.SDP_OFFER) == 5
    assert DEFAULT_QUOTAS.sends_per_second(Action.ICE_CANDIDATE) == 20
