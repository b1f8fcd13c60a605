"""The two functions under test, each a warm container under the real Lambda RIE.

* the relay: template.yaml's SendSignalingFunction as ``sam build`` built it
  (:func:`kvs_local.invoke.local_function`), parameters from the stack (and any overrides);
* the baseline: ``bench/naive_function`` with the relay's configuration otherwise: the same
  built layer, runtime, MemorySize, Timeout and local-stack environment.

:class:`MeasuredFunction` keeps one :class:`Invocation` per call: the bench process's wall
clock around it, RIE's REPORT (Duration, init) and the runtime process's CPU time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kvs_local.invoke import (
    DEFAULT_BUILD_DIR,
    FunctionArtifact,
    InvokeReport,
    LocalFunction,
    RieFunction,
    function_environment,
    local_function,
)
from kvs_local.stack import StackState

BENCH_DIR: Final = Path(__file__).resolve().parent
NAIVE_CODE_DIR: Final = BENCH_DIR / "naive_function"
NAIVE_LOGICAL_ID: Final = "NaiveSendFunction"
RELAY: Final = "relay"
BASELINE: Final = "baseline"


@dataclass(frozen=True, slots=True)
class Invocation:
    """One invocation: when (bench clock), how many records, which failed, RIE's report."""

    started: float
    """``time.monotonic()`` just before the POST to RIE (the emulator uses the same clock)."""
    ended: float
    started_epoch: float
    ended_epoch: float
    records: int
    failed_ids: tuple[str, ...]
    function_error: str | None
    report: InvokeReport

    @property
    def duration_ms(self) -> float:
        """RIE's REPORT Duration (the bench's wall time around the call when RIE gave none)."""
        if self.report.duration_ms is not None:
            return self.report.duration_ms
        return (self.ended - self.started) * 1000

    @property
    def cpu_ms(self) -> float | None:
        return self.report.cpu_ms


class MeasuredFunction:
    """A started :class:`RieFunction` that records every invocation."""

    def __init__(self, name: str, local: LocalFunction, runner: RieFunction) -> None:
        self.name = name
        self.local = local
        self.runner = runner
        self.invocations: list[Invocation] = []

    @property
    def memory_size_mb(self) -> int:
        return self.local.config.memory_size_mb

    def invoke(self, event: Mapping[str, Any]) -> Invocation:
        """Invoke once; the response's ``batchItemFailures`` become :attr:`Invocation.failed_ids`
        (every record when the function raised)."""
        started, started_epoch = time.monotonic(), time.time()
        result = self.runner.invoke(event)
        ended, ended_epoch = time.monotonic(), time.time()
        records = [str(r["messageId"]) for r in event.get("Records") or []]
        if result.function_error is not None:
            failed = tuple(records)
        else:
            response = result.response if isinstance(result.response, dict) else {}
            failed = tuple(
                str(item.get("itemIdentifier")) for item in response.get("batchItemFailures") or []
            )
        invocation = Invocation(
            started=started,
            ended=ended,
            started_epoch=started_epoch,
            ended_epoch=ended_epoch,
            records=len(records),
            failed_ids=failed,
            function_error=result.function_error,
            report=result.report,
        )
        self.invocations.append(invocation)
        return invocation

    def stop(self) -> None:
        self.runner.stop()


def relay_function(
    state: StackState,
    *,
    parameter_overrides: Mapping[str, str] | None = None,
    build_dir: Path = DEFAULT_BUILD_DIR,
) -> LocalFunction:
    """The relay as the template declares it, on ``state``, from the ``sam build`` output."""
    return local_function(state, parameter_overrides=parameter_overrides, build_dir=build_dir)


def baseline_function(relay: LocalFunction) -> LocalFunction:
    """The naive function, configured as the relay is (layer, runtime, memory, timeout, stack
    endpoints) but with its own code folder and handler and no relay settings."""
    config = dataclasses.replace(
        relay.config,
        logical_id=NAIVE_LOGICAL_ID,
        handler="app.lambda_handler",
        code_uri=str(NAIVE_CODE_DIR),
        environment={},
        sqs_events=(),
        log_group_name=None,
    )
    artifact = FunctionArtifact(NAIVE_CODE_DIR, relay.artifact.layer_dirs)
    return LocalFunction(
        config, artifact, function_environment(config, relay.state, artifact), relay.state
    )


def public_ca_bundle(layer_dirs: Sequence[Path]) -> Path | None:
    """A public CA list as big as a system trust store: botocore's ``cacert.pem`` in the layer."""
    for layer in layer_dirs:
        candidate = layer / "botocore" / "cacert.pem"
        if candidate.is_file():
            return candidate
    return None


def with_realistic_trust(local: LocalFunction, folder: Path) -> LocalFunction:
    """``local`` trusting the public CAs plus the emulator's CA, as a function trusts on AWS.

    On AWS no ``AWS_CA_BUNDLE`` is set: each new ``wss://`` connection (websocket-client makes a
    new SSL context for each) loads the default trust store, about 140 certificates, some 15 ms
    of CPU. The emulator's own CA is one certificate, which would hide that cost; this bundle
    (the public list with the emulator's CA appended) restores it. Unchanged when the layer has
    no public list or the stack no CA.
    """
    emulator_ca = local.environment.get("AWS_CA_BUNDLE")
    public = public_ca_bundle(local.artifact.layer_dirs)
    if not emulator_ca or public is None:
        return local
    bundle = folder / "public-and-emulator-ca.pem"
    if not bundle.exists():
        folder.mkdir(parents=True, exist_ok=True)
        bundle.write_text(
            public.read_text(encoding="ascii") + "\n" + Path(emulator_ca).read_text("ascii"),
            encoding="ascii",
        )
    environment = {**local.environment, "AWS_CA_BUNDLE": str(bundle)}
    return dataclasses.replace(local, environment=environment)


def start_measured(
    name: str, local: LocalFunction, log_sink: Callable[[str], None] | None = None
) -> MeasuredFunction:
    """Start ``local`` under RIE (a warm container until :meth:`MeasuredFunction.stop`)."""
    runner = RieFunction(local.config, local.artifact, local.environment, log_sink=log_sink)
    runner.start()
    return MeasuredFunction(name, local, runner)


def gb_seconds_per_thousand(
    invocations: Sequence[Invocation], messages: int, memory_size_mb: int
) -> float | None:
    """Lambda GB-seconds per 1,000 messages: the invocations' summed Duration (s) times the
    memory size (GB), per message, times 1,000."""
    if messages <= 0:
        return None
    seconds = sum(i.duration_ms for i in invocations) / 1000
    return seconds * memory_size_mb / 1024 / messages * 1000


def cpu_ms_per_message(invocations: Sequence[Invocation], messages: int) -> float | None:
    """The runtime process's CPU time over the invocations, per message."""
    known = [i.cpu_ms for i in invocations]
    if messages <= 0 or any(value is None for value in known):
        return None
    return sum(value for value in known if value is not None) / messages
