"""KVS signaling quotas and the sliding-window rate rule both sides share.

The emulator enforces these numbers; the sender paces itself under them with the same
:class:`SlidingWindow`, so the service never has reason to throttle us. Pure: callers pass the
clock reading in, so tests need no sleeping.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from kvs_relay.protocol import Action


@dataclass(frozen=True, slots=True)
class SignalingQuotas:
    """The limits of the kvswebrtc-limits page (h = hard quota in AWS)."""

    connect_as_master_per_second: float = 3.0  # per channel (h)
    connect_as_viewer_per_second: float = 3.0  # per channel (h)
    master_connections_per_channel: int = 1  # (h)
    viewer_connections_per_channel: int = 10  # (soft)
    sdp_offer_per_second: float = 5.0  # per connection (h)
    sdp_answer_per_second: float = 5.0  # per connection (h)
    ice_candidate_per_second: float = 20.0  # per connection (h)
    idle_timeout_seconds: float = 600.0
    max_connection_seconds: float = 3600.0
    go_away_lead_seconds: float = 60.0  # a GO_AWAY precedes a service-side close by at most this

    def sends_per_second(self, action: Action) -> float:
        """The per-connection send rate allowed for one message type."""
        return {
            Action.SDP_OFFER: self.sdp_offer_per_second,
            Action.SDP_ANSWER: self.sdp_answer_per_second,
            Action.ICE_CANDIDATE: self.ice_candidate_per_second,
        }[action]


DEFAULT_QUOTAS = SignalingQuotas()


@dataclass(slots=True)
class SlidingWindow:
    """At most ``limit`` events in any window of ``period`` seconds.

    ``rate`` events per second becomes a limit of ``ceil(rate)`` per ``ceil(rate)/rate`` s, so a
    fractional rate keeps its meaning.
    """

    limit: int
    period: float = 1.0
    _times: deque[float] = field(default_factory=deque)

    @classmethod
    def per_second(cls, rate: float) -> SlidingWindow:
        if rate <= 0:
            raise ValueError("rate must be positive")
        limit = max(1, int(rate) if float(rate).is_integer() else int(rate) + 1)
        return cls(limit=limit, period=limit / rate)

    def _expire(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.period:
            self._times.popleft()

    def allows(self, now: float) -> bool:
        """Whether one more event at ``now`` stays within the limit."""
        self._expire(now)
        return len(self._times) < self.limit

    def record(self, now: float) -> None:
        self._times.append(now)

    def try_acquire(self, now: float) -> bool:
        """Record an event at ``now`` if the limit allows it (the service's check)."""
        if self.allows(now):
            self.record(now)
            return True
        return False

    def next_allowed(self, now: float, margin: float = 0.0) -> float:
        """The earliest time at or after ``now`` an event may happen, ``margin`` s to spare.

        The margin absorbs jitter between when we send and when the service counts.
        """
        self._expire(now - margin)
        if len(self._times) < self.limit:
            return now
        return max(now, self._times[-self.limit] + self.period + margin)
