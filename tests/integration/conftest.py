"""Fixtures for the relay against real local servers: the KVS emulator and a moto server.

Everything listens on 127.0.0.1 on free ports. The handler runs in-process with the environment
the SAM template sets, its AWS clients pointed at the local stack through boto3's standard
``AWS_ENDPOINT_URL_<SERVICE>`` variables.
"""

from __future__ import annotations

import base64
import importlib
import json
import socket
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import websocket
from botocore.credentials import ReadOnlyCredentials
from moto.server import ThreadedMotoServer

from kvs_local.emulator import Emulator
from kvs_local.sqs_event_source import EventSourceSettings, lambda_sqs_record
from kvs_relay.presign import presign_connect_url
from kvs_relay.protocol import ServerEvent, parse_server_event

REGION = "us-west-2"
REPO = Path(__file__).resolve().parents[2]
FUNCTION_DIR = REPO / "functions" / "send_signaling"


def payload_of(body: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()


def moto_client(service: str, endpoint: str) -> Any:
    """A test's own boto3 client for the moto server (its own fixed test credentials)."""
    return boto3.session.Session().client(  # type: ignore[call-overload]
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="AKIDMOTOTEST",
        aws_secret_access_key="moto-test-secret",
    )


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class OutcomeInbox:
    """An SQS queue subscribed to the outcome topic: what subscribers would receive."""

    sqs: Any
    queue_url: str
    topic_arn: str
    seen: list[dict[str, Any]] = field(default_factory=list)

    def drain(self) -> list[dict[str, Any]]:
        """Every outcome delivered so far (the SNS envelope's Message, plus its attributes)."""
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not got:
                return self.seen
            for message in got:
                envelope = json.loads(message["Body"])
                outcome = json.loads(envelope["Message"])
                outcome["_attributes"] = {
                    name: value["Value"]
                    for name, value in envelope.get("MessageAttributes", {}).items()
                }
                self.seen.append(outcome)
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def by_message_id(self) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for outcome in self.drain():
            grouped.setdefault(outcome["messageId"], []).append(outcome)
        return grouped


@pytest.fixture
def outcome_inbox(moto_endpoint: str) -> OutcomeInbox:
    sns = moto_client("sns", moto_endpoint)
    sqs = moto_client("sqs", moto_endpoint)
    suffix = uuid.uuid4().hex[:8]
    topic_arn = sns.create_topic(Name=f"outcomes-{suffix}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"outcomes-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return OutcomeInbox(sqs=sqs, queue_url=queue_url, topic_arn=topic_arn)


@dataclass
class RequestQueue:
    """A real SQS queue for requests: events are built from what SQS actually returns."""

    sqs: Any
    queue_url: str
    queue_arn: str
    fifo: bool

    def event(
        self, bodies: Sequence[dict[str, Any] | str], groups: list[str] | None = None
    ) -> dict[str, Any]:
        """Send the bodies, receive them back, and shape them as Lambda's SQS event."""
        for index, body in enumerate(bodies):
            text = body if isinstance(body, str) else json.dumps(body)
            extra: dict[str, Any] = {}
            if self.fifo:
                extra = {
                    "MessageGroupId": (groups or ["g"] * len(bodies))[index],
                    "MessageDeduplicationId": uuid.uuid4().hex,
                }
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=text, **extra)
        messages: list[dict[str, Any]] = []
        while len(messages) < len(bodies):
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=1,
            ).get("Messages", [])
            assert got, "SQS returned fewer messages than were sent"
            messages += got
        settings = EventSourceSettings(
            queue_url=self.queue_url, queue_arn=self.queue_arn, region=REGION
        )
        return {"Records": [lambda_sqs_record(m, settings) for m in messages]}


def _request_queue(moto_endpoint: str, fifo: bool) -> RequestQueue:
    sqs = moto_client("sqs", moto_endpoint)
    name = f"requests-{uuid.uuid4().hex[:8]}" + (".fifo" if fifo else "")
    attributes = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return RequestQueue(sqs=sqs, queue_url=url, queue_arn=arn, fifo=fifo)


@pytest.fixture
def request_queue(moto_endpoint: str) -> RequestQueue:
    return _request_queue(moto_endpoint, fifo=False)


@pytest.fixture
def fifo_request_queue(moto_endpoint: str) -> RequestQueue:
    return _request_queue(moto_endpoint, fifo=True)


@dataclass(frozen=True)
class LambdaContextStub:
    """The attributes Powertools reads from Lambda's context object."""

    function_name: str = "SendSignalingFunction"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-west-2:123456789012:function:SendSignaling"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture(scope="session")
def emulator(kvs_emulator: Emulator) -> Emulator:
    """The session's emulator (wss:// with its own CA), from kvs_local's pytest plugin."""
    return kvs_emulator


Handler = Callable[..., dict[str, Any]]


def _set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, str]:
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _common_env(moto_endpoint: str, outcome_inbox: OutcomeInbox) -> dict[str, str]:
    return {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_SNS": moto_endpoint,
        "OUTCOME_TOPIC_ARN": outcome_inbox.topic_arn,
        "PUBLISH_SENT_OUTCOMES": "true",
        # Short, so each test's status window costs little; the default is measured (docs).
        "STATUS_WAIT_SECONDS": "0.5",
        "POWERTOOLS_SERVICE_NAME": "kvs-signaling-relay",
        "POWERTOOLS_METRICS_NAMESPACE": "KvsSignalingRelayTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def closed_loopback_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def offline_env(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, outcome_inbox: OutcomeInbox
) -> dict[str, str]:
    """The function's environment with no KVS at all: any KVS call would fail to connect."""
    env = _common_env(moto_endpoint, outcome_inbox)
    env["AWS_ACCESS_KEY_ID"] = "AKIDTESTONLY"
    env["AWS_SECRET_ACCESS_KEY"] = "test-secret"
    env["AWS_ENDPOINT_URL_KINESIS_VIDEO"] = f"http://127.0.0.1:{closed_loopback_port()}"
    return _set_env(monkeypatch, env)


@pytest.fixture
def relay_env(
    monkeypatch: pytest.MonkeyPatch,
    emulator: Emulator,
    moto_endpoint: str,
    outcome_inbox: OutcomeInbox,
) -> dict[str, str]:
    """The function's environment as the template sets it, pointed at the local stack."""
    env = _common_env(moto_endpoint, outcome_inbox)
    env["AWS_ACCESS_KEY_ID"] = emulator.access_key_id
    env["AWS_SECRET_ACCESS_KEY"] = emulator.secret_access_key
    env["AWS_ENDPOINT_URL_KINESIS_VIDEO"] = emulator.control_endpoint
    if emulator.ca_cert_path:
        env["AWS_CA_BUNDLE"] = emulator.ca_cert_path
    return _set_env(monkeypatch, env)


def load_handler(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """functions/send_signaling/app.py, imported fresh (a cold start) with the current env."""
    monkeypatch.syspath_prepend(str(FUNCTION_DIR))
    sys.modules.pop("app", None)
    return importlib.import_module("app")


@pytest.fixture
def handler_module(
    relay_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    yield load_handler(monkeypatch)
    sys.modules.pop("app", None)


@pytest.fixture
def invoke(handler_module: ModuleType) -> Handler:
    def call(event: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = handler_module.lambda_handler(event, LambdaContextStub())
        return response

    return call


@pytest.fixture
def invoke_offline(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Handler]:
    module = load_handler(monkeypatch)

    def call(event: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = module.lambda_handler(event, LambdaContextStub())
        return response

    yield call
    sys.modules.pop("app", None)


class Peer:
    """A signaling client connected to the emulator with websocket-client (a real peer)."""

    def __init__(self, emulator: Emulator, channel_arn: str, client_id: str | None) -> None:
        endpoint = emulator.wss_endpoint or emulator.ws_endpoint
        credentials = ReadOnlyCredentials(emulator.access_key_id, emulator.secret_access_key, None)
        url = presign_connect_url(endpoint, channel_arn, client_id, credentials, REGION)
        sslopt = {"ca_certs": emulator.ca_cert_path} if emulator.ca_cert_path else None
        self.ws = websocket.create_connection(url, timeout=5, sslopt=sslopt)
        self.events: list[ServerEvent] = []

    def receive_all(self, quiet_seconds: float = 0.3) -> list[ServerEvent]:
        """Everything received until the connection stays quiet for ``quiet_seconds``."""
        self.ws.settimeout(quiet_seconds)
        while True:
            try:
                frame = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                return self.events
            if frame:
                self.events.append(parse_server_event(frame))

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def connect_peer(emulator: Emulator) -> Iterator[Callable[[str, str | None], Peer]]:
    peers: list[Peer] = []

    def connect(channel_arn: str, client_id: str | None) -> Peer:
        peer = Peer(emulator, channel_arn, client_id)
        peers.append(peer)
        return peer

    yield connect
    for peer in peers:
        peer.close()


@pytest.fixture
def channel(emulator: Emulator) -> str:
    """A fresh channel per test (short TTL: held messages expire quickly)."""
    return str(emulator.create_channel(f"relay-{uuid.uuid4().hex[:10]}", message_ttl_seconds=60))
