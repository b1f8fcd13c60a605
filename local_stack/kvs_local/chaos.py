"""``python -m kvs_local.chaos --requests N`` (``make chaos``): nothing lost, nothing sent twice.

Pushes N requests through the local stack (the producer client, the queue, several event-source
runners each driving the function under the Lambda RIE, the idempotency table, the outcome topic)
while:

* the emulator refuses and delays handshakes, drops connections mid-batch, sends GO_AWAY,
  throttles and adds latency, on channels picked at random, changing every few seconds;
* SNS publishing fails for a while (the function reaches SNS through a proxy in front of the
  moto server that answers 503 during the outage);
* the runners' functions are killed mid-batch (SIGKILL of the runtime process, as a crash or a
  timeout would end them).

Afterwards every request must be accounted for exactly once: accepted by the signaling service
for its recipient, reported on SNS as a failure, or in the dead-letter queue. It prints the
accounting table and exits 1 on any request lost, accepted twice or accounted twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from kvs_local.emulator import Faults
from kvs_local.invoke import DEFAULT_BUILD_DIR, InvokeError, RieFunction, local_function
from kvs_local.sqs_event_source import SqsEventSourceRunner
from kvs_local.stack import LocalStack, TopicSubscriptionQueue
from kvs_relay_producer import SignalingProducer

log = logging.getLogger("kvs_local.chaos")

# Time is compressed so a run takes minutes, keeping Lambda's own rule (visibility timeout at
# least the function timeout): a killed invocation's claims and sending marks live as long as its
# remaining time, so the function is given 3 s (the RIE enforces it; the template's smallest is
# 15 s) and its records come back after 4 s. MaxReceiveCount 8 leaves room for the kills and SNS
# outages a record may meet. The status window's floor is raised to 0.5 s: on this 2-core machine
# the emulator, moto and three runtimes share the CPU, and a STATUS_RESPONSE can lag behind.
FUNCTION_TIMEOUT_SECONDS = 3
MAX_RECEIVE_COUNT = 8
VISIBILITY_TIMEOUT_SECONDS = 4
STATUS_WAIT_MIN_SECONDS = "0.5"
UNCERTAIN = "delivery uncertain"

Category = str
SENT = "accepted once, reported SENT"
SENT_UNCERTAIN = "accepted once, reported FAILED (delivery uncertain)"
FAILED = "not accepted, reported as a failure"
DEAD_LETTERED = "not accepted, in the dead-letter queue"
LOST = "LOST: not accepted, not reported, not dead-lettered"
TWICE = "ACCEPTED TWICE"
DOUBLE = "ACCOUNTED TWICE (accepted and dead-lettered, or two final outcomes)"
UNREPORTED = "UNREPORTED: accepted, no outcome, not dead-lettered"
CATEGORIES = (SENT, SENT_UNCERTAIN, FAILED, DEAD_LETTERED, LOST, TWICE, DOUBLE, UNREPORTED)
BAD = (LOST, TWICE, DOUBLE, UNREPORTED)


@dataclass
class ChaosLog:
    """What the chaos did, for the report."""

    faults_set: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    sns_outages: int = 0
    sns_refused: int = 0
    invocations: int = 0
    invocation_errors: int = 0


class KillableFunction:
    """A function under the RIE whose runtime can be killed mid-invocation."""

    def __init__(self, runner: RieFunction) -> None:
        self._runner = runner
        self.busy = threading.Event()

    def invoke(self, event: dict[str, Any]) -> Any:
        self.busy.set()
        try:
            result = self._runner.invoke(event)
        finally:
            self.busy.clear()
        if result.function_error is not None:
            raise InvokeError(f"function error: {result.function_error}")
        return result.response

    def kill(self) -> bool:
        """SIGKILL the runtime if an invocation is under way (RIE starts a new one next time)."""
        pid = self._runner.runtime_pid
        if pid is None or not self.busy.is_set():
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            return True
        return False

    def start(self) -> KillableFunction:
        self._runner.start()
        return self

    def stop(self) -> None:
        self._runner.stop()


class SwitchableProxy:
    """An HTTP proxy in front of the moto server that answers 503 while ``down`` is set: an SNS
    outage as the function sees it (moto itself cannot be made to fail on demand)."""

    def __init__(self, target: str) -> None:
        self._target = target.rstrip("/")
        self.down = threading.Event()
        self.refused = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def _forward(self, request: web.Request) -> web.Response:
        if self.down.is_set():
            self.refused += 1
            return web.Response(status=503, text="injected outage")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._session.request(
            request.method,
            self._target + request.rel_url.raw_path_qs,
            headers=headers,
            data=await request.read(),
        ) as reply:
            body = await reply.read()
            return web.Response(status=reply.status, body=body, content_type=reply.content_type)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # the bound port lives on aiohttp's asyncio server
        assert server is not None
        port = getattr(server, "sockets", [])[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def start(self) -> SwitchableProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def rie_function(state: Any, sns_endpoint: str) -> RieFunction:
    """The template's function, built, under the Lambda RIE, reaching SNS at ``sns_endpoint``."""
    function = local_function(state, build_dir=DEFAULT_BUILD_DIR)
    environment = {
        **function.environment,
        "AWS_ENDPOINT_URL_SNS": sns_endpoint,
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(FUNCTION_TIMEOUT_SECONDS),
    }
    config = dataclasses.replace(function.config, timeout_seconds=FUNCTION_TIMEOUT_SECONDS)
    return RieFunction(config, function.artifact, environment)


def requests_for(count: int, channels: list[str], rng: random.Random) -> list[dict[str, Any]]:
    """Master messages to distinct viewers (no answer overwrites another), ids to trace them."""
    requests: list[dict[str, Any]] = []
    for n in range(count):
        request: dict[str, Any] = {
            "channelArn": rng.choice(channels),
            "role": "MASTER",
            "recipientClientId": f"viewer-{n}",
            "correlationId": f"chaos-{n}",
        }
        if n % 5 == 0:
            request |= {"action": "SDP_ANSWER", "sdp": f"v=0\r\no=- {n} 2 IN IP4 192.0.2.1\r\n"}
        else:
            request |= {
                "action": "ICE_CANDIDATE",
                "iceCandidate": {
                    "candidate": f"candidate:{n} 1 udp 2122260223 192.0.2.1 {10000 + n} typ host",
                    "sdpMid": "0",
                    "sdpMLineIndex": 0,
                },
            }
        requests.append(request)
    return requests


def random_faults(rng: random.Random) -> tuple[str, Faults]:
    name, faults = rng.choice(
        [
            ("refuse handshakes", Faults(refuse_handshakes=rng.randint(1, 4), refuse_status=503)),
            ("delay handshakes", Faults(handshake_delay_seconds=0.5)),
            ("drop mid-batch", Faults(drop_after_messages=rng.randint(1, 5))),
            (
                "GO_AWAY mid-batch",
                Faults(go_away_after_messages=rng.randint(1, 4), go_away_close_seconds=0.3),
            ),
            ("throttle", Faults(throttle=True)),
            ("latency", Faults(latency_seconds=0.02)),
        ]
    )
    return name, faults


def run_chaos(
    requests: int,
    *,
    concurrency: int = 3,
    seed: int = 7,
    kill_every_seconds: float = 2.0,
    outage_every_seconds: float = 10.0,
    timeout_seconds: float = 600.0,
) -> tuple[
    Counter[Category],
    ChaosLog,
    dict[str, Category],
    dict[str, tuple[int, bool, list[dict[str, Any]]]],
]:
    """Run the chaos; the accounting per category, what was done, and each request's category."""
    rng = random.Random(seed)
    done = threading.Event()
    chaos = ChaosLog()
    with LocalStack(
        stack_name=f"kvs-chaos-{uuid.uuid4().hex[:6]}",
        parameter_overrides={
            "MaxReceiveCount": str(MAX_RECEIVE_COUNT),
            "StatusWaitMinSeconds": STATUS_WAIT_MIN_SECONDS,
        },
    ) as stack:
        state = stack.snapshot()
        sqs = stack.client("sqs")
        settings = state.event_source_settings()
        sqs.set_queue_attributes(
            QueueUrl=settings.queue_url,
            Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS)},
        )
        channels = [stack.ensure_channel(f"chaos-{n}") for n in range(12)]
        inbox = stack.subscribe_queue("OutcomeTopic")
        wanted = requests_for(requests, channels, rng)
        report = SignalingProducer(sqs, settings.queue_url).send(wanted)
        if not report.ok:
            raise RuntimeError(f"could not enqueue: {report.failed[:3]}")
        message_of = {f"chaos-{e.index}": e.message_id for e in report.enqueued}

        proxy = SwitchableProxy(state.endpoints.moto).start()
        functions = [KillableFunction(rie_function(state, proxy.url)) for _ in range(concurrency)]
        runners = []
        for function in functions:
            function.start()
            runner = SqsEventSourceRunner(sqs, settings, function.invoke)
            runner.start()
            runners.append(runner)

        def faults_loop() -> None:
            while not done.wait(2.0):
                for channel in channels:
                    stack.emulator.clear_faults(channel)
                for channel in rng.sample(channels, 4):
                    name, faults = random_faults(rng)
                    stack.emulator.set_faults(channel, faults)
                    chaos.faults_set[name] += 1

        def kill_loop() -> None:
            while not done.wait(kill_every_seconds):
                if rng.choice(functions).kill():
                    chaos.kills += 1

        def sns_outage() -> None:
            while not done.wait(outage_every_seconds):
                proxy.down.set()
                chaos.sns_outages += 1
                done.wait(3.0)
                proxy.down.clear()

        helpers = [
            threading.Thread(target=target, name=name, daemon=True)
            for name, target in (
                ("chaos-faults", faults_loop),
                ("chaos-kills", kill_loop),
                ("chaos-sns", sns_outage),
            )
        ]
        for helper in helpers:
            helper.start()
        try:
            wait_until_drained(sqs, settings.queue_url, timeout_seconds)
        finally:
            done.set()
            for helper in helpers:
                helper.join(timeout=10)
            for runner in runners:
                runner.stop()
                chaos.invocations += runner.stats.invocations
                chaos.invocation_errors += runner.stats.invocation_errors
            for function in functions:
                function.stop()
            proxy.stop()
            chaos.sns_refused = proxy.refused
        for channel in channels:
            stack.emulator.clear_faults(channel)
        accepted = Counter(
            str(message.correlation_id)
            for channel in channels
            for message in stack.emulator.sent_by(channel, None)
        )
        dead = dead_lettered(sqs, state.resources["DeadLetterQueue"].ref)
        finals = final_outcomes(inbox)
    categories = {
        correlation: categorize(accepted[correlation], message_id in dead, finals.get(message_id))
        for correlation, message_id in message_of.items()
    }
    details = {
        correlation: (accepted[correlation], message_id in dead, finals.get(message_id, []))
        for correlation, message_id in message_of.items()
    }
    return Counter(categories.values()), chaos, categories, details


def wait_until_drained(sqs: Any, queue_url: str, timeout_seconds: float) -> None:
    """Until the queue holds nothing, visible or in flight, three polls in a row."""
    deadline = time.monotonic() + timeout_seconds
    empty = 0
    while empty < 3:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the queue did not drain in {timeout_seconds:.0f} s")
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        left = sum(int(value) for value in attributes.values())
        empty = empty + 1 if left == 0 else 0
        time.sleep(1.0)


def dead_lettered(sqs: Any, dlq_url: str) -> set[str]:
    found: set[str] = set()
    while True:
        batch = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=600
        ).get("Messages", [])
        if not batch:
            return found
        found |= {message["MessageId"] for message in batch}


def final_outcomes(inbox: TopicSubscriptionQueue) -> dict[str, list[dict[str, Any]]]:
    """The distinct non-RETRY outcomes published for each message id.

    The same outcome published twice counts once: SNS delivers at least once to subscribers
    anyway, and the relay may publish an owed outcome again after a crash.
    """
    finals: dict[str, list[dict[str, Any]]] = {}
    for item in inbox.drain():
        outcome = item["message"]
        if isinstance(outcome, dict) and outcome.get("status") != "RETRY":
            known = finals.setdefault(str(outcome["messageId"]), [])
            key = (outcome.get("status"), outcome.get("reason"))
            if all((o.get("status"), o.get("reason")) != key for o in known):
                known.append(outcome)
    return finals


def categorize(accepted: int, dead: bool, finals: list[dict[str, Any]] | None) -> Category:
    """Which one way a request ended (anything else is a failure of the relay)."""
    finals = finals or []
    if accepted >= 2:
        return TWICE
    if len(finals) >= 2 or (accepted == 1 and dead) or (finals and dead):
        return DOUBLE
    status = finals[0]["status"] if finals else None
    uncertain = bool(finals) and str(finals[0].get("reason") or "").startswith(UNCERTAIN)
    if accepted == 1:
        if status == "SENT":
            return SENT
        if status == "FAILED" and uncertain:
            return SENT_UNCERTAIN
        return UNREPORTED if status is None else DOUBLE
    if dead:
        return DEAD_LETTERED
    if status in ("FAILED", "REJECTED"):
        return FAILED
    return LOST  # never accepted, and no failure reported (a SENT here would be a lie)


def render(counts: Counter[Category], chaos: ChaosLog, requests: int, seconds: float) -> str:
    width = max(len(c) for c in CATEGORIES)
    lines = [f"{'request ended':<{width}}  count", f"{'-' * width}  -----"]
    lines += [f"{category:<{width}}  {counts.get(category, 0):5d}" for category in CATEGORIES]
    lines.append(f"{'total':<{width}}  {sum(counts.values()):5d} of {requests}")
    faults = ", ".join(f"{name} x{count}" for name, count in sorted(chaos.faults_set.items()))
    lines += [
        "",
        f"chaos: {chaos.kills} functions killed mid-batch, {chaos.sns_outages} SNS outage(s) "
        f"({chaos.sns_refused} calls refused), "
        f"faults set: {faults}",
        f"{chaos.invocations} invocations ({chaos.invocation_errors} failed), {seconds:.0f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kvs_local.chaos", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=3, help="runners (function instances)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--kill-every", type=float, default=2.0, help="seconds between kills")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    for noisy in ("werkzeug", "kvs_local.sqs_event_source", "kvs_local.stack"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    started = time.monotonic()
    counts, chaos, categories, details = run_chaos(
        args.requests,
        concurrency=args.concurrency,
        seed=args.seed,
        kill_every_seconds=args.kill_every,
        timeout_seconds=args.timeout,
    )
    print(render(counts, chaos, args.requests, time.monotonic() - started))
    bad = sorted((category, request) for request, category in categories.items() if category in BAD)
    if bad:
        print(f"\nFAILED: {len(bad)} request(s) lost, accepted twice or accounted twice:")
        for category, request in bad[:20]:
            accepted, dead, finals = details[request]
            seen = [(f.get("status"), f.get("reason")) for f in finals]
            print(f"  {request}: {category} (accepted {accepted}, dead-lettered {dead}, {seen})")
        return 1
    if sum(counts.values()) != args.requests:
        print("\nFAILED: not every request was accounted for")
        return 1
    print("\nOK: every request accounted for exactly once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
