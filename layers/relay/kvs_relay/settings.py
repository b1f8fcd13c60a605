"""The relay's configuration, read from the environment variables the SAM template sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_STATUS_WAIT_SECONDS = 1.0
"""The most the relay listens for STATUS_RESPONSEs after a lane's last send (docs/contract.md)."""
DEFAULT_STATUS_WAIT_MIN_SECONDS = 0.1
"""The least it listens, however fast the handshakes were."""
DEFAULT_STATUS_WAIT_HANDSHAKE_FACTOR = 2.0
"""In between, this many times the lane's slowest WebSocket handshake (0: always the most)."""
DEFAULT_PACING_MARGIN_SECONDS = 0.05
"""Spare time between paced sends: absorbs clock and network jitter at the service's counter."""


class SettingsError(ValueError):
    """An environment variable is missing or malformed (names the variable)."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"true", "1", "yes", "on"}:
        return True
    if value in {"false", "0", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """Everything the send function is configured with (see docs/contract.md)."""

    outcome_topic_arn: str
    region: str
    publish_sent_outcomes: bool = True
    endpoint_cache_ttl_seconds: float = 300.0
    channel_cache_ttl_seconds: float = 300.0
    status_wait_seconds: float = DEFAULT_STATUS_WAIT_SECONDS
    status_wait_min_seconds: float = DEFAULT_STATUS_WAIT_MIN_SECONDS
    status_wait_handshake_factor: float = DEFAULT_STATUS_WAIT_HANDSHAKE_FACTOR
    max_parallel_connections: int = 10
    connect_timeout_seconds: float = 5.0
    pacing_margin_seconds: float = DEFAULT_PACING_MARGIN_SECONDS
    ca_bundle: str | None = None
    idempotency_table: str | None = None
    """The DynamoDB table of the ledger (kvs_relay.idempotency); None keeps it in memory."""
    idempotency_expires_seconds: int = 7200
    """How long a handled request is remembered: longer than a message can stay queued."""

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> RelaySettings:
        """Read the settings; raises :class:`SettingsError` naming a bad variable."""
        source = os.environ if env is None else env
        topic = source.get("OUTCOME_TOPIC_ARN", "").strip()
        if not topic:
            raise SettingsError("OUTCOME_TOPIC_ARN is required")
        region = (source.get("AWS_REGION") or source.get("AWS_DEFAULT_REGION") or "").strip()
        if not region:
            raise SettingsError("AWS_REGION is required")
        return cls(
            outcome_topic_arn=topic,
            region=region,
            publish_sent_outcomes=_flag(source, "PUBLISH_SENT_OUTCOMES", True),
            endpoint_cache_ttl_seconds=_number(
                source, "ENDPOINT_CACHE_TTL_SECONDS", 300.0, minimum=0
            ),
            channel_cache_ttl_seconds=_number(
                source, "CHANNEL_CACHE_TTL_SECONDS", 300.0, minimum=0
            ),
            status_wait_seconds=_number(
                source, "STATUS_WAIT_SECONDS", DEFAULT_STATUS_WAIT_SECONDS, minimum=0
            ),
            status_wait_min_seconds=_number(
                source, "STATUS_WAIT_MIN_SECONDS", DEFAULT_STATUS_WAIT_MIN_SECONDS, minimum=0
            ),
            status_wait_handshake_factor=_number(
                source,
                "STATUS_WAIT_HANDSHAKE_FACTOR",
                DEFAULT_STATUS_WAIT_HANDSHAKE_FACTOR,
                minimum=0,
            ),
            max_parallel_connections=int(
                _number(source, "MAX_PARALLEL_CONNECTIONS", 10, minimum=1)
            ),
            connect_timeout_seconds=_number(source, "CONNECT_TIMEOUT_SECONDS", 5.0, minimum=0.1),
            pacing_margin_seconds=_number(
                source, "PACING_MARGIN_SECONDS", DEFAULT_PACING_MARGIN_SECONDS, minimum=0
            ),
            ca_bundle=(source.get("AWS_CA_BUNDLE") or None),
            idempotency_table=(source.get("IDEMPOTENCY_TABLE_NAME", "").strip() or None),
            idempotency_expires_seconds=int(
                _number(source, "IDEMPOTENCY_EXPIRES_SECONDS", 7200, minimum=60)
            ),
        )
