"""Signaling channels as the control plane keeps them (thread-safe, no I/O)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MESSAGE_TTL_SECONDS = 60


class ChannelExists(Exception):
    """A channel of that name already exists in the account and region."""


@dataclass(slots=True)
class Channel:
    """One signaling channel."""

    name: str
    arn: str
    region: str
    account_id: str
    created_at: float
    message_ttl_seconds: int = DEFAULT_MESSAGE_TTL_SECONDS
    channel_type: str = "SINGLE_MASTER"
    status: str = "ACTIVE"
    version: str = "1"
    tags: dict[str, str] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        """The ``ChannelInfo`` structure of the API (CreationTime as epoch seconds)."""
        return {
            "ChannelName": self.name,
            "ChannelARN": self.arn,
            "ChannelType": self.channel_type,
            "ChannelStatus": self.status,
            "CreationTime": self.created_at,
            "SingleMasterConfiguration": {"MessageTtlSeconds": self.message_ttl_seconds},
            "Version": self.version,
        }


def channel_arn(region: str, account_id: str, name: str, creation_id: int) -> str:
    """``arn:aws:kinesisvideo:<region>:<account>:channel/<name>/<creation id>``."""
    return f"arn:aws:kinesisvideo:{region}:{account_id}:channel/{name}/{creation_id}"


class ChannelRegistry:
    """Channels by ARN, unique by (account, region, name)."""

    def __init__(self) -> None:
        self._by_arn: dict[str, Channel] = {}
        self._lock = threading.Lock()
        self._last_creation_id = 0

    def create(
        self,
        name: str,
        *,
        region: str,
        account_id: str,
        now: float,
        message_ttl_seconds: int = DEFAULT_MESSAGE_TTL_SECONDS,
        tags: dict[str, str] | None = None,
        creation_id: int | None = None,
    ) -> Channel:
        """Create a channel; ``creation_id`` (the ARN's last part) defaults to now in ms."""
        with self._lock:
            if self._find(account_id, region, name) is not None:
                raise ChannelExists(name)
            if creation_id is None:
                # Milliseconds, as the real ARNs carry; unique even within one millisecond.
                creation_id = max(int(now * 1000), self._last_creation_id + 1)
            self._last_creation_id = max(self._last_creation_id, creation_id)
            channel = Channel(
                name=name,
                arn=channel_arn(region, account_id, name, creation_id),
                region=region,
                account_id=account_id,
                created_at=now,
                message_ttl_seconds=message_ttl_seconds,
                tags=dict(tags or {}),
            )
            self._by_arn[channel.arn] = channel
            return channel

    def get(self, arn: str) -> Channel | None:
        with self._lock:
            return self._by_arn.get(arn)

    def _find(self, account_id: str, region: str, name: str) -> Channel | None:
        for channel in self._by_arn.values():
            if (channel.account_id, channel.region, channel.name) == (account_id, region, name):
                return channel
        return None

    def find(self, account_id: str, region: str, name: str) -> Channel | None:
        with self._lock:
            return self._find(account_id, region, name)

    def in_scope(self, account_id: str, region: str) -> list[Channel]:
        """The account's channels in a region, by name."""
        with self._lock:
            found = [
                c
                for c in self._by_arn.values()
                if c.account_id == account_id and c.region == region
            ]
        return sorted(found, key=lambda c: c.name)

    def all(self) -> list[Channel]:
        with self._lock:
            return sorted(self._by_arn.values(), key=lambda c: c.arn)

    def delete(self, arn: str) -> Channel | None:
        with self._lock:
            return self._by_arn.pop(arn, None)
