"""Channel names to ARNs (DescribeSignalingChannel), cached across warm invocations.

Also home of what every control-plane lookup shares: :class:`ExpiringCache` and the
transient/permanent classification of control-plane errors (:class:`ControlPlaneError`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from kvs_relay.protocol import CHANNEL_ARN_PATTERN

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Errors that will not go away by asking again: the request names something that does not exist
# or that we may not use.
_PERMANENT_ERRORS = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "InvalidArgumentException",
        "ValidationException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
    }
)


class ControlPlaneError(Exception):
    """A control-plane call failed; ``transient`` says whether retrying may help."""

    def __init__(self, operation: str, error_type: str, message: str, *, transient: bool) -> None:
        super().__init__(f"{operation}: {error_type}: {message}")
        self.operation = operation
        self.error_type = error_type
        self.transient = transient


def control_plane_error(operation: str, exc: Exception) -> ControlPlaneError:
    """Classify a botocore failure: permanent for missing/forbidden, transient otherwise."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "ClientError"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        transient = code not in _PERMANENT_ERRORS and (
            status == 0 or status >= 429 or status == 408
        )
        # Throttling and 5xx are transient; any other 4xx is the request's fault.
        if code == "ClientLimitExceededException":
            transient = True
        return ControlPlaneError(
            operation, code, str(error.get("Message", "")), transient=transient
        )
    return ControlPlaneError(operation, type(exc).__name__, str(exc), transient=True)


class ExpiringCache(Generic[K, V]):
    """A thread-safe map whose entries expire ``ttl`` seconds after they were stored.

    Lives at module level in the handler, so it spans warm invocations. The clock is injected
    so tests can expire entries without sleeping.
    """

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[K, threading.Lock] = {}

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_at, value = entry
            if self._clock() - stored_at >= self._ttl:
                del self._entries[key]
                return None
            return value

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        """The cached value, or ``load()`` stored; one load per key at a time (no stampede)."""
        value = self.get(key)
        if value is not None:
            return value
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            value = self.get(key)
            if value is not None:
                return value
            value = load()
            with self._lock:
                self._entries[key] = (self._clock(), value)
            return value

    def discard(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)


def region_of_channel(channel_arn: str) -> str:
    """The region field of a channel ARN (the region to sign the connect URL for)."""
    if not CHANNEL_ARN_PATTERN.fullmatch(channel_arn):
        raise ValueError("not a signaling channel ARN")
    return channel_arn.split(":")[3]


class ChannelResolver:
    """Resolves channel names to ARNs with DescribeSignalingChannel, cached for ``ttl`` s."""

    def __init__(self, kinesisvideo_client: Any, ttl: float, clock: Callable[[], float]) -> None:
        self._client = kinesisvideo_client
        self._cache: ExpiringCache[str, str] = ExpiringCache(ttl, clock)
        self.calls = 0
        """DescribeSignalingChannel calls made (for tests and metrics)."""

    def channel_arn(self, channel_name: str) -> str:
        """The ARN of ``channel_name``; raises :class:`ControlPlaneError`."""
        return self._cache.get_or_load(channel_name, lambda: self._describe(channel_name))

    def _describe(self, channel_name: str) -> str:
        self.calls += 1
        try:
            response = self._client.describe_signaling_channel(ChannelName=channel_name)
        except (ClientError, BotoCoreError) as exc:
            raise control_plane_error("DescribeSignalingChannel", exc) from exc
        return str(response["ChannelInfo"]["ChannelARN"])
