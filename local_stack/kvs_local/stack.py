"""The local stack: template.yaml's queues and topics on a moto server, beside the KVS emulator.

``with LocalStack() as stack:`` starts a moto server and the emulator (``wss://`` with its own CA)
on free loopback ports, resolves the template's parameters (template defaults, samconfig.toml's
``parameter_overrides`` for the config env, then the caller's overrides) and creates every
``AWS::SQS::Queue`` and ``AWS::SNS::Topic`` whose Condition holds, in dependency order, with the
properties the template gives them. Names are ``<stack>-<LogicalId>`` (``.fifo`` added for FIFO).

:meth:`LocalStack.state` is everything a function, a test or a user's own peers need to reach it
(endpoints, credentials, region, account, resources, the function's event source); the same
:class:`StackState` read back from JSON lets ``python -m kvs_local.invoke --stack-state`` use a
stack that runs elsewhere.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import boto3
from moto.server import ThreadedMotoServer

from kvs_local.emulator import Emulator, EmulatorConfig
from kvs_local.sqs_event_source import EventSourceSettings
from kvs_local.template import (
    IntrinsicResolver,
    ParameterValue,
    PseudoParameters,
    ResourceAttributes,
    TemplateError,
    cfn_text,
    creation_order,
    derived_resource_attributes,
    function_config,
    load_template,
    partition_of,
    physical_name,
    read_samconfig,
    resolve_parameters,
)

log = logging.getLogger(__name__)

REPO: Final = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE: Final = REPO / "template.yaml"
DEFAULT_FUNCTION: Final = "SendSignalingFunction"
DEFAULT_REGION: Final = "us-west-2"
SQS_QUEUE: Final = "AWS::SQS::Queue"
SNS_TOPIC: Final = "AWS::SNS::Topic"
DYNAMODB_TABLE: Final = "AWS::DynamoDB::Table"

# CloudFormation property -> SQS queue attribute (the same names), and the ones SQS takes as JSON.
_SQS_ATTRIBUTES: Final = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)
_SNS_ATTRIBUTES: Final = (
    "ArchivePolicy",
    "ContentBasedDeduplication",
    "DataProtectionPolicy",
    "DisplayName",
    "FifoTopic",
    "KmsMasterKeyId",
    "SignatureVersion",
    "TracingConfig",
)
_NAME_PROPERTIES: Final = {
    SQS_QUEUE: "QueueName",
    SNS_TOPIC: "TopicName",
    DYNAMODB_TABLE: "TableName",
}
_CHANNEL_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:kinesisvideo:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"channel/(?P<name>[a-zA-Z0-9_.-]{1,256})/(?P<creation>[0-9]+)"
)


def _attribute_text(value: Any) -> str:
    # SQS and SNS take every attribute as a string; policies as JSON documents.
    return json.dumps(value) if isinstance(value, dict | list) else cfn_text(value)


@dataclass(frozen=True, slots=True)
class StackEndpoints:
    """Where the local stack's services listen (moto serves SQS, SNS and DynamoDB alike)."""

    moto: str
    kinesis_video: str
    signaling: str | None = None
    emulator_admin: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "moto": self.moto,
            "sqs": self.moto,
            "sns": self.moto,
            "dynamodb": self.moto,
            "kinesisVideo": self.kinesis_video,
            "signaling": self.signaling,
            "emulatorAdmin": self.emulator_admin,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StackEndpoints:
        return cls(
            moto=str(data["moto"]),
            kinesis_video=str(data["kinesisVideo"]),
            signaling=data.get("signaling"),
            emulator_admin=data.get("emulatorAdmin"),
        )


@dataclass(frozen=True, slots=True)
class EventSourceState:
    """The function's SQS event source mapping, as the template declares it."""

    function: str
    event: str
    queue_logical_id: str
    queue_url: str
    queue_arn: str
    batch_size: int
    maximum_batching_window_seconds: int
    report_batch_item_failures: bool
    maximum_concurrency: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "event": self.event,
            "queueLogicalId": self.queue_logical_id,
            "queueUrl": self.queue_url,
            "queueArn": self.queue_arn,
            "batchSize": self.batch_size,
            "maximumBatchingWindowInSeconds": self.maximum_batching_window_seconds,
            "reportBatchItemFailures": self.report_batch_item_failures,
            "maximumConcurrency": self.maximum_concurrency,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EventSourceState:
        return cls(
            function=str(data["function"]),
            event=str(data["event"]),
            queue_logical_id=str(data["queueLogicalId"]),
            queue_url=str(data["queueUrl"]),
            queue_arn=str(data["queueArn"]),
            batch_size=int(data["batchSize"]),
            maximum_batching_window_seconds=int(data["maximumBatchingWindowInSeconds"]),
            report_batch_item_failures=bool(data["reportBatchItemFailures"]),
            maximum_concurrency=data.get("maximumConcurrency"),
        )


@dataclass(frozen=True)
class StackState:
    """A running local stack, as JSON can carry it (:meth:`LocalStack.state`)."""

    stack_name: str
    region: str
    account_id: str
    access_key_id: str
    secret_access_key: str
    endpoints: StackEndpoints
    ca_bundle: str | None
    template: str
    config_env: str
    parameter_overrides: dict[str, str]
    parameters: dict[str, ParameterValue]
    resources: dict[str, ResourceAttributes]
    channels: tuple[str, ...] = ()
    event_source: EventSourceState | None = None

    @property
    def pseudo(self) -> PseudoParameters:
        return PseudoParameters(self.region, self.account_id, self.stack_name)

    def resolver(
        self, template: Mapping[str, Any], overrides: Mapping[str, str] | None = None
    ) -> IntrinsicResolver:
        """A resolver for ``template`` against this stack: its parameter overrides plus
        ``overrides`` (later wins), its resources for Ref and Fn::GetAtt."""
        parameters = resolve_parameters(template, {**self.parameter_overrides, **(overrides or {})})
        resolver = IntrinsicResolver(template, parameters, self.pseudo, self.resources)
        resolver.check_rules()
        return resolver

    def service_environment(self) -> dict[str, str]:
        """The variables that point boto3 (and the relay) at this stack, nothing else."""
        env = {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_ENDPOINT_URL_KINESIS_VIDEO": self.endpoints.kinesis_video,
            "AWS_ENDPOINT_URL_SNS": self.endpoints.moto,
            "AWS_ENDPOINT_URL_SQS": self.endpoints.moto,
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoints.moto,
        }
        if self.ca_bundle:
            env["AWS_CA_BUNDLE"] = self.ca_bundle
        return env

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on this stack (its endpoint, credentials, CA)."""
        endpoint = (
            self.endpoints.kinesis_video if service == "kinesisvideo" else self.endpoints.moto
        )
        return boto3.session.Session().client(  # type: ignore[call-overload]
            service,
            region_name=self.region,
            endpoint_url=endpoint,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            verify=self.ca_bundle if service == "kinesisvideo" and self.ca_bundle else None,
        )

    def event_source_settings(self) -> EventSourceSettings:
        """The event source as ``SqsEventSourceRunner`` (kvs_local.sqs_event_source) takes it."""
        if self.event_source is None:
            raise TemplateError("the stack's function has no SQS event")
        source = self.event_source
        return EventSourceSettings(
            queue_url=source.queue_url,
            queue_arn=source.queue_arn,
            region=self.region,
            batch_size=source.batch_size,
            batching_window_seconds=float(source.maximum_batching_window_seconds),
            report_batch_item_failures=source.report_batch_item_failures,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable; :meth:`from_json` reads it back."""
        return {
            "stackName": self.stack_name,
            "region": self.region,
            "accountId": self.account_id,
            "partition": partition_of(self.region),
            "credentials": {
                "accessKeyId": self.access_key_id,
                "secretAccessKey": self.secret_access_key,
            },
            "endpoints": self.endpoints.to_json(),
            "caBundle": self.ca_bundle,
            "template": self.template,
            "configEnv": self.config_env,
            "parameterOverrides": dict(self.parameter_overrides),
            "parameters": dict(self.parameters),
            "resources": {name: item.to_json() for name, item in self.resources.items()},
            "channels": list(self.channels),
            "eventSource": None if self.event_source is None else self.event_source.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StackState:
        """Read :meth:`to_json`'s output; raises TemplateError naming a missing key."""
        try:
            source = data.get("eventSource")
            return cls(
                stack_name=str(data["stackName"]),
                region=str(data["region"]),
                account_id=str(data["accountId"]),
                access_key_id=str(data["credentials"]["accessKeyId"]),
                secret_access_key=str(data["credentials"]["secretAccessKey"]),
                endpoints=StackEndpoints.from_json(data["endpoints"]),
                ca_bundle=data.get("caBundle"),
                template=str(data["template"]),
                config_env=str(data.get("configEnv", "default")),
                parameter_overrides={
                    str(k): str(v) for k, v in (data.get("parameterOverrides") or {}).items()
                },
                parameters=dict(data.get("parameters") or {}),
                resources={
                    name: ResourceAttributes.from_json(item)
                    for name, item in (data.get("resources") or {}).items()
                },
                channels=tuple(data.get("channels") or ()),
                event_source=None if source is None else EventSourceState.from_json(source),
            )
        except KeyError as missing:
            raise TemplateError(f"stack state: {missing.args[0]} is missing") from None

    @classmethod
    def read(cls, path: str | Path) -> StackState:
        """:meth:`from_json` of a JSON file."""
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass
class TopicSubscriptionQueue:
    """An SQS queue subscribed to a topic: what the topic's subscribers would receive."""

    sqs: Any
    queue_url: str
    queue_arn: str
    topic_arn: str
    subscription_arn: str
    received: list[dict[str, Any]] = field(default_factory=list)

    def drain(self) -> list[dict[str, Any]]:
        """Every notification delivered so far, oldest first: the SNS envelope's ``Message``
        (parsed when it is JSON) under ``message``, its message attributes under
        ``attributes``."""
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return self.received
            for message in messages:
                envelope = json.loads(message["Body"])
                text = envelope.get("Message", "")
                try:
                    body: Any = json.loads(text)
                except ValueError:
                    body = text
                self.received.append(
                    {
                        "message": body,
                        "attributes": {
                            name: value.get("Value")
                            for name, value in (envelope.get("MessageAttributes") or {}).items()
                        },
                    }
                )
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


class LocalStack:
    """template.yaml's queues and topics on a moto server, and the KVS signaling emulator.

    Pass ``moto_endpoint`` and/or ``emulator`` to use servers that already run (a test session's);
    they are then left running, and only what this stack created on them is removed by
    :meth:`stop`. ``channels`` (names or channel ARNs) are created on the emulator at start.

    Parameters come from the template's defaults, then samconfig.toml's ``parameter_overrides``
    for ``config_env``, then ``parameter_overrides``. ChannelArns, which has no default, gets
    ``arn:<partition>:kinesisvideo:<region>:<account>:channel/*/*`` (every channel of the
    emulator's account and region) when nothing else names it.
    """

    def __init__(
        self,
        template: str | Path = DEFAULT_TEMPLATE,
        *,
        function: str = DEFAULT_FUNCTION,
        config_env: str = "default",
        samconfig: str | Path | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        stack_name: str | None = None,
        channels: Iterable[str] = (),
        moto_endpoint: str | None = None,
        emulator: Emulator | None = None,
    ) -> None:
        self.template_path = Path(template).resolve()
        self.template = load_template(self.template_path)
        self.function = function
        self.config_env = config_env
        samconfig_path = (
            Path(samconfig) if samconfig else self.template_path.parent / "samconfig.toml"
        )
        self.samconfig = read_samconfig(samconfig_path, config_env)
        self.stack_name = stack_name or self.samconfig.stack_name or "kvs-local"
        self.region = (
            emulator.region if emulator is not None else self.samconfig.region or DEFAULT_REGION
        )
        self.account_id = (
            emulator.config.account_id if emulator is not None else EmulatorConfig().account_id
        )
        self.parameter_overrides = {
            **self._local_parameter_defaults(),
            **self.samconfig.parameter_overrides,
            **dict(parameter_overrides or {}),
        }
        # Resolved before anything starts, so a bad parameter fails fast and names itself.
        parameters = resolve_parameters(self.template, self.parameter_overrides)
        pseudo = PseudoParameters(self.region, self.account_id, self.stack_name)
        self.resolver = IntrinsicResolver(
            self.template, parameters, pseudo, derived_resource_attributes(self.template, pseudo)
        )
        self.resolver.check_rules()
        self._wanted_channels = list(channels)
        self._given_moto = moto_endpoint
        self._given_emulator = emulator
        self._moto_server: ThreadedMotoServer | None = None
        self._own_emulator: Emulator | None = None
        self._moto_endpoint: str | None = moto_endpoint
        self._created: list[tuple[str, str]] = []  # (type, Ref) to remove from shared servers
        self._created_channels: list[str] = []
        self._channels: list[str] = []
        self._event_source: EventSourceState | None = None
        self._started = False

    def _local_parameter_defaults(self) -> dict[str, str]:
        declared = self.template.get("Parameters") or {}
        if "ChannelArns" in declared and "Default" not in declared["ChannelArns"]:
            partition = partition_of(self.region)
            return {
                "ChannelArns": f"arn:{partition}:kinesisvideo:{self.region}:{self.account_id}"
                ":channel/*/*"
            }
        return {}

    # Lifecycle.

    def start(self) -> LocalStack:
        """Start the servers this stack owns and create the template's queues and topics."""
        if self._started:
            return self
        try:
            if self._given_emulator is None:
                self._own_emulator = Emulator(
                    EmulatorConfig(wss_port=0, endpoint_scheme="wss", region=self.region)
                ).start()
            if self._given_moto is None:
                self._moto_server = ThreadedMotoServer(
                    ip_address="127.0.0.1", port=0, verbose=False
                )
                self._moto_server.start()
                host, port = self._moto_server.get_host_and_port()
                self._moto_endpoint = f"http://{host}:{port}"
            self._started = True
            self._create_resources()
            for channel in self._wanted_channels:
                self.ensure_channel(channel)
            self._event_source = self._find_event_source()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Remove what this stack created; stop the servers it started."""
        # Removed from servers this stack owns too: moto servers in one process share one
        # backend, so a table left behind would collide with the next stack's.
        if self._moto_endpoint is not None and self._created:
            self._delete_created_resources()
        self._created.clear()
        if self._given_emulator is not None:
            for arn in self._created_channels:
                self._given_emulator.delete_channel(arn)
        self._created_channels.clear()
        if self._moto_server is not None:
            self._moto_server.stop()
            self._moto_server = None
            self._moto_endpoint = None
        if self._own_emulator is not None:
            self._own_emulator.stop()
            self._own_emulator = None
        self._started = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # What it exposes.

    @property
    def emulator(self) -> Emulator:
        """The KVS signaling emulator (the one passed in, or the one this stack started)."""
        emulator = self._given_emulator or self._own_emulator
        if emulator is None:
            raise RuntimeError("the local stack is not running (use start() or a with block)")
        return emulator

    @property
    def endpoints(self) -> StackEndpoints:
        if self._moto_endpoint is None:
            raise RuntimeError("the local stack is not running (use start() or a with block)")
        return StackEndpoints(
            moto=self._moto_endpoint,
            kinesis_video=self.emulator.control_endpoint,
            signaling=self.emulator.wss_endpoint or self.emulator.ws_endpoint,
            emulator_admin=self.emulator.admin_endpoint,
        )

    @property
    def access_key_id(self) -> str:
        """The emulator's key: the function uses it for every service (moto takes any key)."""
        return self.emulator.access_key_id

    @property
    def secret_access_key(self) -> str:
        return self.emulator.secret_access_key

    @property
    def ca_bundle(self) -> str | None:
        """The emulator's CA (trusted for its https:// and wss:// listeners)."""
        return self.emulator.ca_cert_path

    @property
    def parameters(self) -> dict[str, ParameterValue]:
        return self.resolver.parameters

    @property
    def resources(self) -> dict[str, ResourceAttributes]:
        """What Ref and Fn::GetAtt give for each resource (created or derived locally)."""
        return dict(self.resolver.resources)

    @property
    def channels(self) -> list[str]:
        """The ARNs of the channels created (or found) through this stack."""
        return list(self._channels)

    @property
    def event_source(self) -> EventSourceState | None:
        """The function's SQS event source (None when it has none)."""
        return self._event_source

    def state(self) -> dict[str, Any]:
        """JSON-serialisable: endpoints, credentials, region, account, parameters, resources,
        channels and the function's event source (:class:`StackState`)."""
        return self.snapshot().to_json()

    def snapshot(self) -> StackState:
        """The running stack as a :class:`StackState`."""
        return StackState(
            stack_name=self.stack_name,
            region=self.region,
            account_id=self.account_id,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            endpoints=self.endpoints,
            ca_bundle=self.ca_bundle,
            template=str(self.template_path),
            config_env=self.config_env,
            parameter_overrides=dict(self.parameter_overrides),
            parameters=dict(self.parameters),
            resources=self.resources,
            channels=tuple(self._channels),
            event_source=self._event_source,
        )

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on this stack."""
        return self.snapshot().client(service)

    # Channels.

    def ensure_channel(self, name_or_arn: str) -> str:
        """The ARN of a channel named so (or with exactly that ARN), created when missing."""
        emulator = self.emulator
        match = _CHANNEL_ARN.fullmatch(name_or_arn)
        if match is not None:
            name, region, account = match["name"], match["region"], match["account"]
            creation_id: int | None = int(match["creation"])
        else:
            name, region, account, creation_id = name_or_arn, self.region, self.account_id, None
        existing = emulator.registry.find(account, region, name)
        if existing is not None:
            arn = existing.arn
        else:
            arn = emulator.create_channel(
                name, region=region, account_id=account, creation_id=creation_id
            )
            self._created_channels.append(arn)
        if arn not in self._channels:
            self._channels.append(arn)
        return arn

    # Topics.

    def subscribe_queue(self, topic: str) -> TopicSubscriptionQueue:
        """A new SQS queue subscribed to the stack's topic ``topic`` (a logical id)."""
        found = self.resolver.resources.get(topic)
        if found is None or found.type != SNS_TOPIC:
            raise TemplateError(f"subscribe_queue: the local stack has no SNS topic {topic}")
        sqs = self.client("sqs")
        name = f"{self.stack_name}-{topic}-inbox-{uuid.uuid4().hex[:8]}"[-80:]
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        subscription = self.client("sns").subscribe(
            TopicArn=found.ref, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True
        )["SubscriptionArn"]
        self._created.append((SQS_QUEUE, url))
        return TopicSubscriptionQueue(sqs, url, arn, found.ref, subscription)

    # Resources.

    def _create_resources(self) -> None:
        resources = self.template.get("Resources") or {}
        wanted = [
            logical_id
            for logical_id, body in resources.items()
            if body.get("Type") in (SQS_QUEUE, SNS_TOPIC, DYNAMODB_TABLE)
            and self.resolver.resource_enabled(logical_id)
        ]
        for logical_id in creation_order(self.template, wanted):
            body = resources[logical_id]
            properties = self.resolver.resolve(body.get("Properties") or {})
            if body["Type"] == SQS_QUEUE:
                created = self._create_queue(logical_id, properties)
            elif body["Type"] == DYNAMODB_TABLE:
                created = self._create_table(logical_id, properties)
            else:
                created = self._create_topic(logical_id, properties)
            self.resolver.resources[logical_id] = created
            self._created.append((created.type, created.ref))

    def _name(self, kind: str, logical_id: str, properties: Mapping[str, Any], fifo: bool) -> str:
        given = properties.get(_NAME_PROPERTIES[kind])
        if given:
            return str(given)
        suffix = ".fifo" if fifo else ""
        return physical_name(self.stack_name, logical_id)[: 80 - len(suffix)] + suffix

    def _skipped(self, logical_id: str, properties: Mapping[str, Any], used: Iterable[str]) -> None:
        skipped = sorted(set(properties) - set(used))
        if skipped:
            log.info("%s: not applied locally: %s", logical_id, ", ".join(skipped))

    def _create_queue(self, logical_id: str, properties: Mapping[str, Any]) -> ResourceAttributes:
        fifo = cfn_text(properties.get("FifoQueue", False)) == "true"
        name = self._name(SQS_QUEUE, logical_id, properties, fifo)
        attributes = {
            key: _attribute_text(properties[key]) for key in _SQS_ATTRIBUTES if key in properties
        }
        tags = {str(t["Key"]): cfn_text(t["Value"]) for t in properties.get("Tags") or []}
        self._skipped(logical_id, properties, (*_SQS_ATTRIBUTES, "QueueName", "Tags"))
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return ResourceAttributes(SQS_QUEUE, url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _create_topic(self, logical_id: str, properties: Mapping[str, Any]) -> ResourceAttributes:
        fifo = cfn_text(properties.get("FifoTopic", False)) == "true"
        name = self._name(SNS_TOPIC, logical_id, properties, fifo)
        attributes = {
            key: _attribute_text(properties[key]) for key in _SNS_ATTRIBUTES if key in properties
        }
        tags = [
            {"Key": str(t["Key"]), "Value": cfn_text(t["Value"])}
            for t in properties.get("Tags") or []
        ]
        self._skipped(logical_id, properties, (*_SNS_ATTRIBUTES, "TopicName", "Tags"))
        arn = self.client("sns").create_topic(Name=name, Attributes=attributes, Tags=tags)[
            "TopicArn"
        ]
        return ResourceAttributes(SNS_TOPIC, arn, {"TopicArn": arn, "TopicName": name})

    def _create_table(self, logical_id: str, properties: Mapping[str, Any]) -> ResourceAttributes:
        name = self._name(DYNAMODB_TABLE, logical_id, properties, False)
        used = (
            "TableName",
            "AttributeDefinitions",
            "KeySchema",
            "BillingMode",
            "TimeToLiveSpecification",
            "SSESpecification",
        )
        self._skipped(logical_id, properties, used)
        dynamodb = self.client("dynamodb")
        table = dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=properties["AttributeDefinitions"],
            KeySchema=properties["KeySchema"],
            BillingMode=str(properties.get("BillingMode", "PAY_PER_REQUEST")),
        )["TableDescription"]
        ttl = properties.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "AttributeName": str(ttl["AttributeName"]),
                    "Enabled": cfn_text(ttl.get("Enabled", True)) == "true",
                },
            )
        arn = str(table["TableArn"])
        return ResourceAttributes(DYNAMODB_TABLE, name, {"Arn": arn})

    def _delete_created_resources(self) -> None:
        sqs, sns = self.client("sqs"), self.client("sns")
        dynamodb = self.client("dynamodb")
        for kind, ref in reversed(self._created):
            try:
                if kind == SQS_QUEUE:
                    sqs.delete_queue(QueueUrl=ref)
                elif kind == DYNAMODB_TABLE:
                    dynamodb.delete_table(TableName=ref)
                else:
                    sns.delete_topic(TopicArn=ref)
            except Exception:  # a shared server may be gone already; nothing left to clean
                log.debug("could not delete %s %s", kind, ref, exc_info=True)

    def _find_event_source(self) -> EventSourceState | None:
        config = function_config(self.template, self.resolver, self.function)
        for event in config.sqs_events:
            for logical_id, resource in self.resolver.resources.items():
                if resource.type == SQS_QUEUE and resource.attributes.get("Arn") == event.queue_arn:
                    return EventSourceState(
                        function=self.function,
                        event=event.name,
                        queue_logical_id=logical_id,
                        queue_url=resource.ref,
                        queue_arn=event.queue_arn,
                        batch_size=event.batch_size,
                        maximum_batching_window_seconds=event.maximum_batching_window_seconds,
                        report_batch_item_failures=event.report_batch_item_failures,
                        maximum_concurrency=event.maximum_concurrency,
                    )
        return None
