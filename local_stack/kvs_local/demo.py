"""``python -m kvs_local.demo``: a real WebRTC exchange through the relay, on the local stack.

1. The local stack comes up: a moto server with template.yaml's queue, dead-letter queue and
   topic, and the KVS signaling emulator (wss://, its own CA); a channel is created.
2. The event-source runner polls the request queue and invokes the function the way the template
   declares it (the Docker-free invoke: the `sam build` artifact under the Lambda Runtime
   Interface Emulator by default).
3. A viewer built with aiortc connects to the signaling channel and sends an SDP offer; an
   answering service, connected as the master, gets the offer, makes a real SDP answer with
   aiortc and enqueues it with the producer client as MASTER; the function delivers it.
4. The viewer applies the answer, ICE completes on loopback, and a data-channel message goes
   each way.

It prints the outcomes published on SNS and a timeline, shuts everything down, and exits 0 only
if the data channel opened.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.credentials import ReadOnlyCredentials

from kvs_local.invoke import DEFAULT_BUILD_DIR, FunctionRunner, local_function
from kvs_local.sqs_event_source import SqsEventSourceRunner
from kvs_local.stack import LocalStack, TopicSubscriptionQueue
from kvs_local.webrtc_peers import (
    AnsweringService,
    DemoViewer,
    SignalingTarget,
    Timeline,
    loopback_ice,
)
from kvs_relay_producer import SignalingProducer

VIEWER_ID = "demo-viewer"


@dataclass
class DemoResult:
    """What the demo saw: whether the data channel carried a message each way, and why not."""

    opened: bool
    viewer_heard: str | None = None
    master_heard: list[str] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    timeline: Timeline = field(default_factory=Timeline)
    error: str | None = None


def function_invoke(runner: FunctionRunner) -> Any:
    """The runner's ``invoke`` for the event source: a function error fails the whole batch."""

    def invoke(event: dict[str, Any]) -> Any:
        result = runner.invoke(event)
        if result.function_error is not None:
            raise RuntimeError(f"function error: {result.function_error}")
        return result.response

    return invoke


def signaling_endpoint(stack: LocalStack, channel_arn: str, role: str) -> str:
    """The WSS endpoint a peer of ``role`` gets from GetSignalingChannelEndpoint."""
    endpoints = stack.client("kinesisvideo").get_signaling_channel_endpoint(
        ChannelARN=channel_arn,
        SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS"], "Role": role},
    )["ResourceEndpointList"]
    endpoint: str = endpoints[0]["ResourceEndpoint"]
    return endpoint


async def exchange(
    stack: LocalStack, channel_arn: str, producer: SignalingProducer, timeline: Timeline
) -> DemoResult:
    """The viewer and the answering service, the answer going through the relay."""
    credentials = ReadOnlyCredentials(stack.access_key_id, stack.secret_access_key, None)

    def target(role: str) -> SignalingTarget:
        return SignalingTarget(
            endpoint=signaling_endpoint(stack, channel_arn, role),
            channel_arn=channel_arn,
            region=stack.region,
            credentials=credentials,
            ca_cert_path=stack.ca_bundle,
        )

    async def enqueue_answer(viewer_id: str, sdp: str) -> None:
        request = {
            "channelArn": channel_arn,
            "role": "MASTER",
            "recipientClientId": viewer_id,
            "action": "SDP_ANSWER",
            "sdp": sdp,
            "correlationId": f"answer-{viewer_id}",
        }
        report = await asyncio.to_thread(producer.send, [request])
        timeline.mark(f"answer enqueued with the producer client (ok={report.ok})")

    answering = AnsweringService(target("MASTER"), enqueue_answer, timeline)
    viewer = DemoViewer(target("VIEWER"), VIEWER_ID, timeline)
    try:
        master_task = asyncio.create_task(answering.answer_one())
        await asyncio.sleep(0.2)  # the master listens first, as a camera would
        reply = await viewer.run()
        await master_task
        return DemoResult(opened=True, viewer_heard=reply, master_heard=list(answering.received))
    finally:
        await viewer.close()
        await answering.close()


def run_demo(*, mode: str = "rie", timeout: float = 45.0) -> DemoResult:
    """Run the whole demo; never raises for a failed exchange (the result says why)."""
    timeline = Timeline()
    with LocalStack(stack_name="kvs-demo") as stack:
        channel_arn = stack.ensure_channel(f"demo-{uuid.uuid4().hex[:8]}")
        timeline.mark("local stack up: moto (queue, DLQ, topic) and the KVS signaling emulator")
        inbox: TopicSubscriptionQueue = stack.subscribe_queue("OutcomeTopic")
        state = stack.snapshot()
        function = local_function(state, build_dir=DEFAULT_BUILD_DIR if mode == "rie" else None)
        runner = function.runner(mode)
        runner.start()
        timeline.mark(f"function started ({mode})")
        events = SqsEventSourceRunner(
            stack.client("sqs"), state.event_source_settings(), function_invoke(runner)
        )
        events.start()
        producer = SignalingProducer(stack.client("sqs"), state.event_source_settings().queue_url)
        try:
            with loopback_ice():
                result = asyncio.run(
                    asyncio.wait_for(exchange(stack, channel_arn, producer, timeline), timeout)
                )
        except Exception as exc:  # the demo reports any failure as its result
            result = DemoResult(opened=False, error=f"{type(exc).__name__}: {exc}")
        finally:
            events.stop()
            runner.stop()
        result.timeline = timeline
        result.outcomes = [item["message"] for item in inbox.drain()]
    return result


def print_result(result: DemoResult) -> None:
    print("Outcomes published on SNS:")
    for outcome in result.outcomes:
        keep = ("status", "action", "role", "recipientClientId", "correlationId", "reason")
        print("  " + json.dumps({k: outcome.get(k) for k in keep if outcome.get(k) is not None}))
    print("\nTimeline:")
    print(result.timeline.render())
    if result.opened:
        print(f"\nData channel open: the viewer heard {result.viewer_heard!r}, ")
        print(f"the answering service heard {result.master_heard!r}.")
    else:
        print(f"\nThe data channel did not open: {result.error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kvs_local.demo", description=__doc__)
    parser.add_argument(
        "--mode",
        choices=["rie", "in-process"],
        default="rie",
        help="rie: the sam build artifact under the Lambda RIE; in-process: the source tree",
    )
    parser.add_argument("--timeout", type=float, default=45.0)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's access log
    result = run_demo(mode=args.mode, timeout=args.timeout)
    print_result(result)
    return 0 if result.opened and result.viewer_heard and result.master_heard else 1


if __name__ == "__main__":
    sys.exit(main())
