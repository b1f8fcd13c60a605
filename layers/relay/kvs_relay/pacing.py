"""Pacing under the signaling quotas, with the same :class:`SlidingWindow` the emulator enforces.

* :class:`SendPacer`: one window per action per connection (5/s offers and answers, 20/s ICE).
* :class:`ConnectPacer`: one window per channel and role (3 connects/s), shared by every group of
  a batch, so parallel connections to one channel never exceed the connect quota together.

Pure: the clock reading comes in, the time to act goes out; callers sleep.
"""

from __future__ import annotations

import threading

from kvs_relay.protocol import Action, Role
from kvs_relay.quotas import SignalingQuotas, SlidingWindow


class SendPacer:
    """When the next message of each action may go out on one connection."""

    def __init__(self, quotas: SignalingQuotas, margin: float) -> None:
        self._margin = margin
        self._windows = {
            action: SlidingWindow.per_second(quotas.sends_per_second(action)) for action in Action
        }

    def next_send_at(self, action: Action, now: float) -> float:
        """The earliest time (at or after ``now``) a message of ``action`` may be sent."""
        return self._windows[action].next_allowed(now, self._margin)

    def sent(self, action: Action, at: float) -> None:
        """Record a send made at ``at``."""
        self._windows[action].record(at)


class ConnectPacer:
    """Reserves connect slots per (channel, role) under the per-channel connect quota.

    Thread-safe: groups of one batch connect from several threads. A reservation records the
    slot at once, so two threads never take the same one.
    """

    def __init__(self, quotas: SignalingQuotas, margin: float) -> None:
        self._quotas = quotas
        self._margin = margin
        self._windows: dict[tuple[str, Role], SlidingWindow] = {}
        self._lock = threading.Lock()

    def reserve(self, channel_arn: str, role: Role, now: float) -> float:
        """Take the next connect slot for ``role`` on ``channel_arn``: the time to connect at."""
        with self._lock:
            window = self._windows.get((channel_arn, role))
            if window is None:
                rate = (
                    self._quotas.connect_as_master_per_second
                    if role is Role.MASTER
                    else self._quotas.connect_as_viewer_per_second
                )
                window = self._windows[(channel_arn, role)] = SlidingWindow.per_second(rate)
            at = window.next_allowed(now, self._margin)
            window.record(at)
            return at
