"""The integration fixtures (the KVS emulator, a moto server, the outcome inbox, peers), reused so
the log hygiene test runs a real invocation against the same local servers."""

from __future__ import annotations

from tests.integration.conftest import (
    channel,
    connect_peer,
    emulator,
    moto_endpoint,
    outcome_inbox,
    relay_env,
    request_queue,
)

__all__ = [
    "channel",
    "connect_peer",
    "emulator",
    "moto_endpoint",
    "outcome_inbox",
    "relay_env",
    "request_queue",
]
