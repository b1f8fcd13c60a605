"""The signaling WebSocket endpoint per channel and role (GetSignalingChannelEndpoint), cached.

One call per channel and role per cache period, never one per message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from kvs_relay.channels import ControlPlaneError, ExpiringCache, control_plane_error
from kvs_relay.protocol import Role


class EndpointSource(Protocol):
    """Where a sender of ``role`` connects to reach ``channel_arn`` (a wss:// or ws:// URL)."""

    def wss_endpoint(self, channel_arn: str, role: Role) -> str: ...

    def forget(self, channel_arn: str, role: Role) -> None: ...


class EndpointResolver:
    """GetSignalingChannelEndpoint for the WSS protocol, cached per (channel, role) for ``ttl``."""

    def __init__(self, kinesisvideo_client: Any, ttl: float, clock: Callable[[], float]) -> None:
        self._client = kinesisvideo_client
        self._cache: ExpiringCache[tuple[str, Role], str] = ExpiringCache(ttl, clock)
        self.calls = 0
        """GetSignalingChannelEndpoint calls made (for tests and metrics)."""

    def wss_endpoint(self, channel_arn: str, role: Role) -> str:
        """The WSS endpoint; raises :class:`ControlPlaneError`."""
        return self._cache.get_or_load((channel_arn, role), lambda: self._fetch(channel_arn, role))

    def forget(self, channel_arn: str, role: Role) -> None:
        """Drop a cached endpoint (after connects to it failed), so the next batch asks again."""
        self._cache.discard((channel_arn, role))

    def _fetch(self, channel_arn: str, role: Role) -> str:
        self.calls += 1
        try:
            response = self._client.get_signaling_channel_endpoint(
                ChannelARN=channel_arn,
                SingleMasterChannelEndpointConfiguration={
                    "Protocols": ["WSS"],
                    "Role": role.value,
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise control_plane_error("GetSignalingChannelEndpoint", exc) from exc
        for entry in response.get("ResourceEndpointList", []):
            if entry.get("Protocol") == "WSS":
                return str(entry["ResourceEndpoint"])
        raise ControlPlaneError(
            "GetSignalingChannelEndpoint", "NoWssEndpoint", "no WSS endpoint", transient=True
        )
