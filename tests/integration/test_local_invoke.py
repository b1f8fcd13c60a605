"""The Docker-free local invoke: template.yaml's function on the local stack, under the real
Lambda Runtime Interface Emulator (the ``sam build`` artifact) and in-process (the source tree).

The stacks reuse the session's moto server and KVS emulator. Tests of the build use
.aws-sam/build as scripts/sam-check.sh left it (they build nothing) and are skipped when it is
missing. The RIE tests make .venv-lambda through scripts/lambda-runtime.sh when it is missing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kvs_local.emulator import Emulator
from kvs_local.invoke import (
    FunctionArtifact,
    InProcessFunction,
    LocalFunction,
    RieFunction,
    channels_in_event,
    local_function,
    parse_rie_report,
    process_cpu_seconds,
    with_fresh_message_ids,
)
from kvs_local.lambda_context import LambdaContext
from kvs_local.stack import LocalStack, StackState
from kvs_local.template import ParameterError
from kvs_relay.protocol import Action, MessageType

from .conftest import OutcomeInbox, moto_client

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / ".aws-sam" / "build"
EVENTS = REPO / "events"
DEMO_ARN = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1234567890123"

# `make test` builds first and sets KVS_RELAY_REQUIRE_BUILD=1: there a missing build fails.
needs_build = pytest.mark.skipif(
    not BUILD.is_dir() and os.environ.get("KVS_RELAY_REQUIRE_BUILD") != "1",
    reason=".aws-sam/build is missing: run scripts/sam-check.sh (sam build) first; "
    "CI runs it before pytest",
)

StackFactory = Callable[..., LocalStack]


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def message_ids(event: dict[str, Any]) -> list[str]:
    return [record["messageId"] for record in event["Records"]]


@pytest.fixture
def make_stack(moto_endpoint: str, emulator: Emulator) -> Iterator[StackFactory]:
    """Local stacks on the session's servers, each with its own name and the demo channel."""
    stacks: list[LocalStack] = []

    def make(**overrides: str) -> LocalStack:
        stack = LocalStack(
            stack_name=f"it-{uuid.uuid4().hex[:8]}",
            # A short status window keeps each invocation quick.
            parameter_overrides={"StatusWaitSeconds": "0.2", **overrides},
            channels=[DEMO_ARN],
            moto_endpoint=moto_endpoint,
            emulator=emulator,
        )
        stacks.append(stack)
        return stack.start()

    yield make
    for stack in stacks:
        stack.stop()


def subscribe_outcomes(stack: LocalStack, moto_endpoint: str) -> OutcomeInbox:
    """An SQS queue of the test's own subscribed to the stack's outcome topic."""
    sqs = moto_client("sqs", moto_endpoint)
    url = sqs.create_queue(QueueName=f"inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    topic = stack.resources["OutcomeTopic"].ref
    moto_client("sns", moto_endpoint).subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return OutcomeInbox(sqs=sqs, queue_url=url, topic_arn=topic)


def statuses(inbox: OutcomeInbox, event: dict[str, Any]) -> list[str]:
    """The status of each record's one outcome, in record order."""
    grouped = inbox.by_message_id()
    found = []
    for message_id in message_ids(event):
        outcomes = grouped.get(message_id, [])
        assert len(outcomes) == 1, (message_id, outcomes)
        found.append(outcomes[0]["status"])
    return found


def held_types(emulator: Emulator, client_id: str | None) -> list[MessageType]:
    """What the emulator holds for an offline recipient of the demo channel, in order (a newer
    held offer or answer from the same sender replaces the older one, as the service does)."""
    return [event.message_type for event in emulator.pending(DEMO_ARN, client_id)]


def sent_actions(emulator: Emulator, client_id: str | None) -> list[Action]:
    """What the service accepted from a client of the demo channel (None: the master), in order."""
    return [message.action for message in emulator.sent_by(DEMO_ARN, client_id)]


@pytest.fixture
def start_rie() -> Iterator[Callable[[LocalFunction], RieFunction]]:
    started: list[RieFunction] = []

    def start(function: LocalFunction, **changes: Any) -> RieFunction:
        artifact = changes.pop("artifact", None) or function.artifact
        config = dataclasses.replace(function.config, **changes)
        runner = RieFunction(config, artifact, function.environment)
        started.append(runner)
        return runner.start()

    yield start
    for runner in started:
        runner.stop()


# The stack.


def test_stack_creates_the_template_queues_and_topic(make_stack: StackFactory) -> None:
    stack = make_stack()
    sqs, sns = stack.client("sqs"), stack.client("sns")
    request = stack.resources["RequestQueue"]
    dead_letter = stack.resources["DeadLetterQueue"]
    assert request.attributes["QueueName"] == f"{stack.stack_name}-RequestQueue"
    attributes = sqs.get_queue_attributes(QueueUrl=request.ref, AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["VisibilityTimeout"] == "380"  # FunctionTimeout 60 through the Mappings
    assert attributes["MessageRetentionPeriod"] == "7200"
    assert attributes["SqsManagedSseEnabled"] == "true"
    assert "FifoQueue" not in attributes
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dead_letter.attributes["Arn"]
    assert int(redrive["maxReceiveCount"]) == 5
    dlq = sqs.get_queue_attributes(QueueUrl=dead_letter.ref, AttributeNames=["All"])["Attributes"]
    assert dlq["MessageRetentionPeriod"] == "1209600"
    topic = sns.get_topic_attributes(TopicArn=stack.resources["OutcomeTopic"].ref)["Attributes"]
    assert topic["KmsMasterKeyId"] == "alias/aws/sns"
    assert stack.resources["OutcomeTopic"].attributes["TopicName"] == (
        f"{stack.stack_name}-OutcomeTopic"
    )
    # The function's event source, as the template's SQS event and samconfig.toml set it.
    source = stack.event_source
    assert source is not None
    assert (source.queue_url, source.queue_arn) == (request.ref, request.attributes["Arn"])
    assert source.batch_size == 10
    assert source.maximum_batching_window_seconds == 0
    assert source.report_batch_item_failures is True
    assert source.maximum_concurrency == 2  # samconfig.toml's default env, not the template's 5
    settings = stack.snapshot().event_source_settings()
    assert (settings.queue_url, settings.batch_size) == (request.ref, 10)


def test_fifo_stack_follows_the_parameters(make_stack: StackFactory) -> None:
    stack = make_stack(QueueType="fifo", FunctionTimeout="30", MaxReceiveCount="3")
    sqs = stack.client("sqs")
    request = stack.resources["RequestQueue"]
    assert request.ref.endswith(f"{stack.stack_name}-RequestQueue.fifo")
    attributes = sqs.get_queue_attributes(QueueUrl=request.ref, AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["FifoQueue"] == "true"
    assert attributes["ContentBasedDeduplication"] == "true"
    assert attributes["VisibilityTimeout"] == "200"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith("-DeadLetterQueue.fifo")
    assert int(redrive["maxReceiveCount"]) == 3


def test_state_is_json_and_reads_back(make_stack: StackFactory, emulator: Emulator) -> None:
    stack = make_stack()
    state = json.loads(json.dumps(stack.state()))
    assert StackState.from_json(state) == stack.snapshot()
    assert state["credentials"] == {
        "accessKeyId": emulator.access_key_id,
        "secretAccessKey": emulator.secret_access_key,
    }
    assert state["endpoints"]["kinesisVideo"] == emulator.control_endpoint
    assert state["endpoints"]["signaling"] == emulator.wss_endpoint
    assert state["caBundle"] == emulator.ca_cert_path
    assert (state["region"], state["accountId"]) == ("us-west-2", "123456789012")
    assert state["channels"] == [DEMO_ARN]
    assert state["eventSource"]["queueUrl"] == stack.resources["RequestQueue"].ref
    assert state["resources"]["OutcomeTopic"]["ref"] == stack.resources["OutcomeTopic"].ref
    assert state["parameters"]["StatusWaitSeconds"] == "0.2"


def test_a_bad_parameter_fails_before_anything_starts(moto_endpoint: str) -> None:
    with pytest.raises(ParameterError, match="QueueType") as raised:
        LocalStack(parameter_overrides={"QueueType": "lifo"}, moto_endpoint=moto_endpoint)
    assert raised.value.parameter == "QueueType"


def test_a_stack_of_its_own_starts_and_stops_its_servers() -> None:
    stack = LocalStack(stack_name="own").start()
    try:
        endpoint = stack.endpoints.moto
        port = int(endpoint.rsplit(":", 1)[1])
        topics = stack.client("sns").list_topics()["Topics"]
        assert {"TopicArn": stack.resources["OutcomeTopic"].ref} in topics
        assert stack.ca_bundle is not None
        assert Path(stack.ca_bundle).exists()
    finally:
        stack.stop()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=1),
    ):
        pass


def test_a_queue_subscribed_to_the_topic_receives_outcomes(make_stack: StackFactory) -> None:
    stack = make_stack()
    inbox = stack.subscribe_queue("OutcomeTopic")
    stack.client("sns").publish(
        TopicArn=inbox.topic_arn,
        Message=json.dumps({"status": "SENT"}),
        MessageAttributes={"status": {"DataType": "String", "StringValue": "SENT"}},
    )
    assert inbox.drain() == [{"message": {"status": "SENT"}, "attributes": {"status": "SENT"}}]


# The function's environment.


def test_environment_is_what_the_template_declares(
    make_stack: StackFactory, emulator: Emulator, moto_endpoint: str
) -> None:
    stack = make_stack()
    state = stack.snapshot()
    env = local_function(state, build_dir=None).environment
    assert env["OUTCOME_TOPIC_ARN"] == stack.resources["OutcomeTopic"].ref
    assert env["STATUS_WAIT_SECONDS"] == "0.2"  # the stack's override
    assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"  # samconfig.toml's LogLevel
    assert env["POWERTOOLS_SERVICE_NAME"] == "kvs-signaling-relay"  # from Globals
    assert env["PACING_MARGIN_SECONDS"] == "0.05"  # the template's default
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == f"{stack.stack_name}-SendSignalingFunction"
    assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "60"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"{stack.stack_name}-SendSignalingLogGroup"
    assert (env["AWS_REGION"], env["AWS_DEFAULT_REGION"]) == ("us-west-2", "us-west-2")
    assert env["AWS_ACCESS_KEY_ID"] == emulator.access_key_id
    assert env["AWS_SECRET_ACCESS_KEY"] == emulator.secret_access_key
    assert env["AWS_ENDPOINT_URL_KINESIS_VIDEO"] == emulator.control_endpoint
    for service in ("SNS", "SQS", "DYNAMODB"):
        assert env[f"AWS_ENDPOINT_URL_{service}"] == moto_endpoint
    assert env["AWS_CA_BUNDLE"] == emulator.ca_cert_path
    overridden = local_function(
        state,
        build_dir=None,
        parameter_overrides={"StatusWaitSeconds": "0.7", "MemorySize": "512"},
    )
    assert overridden.environment["STATUS_WAIT_SECONDS"] == "0.7"
    assert overridden.environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"


def test_source_artifact_points_at_the_source_tree(make_stack: StackFactory) -> None:
    function = local_function(make_stack().snapshot(), build_dir=None)
    assert function.artifact.code_dir == REPO / "functions" / "send_signaling"
    assert function.artifact.layer_dirs == (REPO / "layers" / "relay",)


@needs_build
def test_built_artifact_puts_the_layer_where_lambda_does(make_stack: StackFactory) -> None:
    function = local_function(make_stack().snapshot())
    assert function.artifact.code_dir == BUILD / "SendSignalingFunction"
    assert function.artifact.layer_dirs == (BUILD / "RelayLayer" / "python",)


PROBE = """
import os

import boto3
import kvs_relay


def handler(event, context):
    return {
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "kvs_relay": kvs_relay.__file__,
        "boto3": boto3.__file__,
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "event": event,
    }


def fail(event, context):
    raise ValueError("probe failed on purpose")
"""


@needs_build
def test_rie_runtime_gets_the_environment_and_the_built_layer(
    make_stack: StackFactory, start_rie: Callable[..., RieFunction], tmp_path: Path
) -> None:
    (tmp_path / "probe.py").write_text(textwrap.dedent(PROBE))
    function = local_function(make_stack().snapshot())
    artifact = FunctionArtifact(tmp_path, function.artifact.layer_dirs)
    runner = start_rie(function, handler="probe.handler", artifact=artifact)
    result = runner.invoke({"ping": 1})
    assert result.function_error is None
    seen = result.response
    for name, value in function.environment.items():
        if name not in ("LAMBDA_TASK_ROOT", "AWS_LAMBDA_LOG_STREAM_NAME"):
            assert seen["env"].get(name) == value, name
    assert "AWS_PROFILE" not in seen["env"]
    assert seen["env"]["PYTHONPATH"] == str(BUILD / "RelayLayer" / "python")
    assert seen["cwd"] == str(tmp_path)
    # The layer's packages, not this interpreter's: the layer is on the runtime's path.
    assert seen["kvs_relay"].startswith(str(BUILD / "RelayLayer" / "python"))
    assert seen["boto3"].startswith(str(BUILD / "RelayLayer" / "python"))
    assert seen["function_name"] == function.environment["AWS_LAMBDA_FUNCTION_NAME"]
    assert seen["memory_limit_in_mb"] == "256"  # awslambdaric passes the variable's text
    assert seen["log_group_name"] == function.environment["AWS_LAMBDA_LOG_GROUP_NAME"]
    assert 50_000 < seen["remaining_ms"] <= 60_000  # the template's Timeout, counting down
    assert seen["event"] == {"ping": 1}


@needs_build
def test_rie_reports_a_function_error(
    make_stack: StackFactory, start_rie: Callable[..., RieFunction], tmp_path: Path
) -> None:
    (tmp_path / "probe.py").write_text(textwrap.dedent(PROBE))
    function = local_function(make_stack().snapshot())
    artifact = FunctionArtifact(tmp_path, function.artifact.layer_dirs)
    result = start_rie(function, handler="probe.fail", artifact=artifact).invoke({})
    assert result.function_error == "ValueError"
    assert result.response["errorMessage"] == "probe failed on purpose"


# The events under RIE, from the build.


@needs_build
def test_rie_master_answer_cold_then_warm(
    make_stack: StackFactory,
    start_rie: Callable[..., RieFunction],
    emulator: Emulator,
    moto_endpoint: str,
) -> None:
    stack = make_stack()
    inbox = subscribe_outcomes(stack, moto_endpoint)
    runner = start_rie(local_function(stack.snapshot()))
    event = load_event("master-answer.json")

    cold = runner.invoke(event)
    assert cold.function_error is None
    assert cold.response == {"batchItemFailures": []}
    assert statuses(inbox, event) == ["SENT", "SENT"]
    # Both viewers are offline: the emulator holds each answer for its recipient.
    assert held_types(emulator, "viewer-1") == [MessageType.SDP_ANSWER]
    assert held_types(emulator, "viewer-2") == [MessageType.SDP_ANSWER]
    report = cold.report
    assert report.cold_start is True
    assert report.init_duration_ms is not None
    assert report.init_duration_ms > 0
    assert report.duration_ms is not None
    assert report.runtime_duration_ms is not None
    assert report.duration_ms >= report.runtime_duration_ms
    assert report.billed_duration_ms is not None
    assert report.billed_duration_ms >= report.duration_ms
    assert report.memory_size_mb == 256
    assert report.peak_rss_mb is not None
    assert report.peak_rss_mb > 20  # python, boto3, pydantic and Powertools loaded

    again = with_fresh_message_ids(event)
    warm = runner.invoke(again)
    assert warm.response == {"batchItemFailures": []}
    assert warm.report.cold_start is False
    assert warm.report.init_duration_ms is None
    assert warm.report.request_id != report.request_id
    assert statuses(inbox, again) == ["SENT", "SENT"]
    assert sent_actions(emulator, None) == [Action.SDP_ANSWER] * 4


def test_process_cpu_seconds_reads_a_process_cpu_clock() -> None:
    own = process_cpu_seconds(os.getpid())
    assert own is not None
    assert own > 0
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"]) as child:
        try:
            idle = process_cpu_seconds(child.pid)
            assert idle is not None
            assert idle < own
        finally:
            child.kill()


@needs_build
def test_rie_reports_the_runtime_cpu_time(
    make_stack: StackFactory, start_rie: Callable[..., RieFunction]
) -> None:
    runner = start_rie(local_function(make_stack().snapshot()))
    assert runner.runtime_pid is None  # RIE starts the runtime on the first invocation
    event = load_event("master-answer.json")
    cold = runner.invoke(event)
    assert runner.runtime_pid is not None
    warm = runner.invoke(with_fresh_message_ids(event))
    assert cold.report.cpu_ms is not None
    assert warm.report.cpu_ms is not None
    # The cold start's CPU includes the init (imports); a warm one is the handler's alone.
    assert cold.report.cpu_ms > warm.report.cpu_ms > 0


@needs_build
def test_rie_mixed_batch_sends_the_valid_and_rejects_the_rest(
    make_stack: StackFactory,
    start_rie: Callable[..., RieFunction],
    emulator: Emulator,
    moto_endpoint: str,
) -> None:
    stack = make_stack()
    inbox = subscribe_outcomes(stack, moto_endpoint)
    event = load_event("mixed-batch.json")
    result = start_rie(local_function(stack.snapshot())).invoke(event)
    assert result.response == {"batchItemFailures": []}  # REJECTED is settled, never retried
    assert statuses(inbox, event) == [
        "SENT",
        "REJECTED",
        "SENT",
        "REJECTED",
        "REJECTED",
        "REJECTED",
        "SENT",
    ]
    rejected = inbox.by_message_id()[event["Records"][1]["messageId"]][0]
    assert rejected["violations"][0]["field"] == "clientId"
    # Only the three valid records reached the service, each from its own sender.
    assert sent_actions(emulator, None) == [Action.SDP_ANSWER]
    assert sent_actions(emulator, "viewer-1") == [Action.ICE_CANDIDATE]
    assert sent_actions(emulator, "viewer-2") == [Action.SDP_OFFER]


@needs_build
def test_rie_fifo_batch_keeps_each_group_in_order(
    make_stack: StackFactory,
    start_rie: Callable[..., RieFunction],
    emulator: Emulator,
    moto_endpoint: str,
) -> None:
    stack = make_stack(QueueType="fifo")
    assert stack.resources["RequestQueue"].ref.endswith(".fifo")
    inbox = subscribe_outcomes(stack, moto_endpoint)
    event = load_event("fifo-batch.json")
    result = start_rie(local_function(stack.snapshot())).invoke(event)
    assert result.response == {"batchItemFailures": []}
    assert statuses(inbox, event) == ["SENT"] * 6
    groups = {o[0]["messageGroupId"] for o in inbox.by_message_id().values()}
    assert groups == {"demo.viewer-1", "demo.viewer-2"}
    ice = Action.ICE_CANDIDATE
    # demo.viewer-2: the master's answer to viewer-2, then its two candidates, in order.
    assert sent_actions(emulator, None) == [Action.SDP_ANSWER, ice, ice]
    # demo.viewer-1: viewer-1's offer, then its two candidates, in order.
    assert sent_actions(emulator, "viewer-1") == [Action.SDP_OFFER, ice, ice]
    # viewer-2 stays offline: the service holds what the master sent it.
    assert held_types(emulator, "viewer-2") == [
        MessageType.SDP_ANSWER,
        MessageType.ICE_CANDIDATE,
        MessageType.ICE_CANDIDATE,
    ]


# In-process.


def test_in_process_from_the_source_tree_then_restores_the_interpreter(
    make_stack: StackFactory, emulator: Emulator, moto_endpoint: str
) -> None:
    stack = make_stack()
    inbox = subscribe_outcomes(stack, moto_endpoint)
    environ_before = dict(os.environ)
    path_before = list(sys.path)
    kvs_relay_before = sys.modules.get("kvs_relay")
    event = load_event("master-answer.json")

    function = local_function(stack.snapshot(), build_dir=None)
    runner = InProcessFunction(
        function.config, function.artifact, function.environment, state=function.state
    )
    with runner:
        assert os.environ["OUTCOME_TOPIC_ARN"] == stack.resources["OutcomeTopic"].ref
        loaded = sys.modules["kvs_relay"].__file__
        assert loaded is not None
        assert loaded.startswith(str(REPO / "layers" / "relay"))
        cold = runner.invoke(event)
        warm = runner.invoke(with_fresh_message_ids(event))
    assert cold.response == {"batchItemFailures": []}
    assert cold.function_error is None
    assert statuses(inbox, event) == ["SENT", "SENT"]
    assert held_types(emulator, "viewer-1") == [MessageType.SDP_ANSWER]
    assert sent_actions(emulator, None) == [Action.SDP_ANSWER] * 4
    assert cold.report.cold_start is True
    assert cold.report.init_duration_ms is not None
    assert cold.report.cpu_ms is not None
    assert cold.report.cpu_ms > 0
    assert warm.report.cold_start is False
    assert warm.response == {"batchItemFailures": []}
    assert dict(os.environ) == environ_before
    assert sys.path == path_before
    assert sys.modules.get("kvs_relay") is kvs_relay_before


@needs_build
def test_in_process_from_the_build(make_stack: StackFactory, moto_endpoint: str) -> None:
    stack = make_stack()
    inbox = subscribe_outcomes(stack, moto_endpoint)
    event = load_event("mixed-batch.json")
    function = local_function(stack.snapshot())
    with InProcessFunction(
        function.config, function.artifact, function.environment, state=function.state
    ) as runner:
        loaded = sys.modules["kvs_relay"].__file__
        result = runner.invoke(event)
    assert loaded is not None
    assert loaded.startswith(str(BUILD / "RelayLayer" / "python"))
    assert result.response == {"batchItemFailures": []}
    assert statuses(inbox, event).count("SENT") == 3


def test_lambda_context_counts_the_timeout_down() -> None:
    now = [100.0]
    context = LambdaContext(
        function_name="f",
        memory_limit_in_mb="256",
        invoked_function_arn="arn:aws:lambda:us-west-2:123456789012:function:f",
        timeout_seconds=60,
        log_group_name="/aws/lambda/f",
        log_stream_name="stream",
        monotonic=lambda: now[0],
    )
    assert context.get_remaining_time_in_millis() == 60_000
    now[0] += 59.5
    assert context.get_remaining_time_in_millis() == 500
    now[0] += 5
    assert context.get_remaining_time_in_millis() == 0
    assert uuid.UUID(context.aws_request_id)


# Pieces of the CLI.


def test_rie_report_lines_are_parsed() -> None:
    lines = [
        "START RequestId: 2f45 Version: $LATEST",
        "25 Nov 2026 10:17:49,799 [INFO] (rapid) INIT REPORT(durationMs: 1783.842000)",
        "25 Nov 2026 10:17:49,904 [INFO] (rapid) INVOKE RTDONE(status: success, produced bytes:"
        " 0, duration: 105.019000ms)",
        "REPORT RequestId: 2f45\tInit Duration: 0.03 ms\tDuration: 1889.05 ms\t"
        "Billed Duration: 1890 ms\tMemory Size: 256 MB\tMax Memory Used: 256 MB\t",
    ]
    report = parse_rie_report(lines, 128, 61.5)
    assert report.request_id == "2f45"
    assert report.cold_start is True
    assert report.init_duration_ms == 1783.842  # RIE's INIT REPORT, not its REPORT field
    assert report.duration_ms == 1889.05
    assert report.billed_duration_ms == 1890
    assert report.runtime_duration_ms == 105.019
    assert (report.memory_size_mb, report.max_memory_used_mb) == (256, 256)
    assert report.peak_rss_mb == 61.5
    warm = parse_rie_report(
        ["START RequestId: b", "REPORT RequestId: b\tDuration: 1.43 ms\tBilled Duration: 2 ms"],
        256,
        None,
    )
    assert (warm.cold_start, warm.init_duration_ms, warm.duration_ms) == (False, None, 1.43)


def test_channels_named_by_the_events() -> None:
    assert channels_in_event(load_event("mixed-batch.json")) == [DEMO_ARN, "demo"]
    assert channels_in_event(load_event("master-answer.json")) == [DEMO_ARN]
    assert channels_in_event({"Records": [{"body": "not json"}]}) == []


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvs_local.invoke", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


@needs_build
def test_cli_runs_an_event_under_rie_on_a_stack_of_its_own() -> None:
    done = run_cli("-e", "events/master-answer.json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == {"batchItemFailures": []}
    reports = [
        json.loads(line.removeprefix("report: "))
        for line in done.stderr.splitlines()
        if line.startswith("report: ")
    ]
    assert [(r["mode"], r["cold_start"]) for r in reports] == [("rie", True)]
    event = load_event("master-answer.json")
    for message_id in message_ids(event):
        assert f"{message_id} SENT" in done.stderr


def test_cli_uses_a_running_stack_from_its_state(
    make_stack: StackFactory, moto_endpoint: str, emulator: Emulator, tmp_path: Path
) -> None:
    stack = make_stack()
    inbox = subscribe_outcomes(stack, moto_endpoint)
    state_file = tmp_path / "stack.json"
    state_file.write_text(json.dumps(stack.state()))
    done = run_cli(
        "-e",
        "events/master-answer.json",
        "--mode",
        "in-process",
        "--source",
        "--stack-state",
        str(state_file),
        "--parameter-overrides",
        "StatusWaitSeconds=0.1",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == {"batchItemFailures": []}
    assert statuses(inbox, load_event("master-answer.json")) == ["SENT", "SENT"]
    assert held_types(emulator, "viewer-2") == [MessageType.SDP_ANSWER]


def test_cli_names_a_bad_parameter() -> None:
    done = run_cli("-e", "events/master-answer.json", "--parameter-overrides", "QueueType=lifo")
    assert done.returncode == 2
    assert "parameter QueueType" in done.stderr
    assert done.stdout == ""
