"""The benchmark's report: one table (text and Markdown), the targets' verdicts, and the JSON.

Each scenario has three rows: the relay's figures, the baseline's, and the relay's gain, a
ratio read the same way in every column (above 1: the relay is better): baseline / relay for
the figures where less is better (wall time, latency, CPU, GB-seconds), relay / baseline for
messages per second.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.footprint import ColdImport, LayerSize
from bench.scenarios import ScenarioResult, SideResult

SPEEDUP_TARGET: Final = 5.0
EFFICIENCY_TARGET: Final = 0.9
CPU_TARGET_MS: Final = 1.0
COLD_IMPORT_TARGET_SECONDS: Final = 0.5
GB_SECONDS_TARGET_FRACTION: Final = 0.2

COLUMNS: Final = (
    "scenario",
    "function",
    "wall s",
    "msg/s",
    "throttled",
    "p50 ms",
    "p99 ms",
    "CPU ms/msg",
    "GB-s/1k msg",
)


@dataclass(frozen=True, slots=True)
class Footprint:
    """Cold import of each function's handler module, and the layer both run with."""

    relay_import: ColdImport
    baseline_import: ColdImport
    layer: LayerSize

    def to_json(self) -> dict[str, Any]:
        return {
            "relayColdImport": self.relay_import.to_json(),
            "baselineColdImport": self.baseline_import.to_json(),
            "layer": self.layer.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Target:
    """One of the issue's targets: met or not, and the figures that say so."""

    name: str
    met: bool
    figures: str

    def line(self) -> str:
        return f"{'PASS' if self.met else 'FAIL'}  {self.name}: {self.figures}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "met": self.met, "figures": self.figures}


# Formatting.


def _number(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _gain(relay: float | None, baseline: float | None, *, higher_is_better: bool) -> str:
    if relay is None or baseline is None:
        return "—"
    numerator, denominator = (relay, baseline) if higher_is_better else (baseline, relay)
    if denominator == 0:
        return "—"
    return f"{numerator / denominator:,.2f}x"


def _side_cells(side: SideResult) -> list[str]:
    return [
        _number(side.wall_seconds, 3),
        _number(side.messages_per_second, 1),
        str(side.throttled),
        _number(side.latency_p50_ms, 0),
        _number(side.latency_p99_ms, 0),
        _number(side.cpu_ms_per_message, 2),
        _number(side.gb_seconds_per_1000, 3),
    ]


def _gain_cells(relay: SideResult, baseline: SideResult) -> list[str]:
    return [
        _gain(relay.wall_seconds, baseline.wall_seconds, higher_is_better=False),
        _gain(relay.messages_per_second, baseline.messages_per_second, higher_is_better=True),
        "—",
        _gain(relay.latency_p50_ms, baseline.latency_p50_ms, higher_is_better=False),
        _gain(relay.latency_p99_ms, baseline.latency_p99_ms, higher_is_better=False),
        _gain(relay.cpu_ms_per_message, baseline.cpu_ms_per_message, higher_is_better=False),
        _gain(relay.gb_seconds_per_1000, baseline.gb_seconds_per_1000, higher_is_better=False),
    ]


def table_rows(results: Sequence[ScenarioResult]) -> list[list[str]]:
    """The table's rows (without the header): relay, baseline and gain per scenario."""
    rows: list[list[str]] = []
    for result in results:
        rows.append([result.title, "relay", *_side_cells(result.relay)])
        rows.append(["", "baseline", *_side_cells(result.baseline)])
        rows.append(["", "gain", *_gain_cells(result.relay, result.baseline)])
    return rows


def text_table(results: Sequence[ScenarioResult]) -> str:
    """The table as aligned plain text."""
    rows = [list(COLUMNS), *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]

    def render(row: Sequence[str]) -> str:
        cells = [
            cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    lines = [render(rows[0]), rule]
    for index, row in enumerate(rows[1:]):
        lines.append(render(row))
        if index % 3 == 2 and index + 1 < len(rows) - 1:
            lines.append("")
    return "\n".join(lines)


def markdown_table(results: Sequence[ScenarioResult]) -> str:
    """The table in Markdown (GitHub-flavoured)."""
    header = "| " + " | ".join(COLUMNS) + " |"
    align = "| --- | --- | " + " | ".join("---:" for _ in COLUMNS[2:]) + " |"
    body = ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join([header, align, *body])


def footprint_lines(footprint: Footprint) -> list[str]:
    """Cold import and layer size, one line each."""
    relay, baseline, layer = footprint.relay_import, footprint.baseline_import, footprint.layer
    return [
        f"cold import of the handler module (median of {len(relay.deployed_seconds)} fresh "
        f"interpreters, as built, bytecode included): relay {relay.deployed_median * 1000:.0f} "
        f"ms, baseline {baseline.deployed_median * 1000:.0f} ms",
        f"cold import compiling from source (no bytecode shipped): relay "
        f"{relay.source_median * 1000:.0f} ms, baseline {baseline.source_median * 1000:.0f} ms",
        f"built layer (both functions run with it): {layer.files:,} files, "
        f"{layer.bytes / 1e6:.1f} MB unpacked, {layer.zip_bytes / 1e6:.1f} MB zipped",
    ]


# Targets.


def _by_key(results: Sequence[ScenarioResult]) -> dict[str, ScenarioResult]:
    return {result.key: result for result in results}


def evaluate_targets(results: Sequence[ScenarioResult], footprint: Footprint) -> list[Target]:
    """The issue's targets against the measured figures."""
    found = _by_key(results)
    targets: list[Target] = []
    ten = found.get("ten_channels")
    if ten is not None:
        speedup = ten.baseline.wall_seconds / ten.relay.wall_seconds
        targets.append(
            Target(
                f"10 answers to 10 channels at least {SPEEDUP_TARGET:g}x faster than the baseline",
                speedup >= SPEEDUP_TARGET,
                f"{speedup:.2f}x (relay {ten.relay.wall_seconds:.3f} s, baseline "
                f"{ten.baseline.wall_seconds:.3f} s, medians of {ten.relay.repetitions})",
            )
        )
    for key in ("one_channel_answers", "one_viewer_ice"):
        bound = found.get(key)
        if bound is None:
            continue
        relay = bound.relay
        efficiency = relay.efficiency or 0.0
        targets.append(
            Target(
                f"{bound.title}: within 10% of the quota's rate, 0 throttled",
                efficiency >= EFFICIENCY_TARGET and relay.throttled == 0,
                f"span {_number(relay.span_seconds, 3)} s vs {relay.ideal_span_seconds:.3f} s "
                f"allowed: efficiency {efficiency:.3f} (worst of {relay.repetitions}), "
                f"{relay.throttled} throttled (baseline: {bound.baseline.throttled} throttled "
                f"over {bound.baseline.invocations} invocations)",
            )
        )
    targets.append(
        _every_scenario(
            results,
            f"handler CPU under {CPU_TARGET_MS:g} ms per message",
            lambda r: r.relay.cpu_ms_per_message,
            lambda value, _r: value < CPU_TARGET_MS,
            lambda value, _r: f"{value:.2f} ms",
        )
    )
    cold = footprint.relay_import.deployed_median
    targets.append(
        Target(
            f"cold import under {COLD_IMPORT_TARGET_SECONDS * 1000:.0f} ms",
            cold < COLD_IMPORT_TARGET_SECONDS,
            f"{cold * 1000:.0f} ms as built (bytecode included), "
            f"{footprint.relay_import.source_median * 1000:.0f} ms compiling from source; "
            f"baseline "
            f"{footprint.baseline_import.deployed_median * 1000:.0f} ms",
        )
    )

    def gb_ratio(result: ScenarioResult) -> float | None:
        relay, baseline = result.relay.gb_seconds_per_1000, result.baseline.gb_seconds_per_1000
        return None if relay is None or not baseline else relay / baseline

    targets.append(
        _every_scenario(
            results,
            "GB-seconds per 1,000 messages at most a fifth of the baseline's",
            gb_ratio,
            lambda value, _r: value <= GB_SECONDS_TARGET_FRACTION,
            lambda value, r: (
                f"{value:.2f} of it ({_number(r.relay.gb_seconds_per_1000, 3)} vs "
                f"{_number(r.baseline.gb_seconds_per_1000, 3)})"
            ),
        )
    )
    return targets


def _every_scenario(
    results: Sequence[ScenarioResult],
    name: str,
    figure: Callable[[ScenarioResult], float | None],
    ok: Callable[[float, ScenarioResult], bool],
    show: Callable[[float, ScenarioResult], str],
) -> Target:
    parts: list[str] = []
    met = True
    for result in results:
        value = figure(result)
        if value is None:
            met = False
            parts.append(f"{result.key} unknown")
            continue
        passed = ok(value, result)
        met = met and passed
        parts.append(f"{result.key} {show(value, result)}{'' if passed else ' (missed)'}")
    return Target(name, met and bool(results), "; ".join(parts))


# Files.


def report_json(
    meta: dict[str, Any],
    results: Sequence[ScenarioResult],
    footprint: Footprint,
    targets: Sequence[Target],
) -> dict[str, Any]:
    """Everything measured, as JSON."""
    return {
        "meta": meta,
        "scenarios": [result.to_json() for result in results],
        "footprint": footprint.to_json(),
        "targets": [target.to_json() for target in targets],
    }


def markdown_report(
    meta: dict[str, Any],
    results: Sequence[ScenarioResult],
    footprint: Footprint,
    targets: Sequence[Target],
    plot_name: str | None,
) -> str:
    """The Markdown page: conditions, the table, the footprint, the targets, the plot."""
    machine = meta["machine"]
    lines = [
        "# kvs-signaling-relay benchmark",
        "",
        f"{meta['mode']} run of `python -m bench` on {meta['date']}: every scenario against the "
        f"local KVS signaling emulator with {meta['latencyMs']:g} ms per network round trip and "
        "the real quotas, the relay and the baseline (the naive sender) under the Lambda RIE in "
        f"the same process, {meta['memorySizeMb']} MB (the template's MemorySize).",
        "",
        f"Machine: {machine['cpuModel']}, {machine['cpus']} CPUs, "
        f"{machine['memoryGb']:.0f} GB RAM, Linux {machine['kernel']}; bench Python "
        f"{machine['python']}, Lambda runtime Python {machine['runtimePython']}. "
        + _foreign_load_text(meta),
        "",
        _configuration_text(meta),
        "",
        markdown_table(results),
        "",
        "*gain*: baseline / relay (relay / baseline for msg/s): above 1, the relay is better. "
        "*wall*: median over repetitions, from the first invocation's start to the last one's end "
        "(records a function reports as failed are invoked again at once, as often as needed); "
        "end to end: from the first enqueue to the last outcome. *msg/s*: messages the service "
        "accepted over the wall time. *throttled*: the emulator's throttling counters on the "
        "scenario's channels (connects, sends, viewer limit), all repetitions. *p50/p99*: per "
        "message; direct scenarios: from the invocation's start to the service accepting the "
        "message; end to end: from enqueue (SentTimestamp) to the outcome's SNS notification "
        "(relay) or to the handler's return (baseline: it publishes nothing). *CPU*: the Lambda "
        "runtime process's CPU time (all threads) per message. *GB-s/1k msg*: RIE's REPORT "
        "Duration summed, times the memory size, per 1,000 messages.",
        "",
        _cold_start_line(meta),
        "",
        *(f"- {line}" for line in footprint_lines(footprint)),
        "",
        "Targets:",
        "",
        *(f"- {target.line()}" for target in targets),
    ]
    notes = [note for result in results for note in result.notes]
    if notes:
        lines += ["", "Notes:", "", *(f"- {note}" for note in notes)]
    if plot_name:
        lines += ["", f"![wall time and GB-seconds per scenario]({plot_name})"]
    return "\n".join(lines) + "\n"


_SHOWN_SETTINGS: Final = (
    "IDEMPOTENCY_TABLE_NAME",
    "PUBLISH_SENT_OUTCOMES",
    "MAX_PARALLEL_CONNECTIONS",
    "STATUS_WAIT_SECONDS",
    "STATUS_WAIT_MIN_SECONDS",
    "STATUS_WAIT_HANDSHAKE_FACTOR",
    "PACING_MARGIN_SECONDS",
)


def _configuration_text(meta: dict[str, Any]) -> str:
    environment = meta.get("relayEnvironment") or {}
    shown = {name: environment[name] for name in _SHOWN_SETTINGS if name in environment}
    if "IDEMPOTENCY_TABLE_NAME" in shown:  # a generated name: whether it is set is what counts
        shown["IDEMPOTENCY_TABLE_NAME"] = "<table>" if shown["IDEMPOTENCY_TABLE_NAME"] else ""
    settings = ", ".join(f"`{name}={value}`" for name, value in shown.items())
    changed = meta.get("relayChangedSinceCommit") or []
    source = f"commit {meta.get('commit')}" + (
        f" with local changes to {', '.join(changed)}" if changed else ""
    )
    overrides = meta.get("parameterOverrides") or {}
    configured = (
        "template parameters " + ", ".join(f"{k}={v}" for k, v in overrides.items())
        if overrides
        else "the template's defaults"
    )
    return (
        f"Relay: {source}, {configured} ({settings}); BatchSize {meta.get('batchSize')}; "
        f"trust store: {meta.get('trust')}. Reproduce: `make bench`."
    )


def _foreign_load_text(meta: dict[str, Any]) -> str:
    load = meta.get("foreignLoad") or {}
    share = load.get("machineShare")
    if share is None:
        return ""
    return (
        f"Other processes used {share:.1%} of the machine's CPU during the run "
        f"({load.get('cpuSeconds')} CPU-seconds)."
    )


def _cold_start_line(meta: dict[str, Any]) -> str:
    cold = meta.get("coldStart") or {}
    parts = [
        f"{name} {figures.get('durationMs')} ms (init {figures.get('initDurationMs')} ms, CPU "
        f"{figures.get('cpuMs')} ms)"
        for name, figures in cold.items()
    ]
    return "Cold start (first invocation, one answer; not in the table): " + ", ".join(parts) + "."


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
