"""The integration fixtures (a moto server, the outcome inbox, the handler with no KVS reachable),
reused here so the property tests drive the same real local servers."""

from __future__ import annotations

from tests.integration.conftest import (
    invoke_offline,
    moto_endpoint,
    offline_env,
    outcome_inbox,
    request_queue,
)

__all__ = ["invoke_offline", "moto_endpoint", "offline_env", "outcome_inbox", "request_queue"]
