"""``python -m bench``: the relay against the naive sender, side by side, on the local stack.

Prints one table (and the targets' verdicts) on stdout and writes ``latest.json``, ``latest.md``
and ``latest.png`` to ``--out``. Progress goes to stderr. Exit status: 0 when the benchmark ran,
whatever its figures; 2 when the harness could not run (no build, a function that would not
start, a broken stack).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from bench.footprint import cold_import, layer_size
from bench.functions import (
    BASELINE,
    RELAY,
    MeasuredFunction,
    baseline_function,
    relay_function,
    start_measured,
    with_realistic_trust,
)
from bench.machine import ForeignLoad, busy_fraction, load_average, machine_facts
from bench.plot import draw
from bench.report import (
    Footprint,
    evaluate_targets,
    footprint_lines,
    markdown_report,
    report_json,
    text_table,
    write_json,
)
from bench.scenarios import (
    SCENARIO_KEYS,
    ScenarioResult,
    ScenarioSizes,
    direct_scenarios,
    make_channels,
    run_direct,
    run_end_to_end,
)
from bench.workload import sdp_answer, sqs_event
from kvs_local.invoke import DEFAULT_BUILD_DIR, InvokeError, lambda_runtime_python
from kvs_local.stack import REPO, LocalStack
from kvs_local.template import TemplateError, parse_parameter_overrides
from kvs_relay.quotas import DEFAULT_QUOTAS

DEFAULT_OUT: Final = Path(__file__).resolve().parent / "results"
QUICK_OUT: Final = DEFAULT_OUT / "quick"
STEM: Final = "latest"
BUSY_WARNING: Final = 0.15
FOREIGN_WARNING: Final = 0.05


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the relay against a naive sender under the Lambda RIE, on the "
        "local stack (KVS emulator with the real quotas and an injected round-trip latency).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI-sized: one repetition, no warm-up, 21 ICE candidates, 20 requests end to end "
        "(under a minute); writes to bench/results/quick unless --out is given",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=20.0,
        help="one network round trip, injected on every channel (default 20)",
    )
    parser.add_argument("--out", type=Path, help="where latest.json/.md/.png go")
    parser.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="template parameters for the stack and the relay (e.g. MaxParallelConnections=10), "
        "to measure a configuration other than the template's defaults",
    )
    parser.add_argument(
        "--emulator-ca-only",
        action="store_true",
        help="trust only the emulator's one-certificate CA (default: the public CA list plus "
        "it, so each TLS connection costs the CPU it costs on AWS)",
    )
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR)
    parser.add_argument(
        "--import-runs", type=int, help="fresh interpreters per cold-import figure (5; quick 1)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SCENARIO_KEYS,
        metavar="SCENARIO",
        help=f"run only these scenarios ({', '.join(SCENARIO_KEYS)}); the targets of the others "
        "are then not evaluated",
    )
    return parser


_STARTED = time.monotonic()


def _say(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def _git(*args: str) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
        )
        return result.stdout.strip()
    return None


def _source_state() -> dict[str, Any]:
    """The commit measured, and the relay's files changed since it (read-only git queries)."""
    changed = _git("status", "--porcelain", "--", "layers", "functions", "template.yaml")
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "relayChangedSinceCommit": sorted(line[3:] for line in (changed or "").splitlines()),
    }


def _cold_start(
    stack: LocalStack, functions: dict[str, MeasuredFunction], latency: float
) -> dict[str, Any]:
    """The first invocation of each function (one answer on a channel of its own), apart."""
    state = stack.snapshot()
    source = state.event_source_settings()
    figures: dict[str, Any] = {}
    for name, function in functions.items():
        channel = make_channels(stack, f"cold-{name}", 1, latency)[0]
        event = sqs_event(
            [sdp_answer(channel, "viewer-cold", "cold")], source.queue_arn, state.region
        )
        invocation = function.invoke(event)
        report = invocation.report
        figures[name] = {
            "durationMs": report.duration_ms,
            "initDurationMs": report.init_duration_ms,
            "cpuMs": report.cpu_ms,
            "peakRssMb": report.peak_rss_mb,
            "failed": len(invocation.failed_ids),
            "functionError": invocation.function_error,
        }
        _say(
            f"  cold start {name}: {report.duration_ms} ms (init {report.init_duration_ms} ms), "
            f"CPU {report.cpu_ms} ms, peak RSS {report.peak_rss_mb} MB"
        )
    return figures


def _write_atomically(path: Path, write: Any) -> None:
    temporary = path.with_name(path.name + ".tmp")
    write(temporary)
    os.replace(temporary, path)


def run(args: argparse.Namespace) -> int:
    """Run every scenario, print the table and the targets, write the files."""
    started = time.monotonic()
    quick = bool(args.quick)
    sizes = ScenarioSizes.quick() if quick else ScenarioSizes()
    latency = args.latency_ms / 1000
    out: Path = args.out or (QUICK_OUT if quick else DEFAULT_OUT)
    out.mkdir(parents=True, exist_ok=True)
    overrides = parse_parameter_overrides(args.parameter_overrides)
    import_runs = args.import_runs or (1 if quick else 5)
    only = set(args.only or SCENARIO_KEYS)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log

    runtime_python = lambda_runtime_python()
    load_at_start = load_average()
    busy_at_start = busy_fraction()
    if busy_at_start is not None and busy_at_start > BUSY_WARNING:
        _say(
            f"note: the CPUs were {busy_at_start:.0%} busy before the run: other work on this "
            "machine skews the figures"
        )
    results: list[ScenarioResult] = []
    foreign = ForeignLoad()
    with (
        foreign,
        tempfile.TemporaryDirectory(prefix="kvs-bench-") as scratch_dir,
        LocalStack(stack_name="kvs-bench", parameter_overrides=overrides) as stack,
    ):
        scratch = Path(scratch_dir)
        state = stack.snapshot()
        relay_local = relay_function(state, build_dir=args.build_dir.resolve())
        baseline_local = baseline_function(relay_local)
        if not args.emulator_ca_only:
            trust = scratch
            relay_local = with_realistic_trust(relay_local, trust)
            baseline_local = with_realistic_trust(baseline_local, trust)
        _say(f"cold import of the handler modules ({import_runs} fresh interpreters each) ...")
        footprint = Footprint(
            relay_import=cold_import(relay_local, import_runs),
            baseline_import=cold_import(baseline_local, import_runs),
            layer=layer_size(args.build_dir.resolve() / "RelayLayer"),
        )
        for line in footprint_lines(footprint):
            _say(f"  {line}")
        functions: dict[str, MeasuredFunction] = {}
        try:
            for name, local in ((RELAY, relay_local), (BASELINE, baseline_local)):
                functions[name] = start_measured(name, local)
            _say("cold starts ...")
            cold = _cold_start(stack, functions, latency)
            for scenario in direct_scenarios(sizes, DEFAULT_QUOTAS):
                if scenario.key not in only:
                    continue
                _say(f"{scenario.title} ...")
                results.append(
                    run_direct(scenario, stack, functions, latency=latency, progress=_say)
                )
            if "end_to_end" in only:
                _say("end to end ...")
                results.append(
                    run_end_to_end(stack, functions, sizes, latency=latency, progress=_say)
                )
        finally:
            for function in functions.values():
                function.stop()

    targets = evaluate_targets(results, footprint)
    meta: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        **_source_state(),
        "latencyMs": args.latency_ms,
        "memorySizeMb": relay_local.config.memory_size_mb,
        "batchSize": state.event_source.batch_size if state.event_source else None,
        "parameterOverrides": overrides,
        "trust": "emulator CA only" if args.emulator_ca_only else "public CA list + emulator CA",
        "relayEnvironment": {
            key: value
            for key, value in relay_local.config.environment.items()
            if not key.startswith("POWERTOOLS")
        },
        "quotas": {
            "connectAsMasterPerSecond": DEFAULT_QUOTAS.connect_as_master_per_second,
            "sdpAnswerPerSecond": DEFAULT_QUOTAS.sdp_answer_per_second,
            "iceCandidatePerSecond": DEFAULT_QUOTAS.ice_candidate_per_second,
        },
        "sizes": {
            "tenChannelsRepetitions": sizes.ten_channels_repetitions,
            "oneChannelAnswers": sizes.one_channel_answers,
            "oneChannelRepetitions": sizes.one_channel_repetitions,
            "oneViewerIce": sizes.one_viewer_ice,
            "endToEndRequests": sizes.end_to_end_requests,
            "endToEndChannels": sizes.end_to_end_channels,
        },
        "coldStart": cold,
        "machine": machine_facts(runtime_python),
        "loadAverage": {"start": load_at_start, "end": load_average()},
        "cpuBusyBeforeRun": busy_at_start,
        "foreignLoad": foreign.to_json(),
        "runSeconds": round(time.monotonic() - started, 1),
    }
    subtitle = (
        f"{args.latency_ms:g} ms round trip, real quotas, {meta['memorySizeMb']} MB, "
        f"{meta['mode']} run"
    )
    data = report_json(meta, results, footprint, targets)
    _write_atomically(out / f"{STEM}.json", lambda p: write_json(p, data))
    _write_atomically(out / f"{STEM}.png", lambda p: draw(results, p, subtitle))
    _write_atomically(
        out / f"{STEM}.md",
        lambda p: p.write_text(
            markdown_report(meta, results, footprint, targets, f"{STEM}.png"), encoding="utf-8"
        ),
    )
    print(text_table(results))
    print()
    for line in footprint_lines(footprint):
        print(line)
    print()
    for target in targets:
        print(target.line())
    share = meta["foreignLoad"]["machineShare"]
    if share is not None and share > FOREIGN_WARNING:
        print(
            f"\nnote: other processes used {share:.0%} of the machine's CPU during the run "
            f"({meta['foreignLoad']['cpuSeconds']} CPU-s): the figures are skewed; run again on "
            "a quiet machine"
        )
    print(f"\nwritten: {out / STEM}.json, .md, .png ({meta['runSeconds']} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when the benchmark ran (whatever the figures), 2 when it could not."""
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except (InvokeError, TemplateError, OSError, RuntimeError, ValueError) as problem:
        print(f"bench: {type(problem).__name__}: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
