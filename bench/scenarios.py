"""The benchmark's scenarios, each run for the relay and the baseline side by side.

Every scenario has channels of its own on the local stack's emulator for each function (so one
function's connects never count against the other's quota), each with ``Faults(latency_seconds)``:
one network round trip per message and per control-plane call naming the channel, three per
``wss://`` handshake. The emulator's quotas are the real ones.

* ``ten_channels``: one SQS batch of 10 SDP answers, one per channel (10 channels), as MASTER.
* ``one_channel_answers``: one batch of 10 SDP answers to 10 viewers of one channel, as MASTER
  (quota-bound: 5 answers per second per connection, 3 connects per second per channel).
* ``one_viewer_ice``: one event of 100 ICE candidates to one viewer, as MASTER (quota-bound:
  20 per second per connection). 100 records is above the template's BatchSize values (at most
  50), which Lambda allows on a standard queue with a batching window: the event is invoked
  directly, not through the event source.
* ``end_to_end``: requests of viewer sessions (an SDP answer and four ICE candidates each) enqueued
  at once with the producer client, polled by the event-source runner with the template's
  BatchSize, invoked under RIE; the relay's outcomes collected from an SQS queue subscribed to
  the outcome topic.

In the direct scenarios, records a function returns in ``batchItemFailures`` are invoked again at
once until none fail (Lambda would wait out the queue's visibility timeout, 380 s by default):
the fastest redelivery the baseline could get.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from bench.functions import (
    Invocation,
    MeasuredFunction,
    cpu_ms_per_message,
    gb_seconds_per_thousand,
)
from bench.workload import ice_candidate, records_named, sdp_answer, sqs_event, viewer_sessions
from kvs_local.emulator import Emulator, Faults
from kvs_local.sqs_event_source import SqsEventSourceRunner
from kvs_local.stack import LocalStack
from kvs_relay.quotas import SignalingQuotas, SlidingWindow
from kvs_relay_producer import SignalingProducer

THROTTLE_COUNTERS: Final = (
    "connect_throttled",
    "send_throttled",
    "viewer_limit_refused",
    "throttled_by_fault",
)
SCENARIO_KEYS: Final = ("ten_channels", "one_channel_answers", "one_viewer_ice", "end_to_end")
"""Every scenario, in the order a run measures them."""
QUIET_SECONDS: Final = 1.2
"""Pause between repetitions: every per-second connect window of the channels is empty again."""
MAX_REDELIVERIES: Final = 200
REDELIVERY_DEADLINE_SECONDS: Final = 300.0
END_TO_END_TIMEOUT_SECONDS: Final = 900.0

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ScenarioSizes:
    """How big each scenario is (the full run's, or the quick run's)."""

    ten_channels_repetitions: int = 5
    one_channel_answers: int = 10
    one_channel_repetitions: int = 3
    one_viewer_ice: int = 100
    end_to_end_requests: int = 1000
    end_to_end_channels: int = 20
    warm_up: bool = True
    """Send one unmeasured answer per channel before ``ten_channels`` (warm caches and pools)."""

    @classmethod
    def quick(cls) -> ScenarioSizes:
        """A CI-sized run: one repetition each and no warm-up, 21 ICE candidates (still two
        quota windows), 20 requests end to end."""
        return cls(
            ten_channels_repetitions=1,
            one_channel_repetitions=1,
            one_viewer_ice=21,
            end_to_end_requests=20,
            end_to_end_channels=4,
            warm_up=False,
        )


@dataclass(slots=True)
class SideResult:
    """One function's figures in one scenario (all repetitions pooled unless said otherwise)."""

    function: str
    repetitions: int
    messages: int
    """Messages the scenario asked for, over all repetitions."""
    accepted: int
    """Messages the emulator accepted (``sent_by``) on the scenario's channels."""
    wall_seconds: float
    """Median over repetitions: first invocation's start to the last one's end (end to end:
    first enqueue to the last outcome, or to the last handler return for the baseline)."""
    throttled: int
    """The emulator's throttling counters on the scenario's channels, summed (connects, sends,
    viewer limit), over all repetitions."""
    failed_records: int
    """Records returned in batchItemFailures (each attempt counts)."""
    invocations: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    cpu_ms_per_message: float | None
    gb_seconds_per_1000: float | None
    duration_ms_total: float
    span_seconds: float | None = None
    """Quota-bound scenarios: first to last accepted message, worst repetition."""
    ideal_span_seconds: float | None = None
    efficiency: float | None = None
    """ideal_span / span (worst repetition); 1.0 is exactly the rate the quota allows."""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def messages_per_second(self) -> float | None:
        """Accepted messages per repetition over the median wall time."""
        if self.wall_seconds <= 0 or self.repetitions <= 0:
            return None
        return self.accepted / self.repetitions / self.wall_seconds

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["messages_per_second"] = self.messages_per_second
        return data


@dataclass(slots=True)
class ScenarioResult:
    """A scenario's relay and baseline figures."""

    key: str
    title: str
    messages: int
    """Messages per repetition."""
    latency_basis: str
    quota_bound: bool
    relay: SideResult
    baseline: SideResult
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "messages": self.messages,
            "latencyBasis": self.latency_basis,
            "quotaBound": self.quota_bound,
            "relay": self.relay.to_json(),
            "baseline": self.baseline.to_json(),
            "notes": list(self.notes),
        }


# Figures.


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ideal_span_seconds(messages: int, rate_per_second: float) -> float:
    """The shortest first-to-last span the sliding-window quota allows for ``messages`` sends
    on one connection: full windows back to back (10 answers at 5/s: 1.0 s)."""
    window = SlidingWindow.per_second(rate_per_second)
    return max(0, math.ceil(messages / window.limit) - 1) * window.period


class ChannelWatch:
    """The emulator's view of a set of channels: accepted messages and throttling, as deltas."""

    def __init__(self, emulator: Emulator, channel_arns: Sequence[str]) -> None:
        self.emulator = emulator
        self.channel_arns = list(channel_arns)
        self._accepted = self._accepted_counts()
        self._throttled = self._throttled_total()

    def _accepted_counts(self) -> dict[str, int]:
        return {arn: len(self.emulator.sent_times(arn, None)) for arn in self.channel_arns}

    def _throttled_total(self) -> int:
        return sum(
            self.emulator.counters(arn).get(name, 0)
            for arn in self.channel_arns
            for name in THROTTLE_COUNTERS
        )

    def accepted_times(self) -> list[float]:
        """Monotonic times the service accepted the masters' messages since this watch began."""
        times: list[float] = []
        for arn in self.channel_arns:
            times += self.emulator.sent_times(arn, None)[self._accepted[arn] :]
        return sorted(times)

    def accepted_per_channel(self) -> dict[str, list[float]]:
        return {
            arn: self.emulator.sent_times(arn, None)[self._accepted[arn] :]
            for arn in self.channel_arns
        }

    def throttled(self) -> int:
        return self._throttled_total() - self._throttled


def make_channels(stack: LocalStack, prefix: str, count: int, latency: float) -> list[str]:
    """``count`` new channels with the latency fault set."""
    arns = []
    for index in range(count):
        arn = stack.ensure_channel(f"{prefix}-{index}-{uuid.uuid4().hex[:6]}")
        stack.emulator.set_faults(arn, Faults(latency_seconds=latency))
        arns.append(arn)
    return arns


# Direct invocations.


@dataclass(slots=True)
class Repetition:
    """One repetition of a direct scenario for one function."""

    wall_seconds: float
    invocations: list[Invocation]
    latencies_ms: list[float]
    accepted: int
    throttled: int
    failed_records: int
    span_seconds: float | None


def deliver_until_done(
    function: MeasuredFunction, event: dict[str, Any], watch: ChannelWatch
) -> Repetition:
    """Invoke with ``event``, then again with its failed records at once, until none fail.

    The emulator is read after :data:`QUIET_SECONDS`: a frame written just before the handler
    returned is accepted one round trip later (the baseline closes right after its send).
    """
    first = len(function.invocations)
    started = time.monotonic()
    pending = event
    failed = 0
    for _ in range(MAX_REDELIVERIES):
        invocation = function.invoke(pending)
        failed += len(invocation.failed_ids)
        if not invocation.failed_ids:
            break
        if time.monotonic() - started > REDELIVERY_DEADLINE_SECONDS:
            break
        pending = records_named(event, invocation.failed_ids)
    invocations = function.invocations[first:]
    ended = invocations[-1].ended
    time.sleep(QUIET_SECONDS)
    accepted = watch.accepted_times()
    return Repetition(
        wall_seconds=ended - started,
        invocations=invocations,
        latencies_ms=[(at - started) * 1000 for at in accepted],
        accepted=len(accepted),
        throttled=watch.throttled(),
        failed_records=failed,
        span_seconds=(accepted[-1] - accepted[0]) if len(accepted) > 1 else None,
    )


def side_from_repetitions(
    function: MeasuredFunction,
    repetitions: Sequence[Repetition],
    messages_per_repetition: int,
    ideal_span: float | None,
) -> SideResult:
    """Pool repetitions: median wall time; latencies, CPU and duration over all of them."""
    invocations = [i for r in repetitions for i in r.invocations]
    latencies = [value for r in repetitions for value in r.latencies_ms]
    messages = messages_per_repetition * len(repetitions)
    spans = [r.span_seconds for r in repetitions if r.span_seconds is not None]
    worst_span = max(spans) if spans else None
    efficiency = ideal_span / worst_span if ideal_span is not None and worst_span else None
    return SideResult(
        function=function.name,
        repetitions=len(repetitions),
        messages=messages,
        accepted=sum(r.accepted for r in repetitions),
        wall_seconds=statistics.median(r.wall_seconds for r in repetitions),
        throttled=sum(r.throttled for r in repetitions),
        failed_records=sum(r.failed_records for r in repetitions),
        invocations=len(invocations),
        latency_p50_ms=percentile(latencies, 50),
        latency_p99_ms=percentile(latencies, 99),
        cpu_ms_per_message=cpu_ms_per_message(invocations, messages),
        gb_seconds_per_1000=gb_seconds_per_thousand(invocations, messages, function.memory_size_mb),
        duration_ms_total=sum(i.duration_ms for i in invocations),
        span_seconds=worst_span if ideal_span is not None else None,
        ideal_span_seconds=ideal_span,
        efficiency=efficiency,
        details={
            "wallSecondsPerRepetition": [round(r.wall_seconds, 4) for r in repetitions],
            "spanSecondsPerRepetition": [r.span_seconds for r in repetitions],
            "invocationsPerRepetition": [len(r.invocations) for r in repetitions],
            "durationMsPerInvocation": [round(i.duration_ms, 2) for i in invocations],
            "cpuMsPerInvocation": [i.cpu_ms for i in invocations],
            "functionErrors": sorted({i.function_error for i in invocations if i.function_error}),
        },
    )


@dataclass(frozen=True, slots=True)
class DirectScenario:
    """A direct-invocation scenario: how to build one repetition's event for some channels."""

    key: str
    title: str
    messages: int
    channels: int
    repetitions: int
    build: Callable[[Sequence[str], str], list[dict[str, Any]]]
    """(channel ARNs, a tag unique to the repetition) -> request bodies."""
    quota_rate: float | None = None
    """The per-connection send quota that bounds the scenario (None: not quota-bound)."""
    warm_up: bool = False


def run_direct(
    scenario: DirectScenario,
    stack: LocalStack,
    functions: Mapping[str, MeasuredFunction],
    *,
    latency: float,
    progress: Progress,
) -> ScenarioResult:
    """Run a direct scenario: repetitions alternate between the functions, a quiet pause apart."""
    state = stack.snapshot()
    source = state.event_source_settings()
    channels = {
        name: make_channels(
            stack, f"{scenario.key.replace('_', '-')}-{name}", scenario.channels, latency
        )
        for name in functions
    }
    if scenario.warm_up:
        # One answer per channel, not measured: the relay's endpoint cache and both functions'
        # connection pools are warm, as in a container that has been busy.
        for name, function in functions.items():
            bodies = [sdp_answer(arn, "warm-up", "warm") for arn in channels[name]]
            function.invoke(sqs_event(bodies, source.queue_arn, state.region))
        time.sleep(QUIET_SECONDS)
    repetitions: dict[str, list[Repetition]] = {name: [] for name in functions}
    for number in range(scenario.repetitions):
        for name, function in functions.items():
            bodies = scenario.build(channels[name], f"r{number}")
            event = sqs_event(bodies, source.queue_arn, state.region)
            watch = ChannelWatch(stack.emulator, channels[name])
            repetition = deliver_until_done(function, event, watch)
            repetitions[name].append(repetition)
            progress(
                f"  {scenario.key} {name} #{number + 1}: {repetition.wall_seconds:.3f} s, "
                f"{repetition.accepted} accepted, {repetition.throttled} throttled, "
                f"{len(repetition.invocations)} invocation(s)"
            )
    ideal = (
        ideal_span_seconds(scenario.messages, scenario.quota_rate)
        if scenario.quota_rate is not None
        else None
    )
    sides = {
        name: side_from_repetitions(functions[name], repetitions[name], scenario.messages, ideal)
        for name in functions
    }
    return ScenarioResult(
        key=scenario.key,
        title=scenario.title,
        messages=scenario.messages,
        latency_basis="invocation start to the service accepting the message",
        quota_bound=scenario.quota_rate is not None,
        relay=sides["relay"],
        baseline=sides["baseline"],
    )


def direct_scenarios(sizes: ScenarioSizes, quotas: SignalingQuotas) -> list[DirectScenario]:
    """The three direct scenarios at ``sizes``."""

    def ten_channels(arns: Sequence[str], tag: str) -> list[dict[str, Any]]:
        return [sdp_answer(arn, f"viewer-{tag}", tag) for arn in arns]

    def answers(arns: Sequence[str], tag: str) -> list[dict[str, Any]]:
        return [
            sdp_answer(arns[0], f"viewer-{tag}-{i}", tag) for i in range(sizes.one_channel_answers)
        ]

    def ice(arns: Sequence[str], tag: str) -> list[dict[str, Any]]:
        count = sizes.one_viewer_ice
        return [ice_candidate(arns[0], f"viewer-{tag}", tag, i) for i in range(count)]

    return [
        DirectScenario(
            key="ten_channels",
            title="10 SDP answers to 10 channels (one batch)",
            messages=10,
            channels=10,
            repetitions=sizes.ten_channels_repetitions,
            build=ten_channels,
            warm_up=sizes.warm_up,
        ),
        DirectScenario(
            key="one_channel_answers",
            title=f"{sizes.one_channel_answers} SDP answers to one channel as MASTER",
            messages=sizes.one_channel_answers,
            channels=1,
            repetitions=sizes.one_channel_repetitions,
            build=answers,
            quota_rate=quotas.sdp_answer_per_second,
        ),
        DirectScenario(
            key="one_viewer_ice",
            title=f"{sizes.one_viewer_ice} ICE candidates to one viewer (one event)",
            messages=sizes.one_viewer_ice,
            channels=1,
            repetitions=1,
            build=ice,
            quota_rate=quotas.ice_candidate_per_second,
        ),
    ]


# End to end.


class _InvokeRecorder:
    """The event source's invoke: records each record's SentTimestamp, and when the handler
    returned for the records that did not fail."""

    def __init__(self, function: MeasuredFunction) -> None:
        self.function = function
        self.sent_ms: dict[str, int] = {}
        self.returned_epoch: dict[str, float] = {}
        self.failed_attempts = 0
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> Mapping[str, Any]:
        records = event.get("Records") or []
        invocation = self.function.invoke(event)
        with self.lock:
            for record in records:
                message_id = str(record["messageId"])
                self.seen.add(message_id)
                sent = (record.get("attributes") or {}).get("SentTimestamp")
                if sent is not None:
                    self.sent_ms.setdefault(message_id, int(sent))
                if message_id not in invocation.failed_ids:
                    self.returned_epoch[message_id] = invocation.ended_epoch
            self.failed_attempts += len(invocation.failed_ids)
        if invocation.function_error is not None:
            raise RuntimeError(f"function error: {invocation.function_error}")
        return {"batchItemFailures": [{"itemIdentifier": i} for i in invocation.failed_ids]}


def _drain_outcomes(sqs: Any, queue_url: str) -> list[tuple[dict[str, Any], float]]:
    """Every outcome on the subscribed queue: (outcome, the SNS notification's epoch time)."""
    found: list[tuple[dict[str, Any], float]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            envelope = json.loads(message["Body"])
            stamp = dt.datetime.fromisoformat(str(envelope["Timestamp"]).replace("Z", "+00:00"))
            found.append((json.loads(envelope["Message"]), stamp.timestamp()))
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )


def _empty_queue(sqs: Any, queue_url: str) -> None:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    if any(int(value) for value in attributes.values()):
        sqs.purge_queue(QueueUrl=queue_url)


def run_end_to_end_side(
    stack: LocalStack,
    function: MeasuredFunction,
    requests: Sequence[dict[str, Any]],
    channels: Sequence[str],
    *,
    collect_outcomes: bool,
    progress: Progress,
) -> SideResult:
    """Enqueue ``requests`` at once with the producer client and let the event-source runner
    feed ``function`` until every enqueued request was handled once (or the timeout)."""
    state = stack.snapshot()
    settings = state.event_source_settings()
    sqs = stack.client("sqs")
    _empty_queue(sqs, settings.queue_url)
    inbox = stack.subscribe_queue("OutcomeTopic") if collect_outcomes else None
    watch = ChannelWatch(stack.emulator, channels)
    recorder = _InvokeRecorder(function)
    first = len(function.invocations)
    runner = SqsEventSourceRunner(sqs, settings, recorder)
    runner.start()
    try:
        report = SignalingProducer(sqs, settings.queue_url).send(requests)
        enqueued = {item.message_id for item in report.enqueued}
        deadline = time.monotonic() + END_TO_END_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            with recorder.lock:
                if enqueued <= recorder.seen:
                    break
            time.sleep(0.05)
    finally:
        runner.stop()
    invocations = function.invocations[first:]
    time.sleep(QUIET_SECONDS)  # the last frames are accepted a round trip after they were sent
    finished: dict[str, float] = {}
    statuses: dict[str, int] = {}
    if inbox is not None:
        for outcome, at in _drain_outcomes(sqs, inbox.queue_url):
            message_id = str(outcome.get("messageId"))
            status = str(outcome.get("status"))
            statuses[status] = statuses.get(status, 0) + 1
            if message_id in enqueued and status != "RETRY":
                finished[message_id] = min(at, finished.get(message_id, at))
    else:
        finished = {m: at for m, at in recorder.returned_epoch.items() if m in enqueued}
    sent = {m: ms / 1000 for m, ms in recorder.sent_ms.items() if m in enqueued}
    latencies = [(finished[m] - sent[m]) * 1000 for m in finished if m in sent]
    start = min(sent.values()) if sent else 0.0
    wall = (max(finished.values()) - start) if finished else 0.0
    messages = len(requests)
    accepted = len(watch.accepted_times())
    progress(
        f"  end_to_end {function.name}: {wall:.2f} s, {accepted}/{messages} accepted, "
        f"{len(invocations)} invocations, {recorder.failed_attempts} failed records"
    )
    return SideResult(
        function=function.name,
        repetitions=1,
        messages=messages,
        accepted=accepted,
        wall_seconds=wall,
        throttled=watch.throttled(),
        failed_records=recorder.failed_attempts,
        invocations=len(invocations),
        latency_p50_ms=percentile(latencies, 50),
        latency_p99_ms=percentile(latencies, 99),
        cpu_ms_per_message=cpu_ms_per_message(invocations, messages),
        gb_seconds_per_1000=gb_seconds_per_thousand(invocations, messages, function.memory_size_mb),
        duration_ms_total=sum(i.duration_ms for i in invocations),
        details={
            "enqueued": len(enqueued),
            "notEnqueued": len(report.failed),
            "finished": len(finished),
            "outcomeStatuses": statuses,
            "batchSizes": [i.records for i in invocations],
            "durationMsPerInvocation": [round(i.duration_ms, 2) for i in invocations],
            "cpuMsPerInvocation": [i.cpu_ms for i in invocations],
            "functionErrors": sorted({i.function_error for i in invocations if i.function_error}),
        },
    )


def run_end_to_end(
    stack: LocalStack,
    functions: Mapping[str, MeasuredFunction],
    sizes: ScenarioSizes,
    *,
    latency: float,
    progress: Progress,
) -> ScenarioResult:
    """The end-to-end scenario for both functions, one after the other, same request mix."""
    sessions = max(1, sizes.end_to_end_requests // 5)
    sides: dict[str, SideResult] = {}
    for name, function in functions.items():
        channels = make_channels(stack, f"e2e-{name}", sizes.end_to_end_channels, latency)
        requests = viewer_sessions(channels, sessions)
        sides[name] = run_end_to_end_side(
            stack,
            function,
            requests,
            channels,
            collect_outcomes=name == "relay",
            progress=progress,
        )
    return ScenarioResult(
        key="end_to_end",
        title=(
            f"{sessions * 5:,} requests end to end ({sessions} viewer sessions of an answer and "
            f"4 ICE candidates, {sizes.end_to_end_channels} channels)"
        ),
        messages=sessions * 5,
        latency_basis=(
            "enqueue (SentTimestamp) to the outcome's SNS notification (relay) or to the handler "
            "returning (baseline: it publishes nothing)"
        ),
        quota_bound=False,
        relay=sides["relay"],
        baseline=sides["baseline"],
        notes=[
            "All requests are enqueued at once (a burst); one function instance polls, as the "
            "local event-source runner does: latency includes the wait in the queue.",
        ],
    )
