"""The emulator's settings and its per-channel fault switches."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from kvs_relay.quotas import DEFAULT_QUOTAS, SignalingQuotas

DEFAULT_REGION = "us-west-2"
DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_ACCESS_KEY_ID = "AKIAKVSEMULATOR00001"
# Test credentials for a local emulator, printed on start: not a secret.
DEFAULT_SECRET_ACCESS_KEY = "kvs-emulator-secret-access-key-for-local-use-only"  # noqa: S105


class SecondMasterPolicy(StrEnum):
    """What happens when a master connects to a channel that already has one.

    The real service accepts the second connection without an error
    (amazon-kinesis-video-streams-webrtc-sdk-c #1151) and allows one concurrent master; users
    report a connected master that stops receiving messages (sdk-c #1304, #1588). LATEST_WINS
    (the default) models that: both stay open, messages for the master go to the newest one.
    CLOSE_OLDER closes the older connection instead, for clients that want to test that case.
    """

    LATEST_WINS = "latest-wins"
    CLOSE_OLDER = "close-older"


@dataclass(frozen=True, slots=True)
class ControlPlaneQuotas:
    """Control-plane limits (kvswebrtc-limits): throttled with ClientLimitExceededException."""

    describe_per_channel_per_second: float = 5.0
    endpoint_and_describe_per_account_per_second: float = 300.0


@dataclass(frozen=True, slots=True)
class Faults:
    """Faults injected on one channel (all off by default).

    * ``refuse_handshakes``: refuse the next N handshakes with HTTP ``refuse_status``;
    * ``handshake_delay_seconds``: hold every handshake this long before answering;
    * ``drop_after_messages``: drop a connection (no close frame) once it has sent N messages;
    * ``go_away_after_messages``: send GO_AWAY once a connection has sent N messages, then close
      it ``go_away_close_seconds`` later;
    * ``throttle``: answer every message with ClientLimitExceededException (nothing delivered);
    * ``latency_seconds``: one network round trip. Each message waits this long before the
      service acts on it (order kept, messages pipelined), each control-plane call naming the
      channel waits it once, and each handshake waits it once per round trip a real connect
      takes (:attr:`EmulatorConfig.handshake_round_trips_tls` / ``_plain``).
    """

    refuse_handshakes: int = 0
    refuse_status: int = 503
    handshake_delay_seconds: float = 0.0
    drop_after_messages: int | None = None
    go_away_after_messages: int | None = None
    go_away_close_seconds: float = 1.0
    throttle: bool = False
    latency_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faults:
        """Build from JSON-like data; raises ValueError naming an unknown or mistyped field."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                raise ValueError(f"{name}: is not a fault (known: {', '.join(sorted(known))})")
            default = getattr(cls(), name)
            if name in ("drop_after_messages", "go_away_after_messages"):
                ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
            elif isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or (isinstance(value, int | float) and value < 0):
                raise ValueError(f"{name}: must be a non-negative {type(default).__name__}")
            values[name] = value
        return cls(**values)


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """How to run the emulator. Ports 0 pick free ones; ``wss_port=None`` serves no TLS.

    ``endpoint_scheme`` chooses what GetSignalingChannelEndpoint hands out (``wss`` needs a
    ``wss_port``) and which listener ``control_endpoint`` names.
    """

    host: str = "127.0.0.1"
    port: int = 0
    wss_port: int | None = None
    endpoint_scheme: str = "ws"
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    access_key_id: str = DEFAULT_ACCESS_KEY_ID
    secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY
    quotas: SignalingQuotas = DEFAULT_QUOTAS
    control_quotas: ControlPlaneQuotas = field(default_factory=ControlPlaneQuotas)
    second_master: SecondMasterPolicy = SecondMasterPolicy.LATEST_WINS
    cert_dir: Path | None = None
    """Where the generated CA and server certificate go (a temporary folder when None)."""
    wall_clock: Callable[[], float] = time.time
    """Epoch seconds: signature validity, credential expiry, creation times. Tests may fix it."""
    monotonic: Callable[[], float] = time.monotonic
    """Quota windows, timeouts and message TTLs."""
    tick_seconds: float = 0.05
    """How often timeouts, scheduled closes and TTL expiry are checked."""
    max_frame_bytes: int = 256 * 1024
    handshake_round_trips_tls: int = 3
    """Round trips of a real ``wss://`` connect (TCP, TLS 1.3, HTTP upgrade): the handshake
    waits ``latency_seconds`` this many times."""
    handshake_round_trips_plain: int = 2
    """Round trips of a ``ws://`` connect (TCP, HTTP upgrade)."""

    def __post_init__(self) -> None:
        if self.endpoint_scheme not in ("ws", "wss"):
            raise ValueError("endpoint_scheme must be 'ws' or 'wss'")
        if self.endpoint_scheme == "wss" and self.wss_port is None:
            raise ValueError("endpoint_scheme 'wss' needs a wss_port (0 picks a free one)")
