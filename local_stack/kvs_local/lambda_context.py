"""The context object Lambda passes a Python handler, for invocations outside Lambda."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LambdaContext:
    """What Lambda's python3.13 runtime hands the handler as ``context``.

    ``get_remaining_time_in_millis`` counts down from ``timeout_seconds`` (the function's
    Timeout) starting when the context is made, as Lambda's deadline starts with the invocation.
    ``memory_limit_in_mb`` is text, as awslambdaric gives it (the value of
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE), so handlers see the same type in both modes.
    """

    function_name: str
    memory_limit_in_mb: str
    invoked_function_arn: str
    timeout_seconds: float
    log_group_name: str
    log_stream_name: str
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    tenant_id: str | None = None
    monotonic: Callable[[], float] = field(default=time.monotonic, repr=False)
    _deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = self.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the function's Timeout runs out (never negative)."""
        return max(0, int((self._deadline - self.monotonic()) * 1000))
