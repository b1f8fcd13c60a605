"""kvs_local.template: CloudFormation YAML, parameters, samconfig.toml, intrinsics, SAM Globals.

On template.yaml itself (what the local invoke and the local stack read) and on small inline
templates for each intrinsic function and each error.
"""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kvs_local.template import (
    NO_VALUE,
    IntrinsicResolver,
    LayerReference,
    ParameterError,
    PseudoParameters,
    ResourceAttributes,
    SamConfig,
    TemplateError,
    creation_order,
    derived_resource_attributes,
    function_config,
    load_template,
    merge_globals,
    parse_parameter_overrides,
    parse_template,
    read_samconfig,
    resolve_parameters,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
SAMCONFIG = REPO / "samconfig.toml"
DEMO_ARN = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1234567890123"
PSEUDO = PseudoParameters("us-west-2", "123456789012", "local")
TOPIC_ARN = "arn:aws:sns:us-west-2:123456789012:local-OutcomeTopic"
QUEUE_ARN = "arn:aws:sqs:us-west-2:123456789012:local-RequestQueue"


def yaml_template(text: str) -> dict[str, Any]:
    return parse_template(textwrap.dedent(text))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def local_resources(template: dict[str, Any]) -> dict[str, ResourceAttributes]:
    """What the local stack would give template.yaml's queues and topic."""
    resources = derived_resource_attributes(template, PSEUDO)
    resources["OutcomeTopic"] = ResourceAttributes(
        "AWS::SNS::Topic", TOPIC_ARN, {"TopicArn": TOPIC_ARN, "TopicName": "local-OutcomeTopic"}
    )
    resources["RequestQueue"] = ResourceAttributes(
        "AWS::SQS::Queue", "http://127.0.0.1:1/123456789012/local-RequestQueue", {"Arn": QUEUE_ARN}
    )
    resources["DeadLetterQueue"] = ResourceAttributes(
        "AWS::SQS::Queue",
        "http://127.0.0.1:1/123456789012/local-DeadLetterQueue",
        {"Arn": QUEUE_ARN.replace("Request", "DeadLetter"), "QueueName": "local-DeadLetterQueue"},
    )
    resources["IdempotencyTable"] = ResourceAttributes(
        "AWS::DynamoDB::Table",
        "local-IdempotencyTable",
        {"Arn": "arn:aws:dynamodb:us-west-2:123456789012:table/local-IdempotencyTable"},
    )
    return resources


def template_resolver(template: dict[str, Any], **overrides: str) -> IntrinsicResolver:
    parameters = resolve_parameters(template, {"ChannelArns": DEMO_ARN, **overrides})
    return IntrinsicResolver(template, parameters, PSEUDO, local_resources(template))


# YAML short forms.


def test_short_form_tags_become_long_forms() -> None:
    document = yaml_template(
        """
        A: !Ref Param
        B: !GetAtt Queue.Arn
        C: !GetAtt [Queue, QueueName]
        D: !GetAtt Cluster.Endpoint.Address
        E: !Sub "${AWS::Region}-x"
        F: !Sub ["${Name}", {Name: !Ref Param}]
        G: !If [IsFifo, true, !Ref AWS::NoValue]
        H: !Equals [!Ref Param, fifo]
        I: !Not [!Condition IsFifo]
        J: !And [!Condition IsFifo, !Condition Other]
        K: !Or [!Condition IsFifo, !Condition Other]
        L: !FindInMap [Map, !Ref Param, Key]
        M: !Join [",", [a, b]]
        N: !Select [0, !Split [",", "a,b"]]
        O: !Base64 text
        P: 2010-09-09
        """
    )
    assert document["A"] == {"Ref": "Param"}
    assert document["B"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert document["C"] == {"Fn::GetAtt": ["Queue", "QueueName"]}
    assert document["D"] == {"Fn::GetAtt": ["Cluster", "Endpoint.Address"]}
    assert document["E"] == {"Fn::Sub": "${AWS::Region}-x"}
    assert document["F"] == {"Fn::Sub": ["${Name}", {"Name": {"Ref": "Param"}}]}
    assert document["G"] == {"Fn::If": ["IsFifo", True, {"Ref": "AWS::NoValue"}]}
    assert document["H"] == {"Fn::Equals": [{"Ref": "Param"}, "fifo"]}
    assert document["I"] == {"Fn::Not": [{"Condition": "IsFifo"}]}
    assert document["J"] == {"Fn::And": [{"Condition": "IsFifo"}, {"Condition": "Other"}]}
    assert document["K"] == {"Fn::Or": [{"Condition": "IsFifo"}, {"Condition": "Other"}]}
    assert document["L"] == {"Fn::FindInMap": ["Map", {"Ref": "Param"}, "Key"]}
    assert document["M"] == {"Fn::Join": [",", ["a", "b"]]}
    assert document["N"] == {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]}
    assert document["O"] == {"Fn::Base64": "text"}
    assert document["P"] == "2010-09-09"  # dates stay text, as CloudFormation keeps them


def test_template_yaml_loads_with_its_short_forms(template: dict[str, Any]) -> None:
    queue = template["Resources"]["RequestQueue"]["Properties"]
    assert queue["FifoQueue"] == {"Fn::If": ["IsFifo", True, {"Ref": "AWS::NoValue"}]}
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
    }
    assert template["Conditions"]["IsFifo"] == {"Fn::Equals": [{"Ref": "QueueType"}, "fifo"]}


def test_a_non_mapping_document_is_refused() -> None:
    with pytest.raises(TemplateError, match="mapping"):
        parse_template("- just\n- a list\n")


# Parameters.


def test_channel_arns_without_a_value_is_an_error_naming_it(template: dict[str, Any]) -> None:
    with pytest.raises(ParameterError, match="ChannelArns") as raised:
        resolve_parameters(template, {})
    assert raised.value.parameter == "ChannelArns"
    assert "no Default" in str(raised.value)


def test_template_defaults_and_types(template: dict[str, Any]) -> None:
    values = resolve_parameters(template, {"ChannelArns": DEMO_ARN})
    assert values["ChannelArns"] == [DEMO_ARN]
    assert values["QueueType"] == "standard"
    assert values["FunctionTimeout"] == "60"  # a Number's Ref is a string, as in CloudFormation
    assert values["StatusWaitSeconds"] == "1.0"
    assert values["PacingMarginSeconds"] == "0.05"
    assert values["OutcomeSubscriptionEndpoint"] == ""


def test_comma_delimited_list_splits_and_checks_each_item(template: dict[str, Any]) -> None:
    two = f"{DEMO_ARN}, arn:aws:kinesisvideo:us-west-2:123456789012:channel/cam-*/*"
    values = resolve_parameters(template, {"ChannelArns": two})
    assert values["ChannelArns"] == [
        DEMO_ARN,
        "arn:aws:kinesisvideo:us-west-2:123456789012:channel/cam-*/*",
    ]
    with pytest.raises(ParameterError, match=r"ChannelArns.*AllowedPattern"):
        resolve_parameters(template, {"ChannelArns": f"{DEMO_ARN},*"})


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("MemorySize", "lots", "is not a Number"),
        ("MemorySize", "64", "below MinValue 128"),
        ("StatusWaitSeconds", "11", "above MaxValue 10"),
        ("FunctionTimeout", "45", "not one of AllowedValues"),
        ("QueueType", "FIFO", "not one of AllowedValues"),
        ("AlarmTopicArn", "not-an-arn", "AllowedPattern"),
    ],
)
def test_a_value_the_declaration_refuses_names_the_parameter(
    template: dict[str, Any], name: str, value: str, problem: str
) -> None:
    with pytest.raises(ParameterError, match=problem) as raised:
        resolve_parameters(template, {"ChannelArns": DEMO_ARN, name: value})
    assert raised.value.parameter == name
    assert str(raised.value).startswith(f"parameter {name}:")


def test_number_allowed_values_compare_as_numbers(template: dict[str, Any]) -> None:
    values = resolve_parameters(template, {"ChannelArns": DEMO_ARN, "FunctionTimeout": "60.0"})
    assert values["FunctionTimeout"] == "60.0"


def test_an_override_for_no_parameter_is_refused(template: dict[str, Any]) -> None:
    with pytest.raises(ParameterError, match="not a parameter") as raised:
        resolve_parameters(template, {"ChannelArns": DEMO_ARN, "QueueTipe": "fifo"})
    assert raised.value.parameter == "QueueTipe"


def test_string_length_limits() -> None:
    document = yaml_template(
        """
        Parameters:
          Name: {Type: String, MinLength: 2, MaxLength: 3}
        """
    )
    assert resolve_parameters(document, {"Name": "abc"}) == {"Name": "abc"}
    with pytest.raises(ParameterError, match="shorter than MinLength 2"):
        resolve_parameters(document, {"Name": "a"})
    with pytest.raises(ParameterError, match="longer than MaxLength 3"):
        resolve_parameters(document, {"Name": "abcd"})


# parameter_overrides and samconfig.toml.


def test_parameter_overrides_string_with_quoted_values() -> None:
    text = """A=1 B="two words" C='{"status": ["FAILED"]}' D=x=y E="""
    assert parse_parameter_overrides(text) == {
        "A": "1",
        "B": "two words",
        "C": '{"status": ["FAILED"]}',
        "D": "x=y",
        "E": "",
    }


def test_parameter_overrides_list_and_long_form() -> None:
    assert parse_parameter_overrides(
        ["A=1", "B='quoted value'", "ParameterKey=C,ParameterValue=a,b"]
    ) == {"A": "1", "B": "quoted value", "C": "a,b"}


def test_parameter_overrides_refuse_a_token_without_a_value() -> None:
    with pytest.raises(TemplateError, match="'Lonely' is not Key=Value"):
        parse_parameter_overrides("A=1 Lonely")


def test_samconfig_default_env_of_the_repository() -> None:
    config = read_samconfig(SAMCONFIG, "default")
    assert config.stack_name == "kvs-signaling-relay-dev"
    assert config.region == "us-west-2"
    assert config.parameter_overrides["ChannelArns"] == DEMO_ARN
    assert config.parameter_overrides["LogLevel"] == "INFO"
    assert config.parameter_overrides["MaximumConcurrency"] == "2"


def test_samconfig_prod_env_unquotes_the_filter_policy() -> None:
    config = read_samconfig(SAMCONFIG, "prod")
    assert config.stack_name == "kvs-signaling-relay-prod"
    assert config.parameter_overrides["QueueType"] == "fifo"
    assert config.parameter_overrides["OutcomeSubscriptionFilterPolicy"] == (
        '{"status": ["REJECTED", "FAILED", "RETRY"]}'
    )
    assert config.parameter_overrides["ChannelArns"].count(",") == 1


def test_samconfig_sections_merge_per_key_later_wins(tmp_path: Path) -> None:
    path = tmp_path / "samconfig.toml"
    path.write_text(
        textwrap.dedent(
            """
            version = 0.1
            [dev.global.parameters]
            stack_name = "from-global"
            parameter_overrides = "A=global B=global"
            [dev.deploy.parameters]
            region = "eu-west-1"
            parameter_overrides = "B=deploy C='c d'"
            [dev.local_invoke.parameters]
            parameter_overrides = ["C=local"]
            """
        )
    )
    assert read_samconfig(path, "dev") == SamConfig(
        "dev", {"A": "global", "B": "deploy", "C": "local"}, "from-global", "eu-west-1"
    )


def test_samconfig_missing_env_or_file(tmp_path: Path) -> None:
    assert read_samconfig(tmp_path / "absent.toml") == SamConfig("default")
    with pytest.raises(TemplateError, match=r"no \[staging\.\*\] config env"):
        read_samconfig(SAMCONFIG, "staging")
    with pytest.raises(TemplateError, match="no such file"):
        read_samconfig(tmp_path / "absent.toml", "prod")


def test_samconfig_overrides_resolve_against_template_yaml(template: dict[str, Any]) -> None:
    values = resolve_parameters(template, read_samconfig(SAMCONFIG, "prod").parameter_overrides)
    assert values["QueueType"] == "fifo"
    assert values["ChannelArns"][0].endswith("channel/cam-*/*")


# Intrinsic functions on inline templates.

INLINE = """
Parameters:
  Env: {Type: String, Default: dev}
  Names: {Type: CommaDelimitedList, Default: "a,b,c"}
  Size: {Type: Number, Default: 30}
  Empty: {Type: String, Default: ""}
Mappings:
  BySize:
    30: {Timeout: 200}
    "60": {Timeout: 380}
Conditions:
  IsDev: !Equals [!Ref Env, dev]
  IsProd: !Equals [prod, !Ref Env]
  HasName: !Not [!Equals [!Ref Empty, ""]]
  DevOrProd: !Or [!Condition IsDev, !Condition IsProd]
  DevWithoutName: !And [!Condition IsDev, !Not [!Condition HasName]]
  Loop: !Not [!Condition Loop]
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Unmade:
    Type: AWS::DynamoDB::Table
"""


@pytest.fixture
def inline() -> IntrinsicResolver:
    document = yaml_template(INLINE)
    queue = ResourceAttributes(
        "AWS::SQS::Queue", "https://queue/url", {"Arn": "arn:queue", "QueueName": "q"}
    )
    return IntrinsicResolver(document, resolve_parameters(document), PSEUDO, {"Queue": queue})


def resolve(resolver: IntrinsicResolver, text: str) -> Any:
    return resolver.resolve(yaml_template(f"Value: {text}")["Value"])


def test_ref_of_parameters_pseudo_parameters_and_resources(inline: IntrinsicResolver) -> None:
    assert resolve(inline, "!Ref Env") == "dev"
    assert resolve(inline, "!Ref Names") == ["a", "b", "c"]
    assert resolve(inline, "!Ref Size") == "30"
    assert resolve(inline, "!Ref AWS::Region") == "us-west-2"
    assert resolve(inline, "!Ref AWS::AccountId") == "123456789012"
    assert resolve(inline, "!Ref AWS::StackName") == "local"
    assert resolve(inline, "!Ref AWS::Partition") == "aws"
    assert resolve(inline, "!Ref AWS::NoValue") is NO_VALUE
    assert resolve(inline, "!Ref Queue") == "https://queue/url"


def test_partition_follows_the_region() -> None:
    assert PseudoParameters("cn-north-1", "1", "s").partition == "aws-cn"
    assert PseudoParameters("us-gov-west-1", "1", "s").partition == "aws-us-gov"
    assert PseudoParameters("eu-west-1", "1", "s").stack_id.startswith(
        "arn:aws:cloudformation:eu-west-1:1:stack/s/"
    )


def test_no_value_leaves_out_map_entries_and_list_items(inline: IntrinsicResolver) -> None:
    value = resolve(inline, "{A: !Ref AWS::NoValue, B: [1, !Ref AWS::NoValue, 2], C: x}")
    assert value == {"B": [1, 2], "C": "x"}


def test_get_att_dotted_and_list(inline: IntrinsicResolver) -> None:
    assert resolve(inline, "!GetAtt Queue.Arn") == "arn:queue"
    assert resolve(inline, "!GetAtt [Queue, QueueName]") == "q"
    with pytest.raises(TemplateError, match="Queue has no attribute Nope locally"):
        resolve(inline, "!GetAtt Queue.Nope")


def test_refs_the_local_stack_cannot_answer_name_what_is_missing(
    inline: IntrinsicResolver,
) -> None:
    with pytest.raises(TemplateError, match="Ref Nothing: no such parameter or resource"):
        resolve(inline, "!Ref Nothing")
    with pytest.raises(TemplateError, match="local stack has no AWS::DynamoDB::Table Unmade"):
        resolve(inline, "!GetAtt Unmade.Arn")
    with pytest.raises(TemplateError, match="AWS::Nope: not a pseudo parameter"):
        resolve(inline, "!Ref AWS::Nope")


def test_sub_string_and_list_forms(inline: IntrinsicResolver) -> None:
    assert (
        resolve(inline, '!Sub "${AWS::StackName}-${Env}-${Queue.QueueName}-${Queue}"')
        == "local-dev-q-https://queue/url"
    )
    assert resolve(inline, '!Sub "${!Literal} ${AWS::Region}"') == "${Literal} us-west-2"
    assert resolve(inline, '!Sub ["${Greeting}, ${Env}", {Greeting: !Ref Size}]') == "30, dev"
    with pytest.raises(TemplateError, match="expected a string"):
        resolve(inline, '!Sub "${Names}"')


def test_conditions_and_if(inline: IntrinsicResolver) -> None:
    assert inline.condition("IsDev") is True
    assert inline.condition("IsProd") is False
    assert inline.condition("HasName") is False
    assert inline.condition("DevOrProd") is True
    assert inline.condition("DevWithoutName") is True
    assert resolve(inline, "!If [IsDev, yes-dev, no]") == "yes-dev"
    assert resolve(inline, "!If [IsProd, yes, !Ref AWS::NoValue]") is NO_VALUE
    assert resolve(inline, "!Equals [!Ref Size, 30]") is True  # 30 and "30" are equal


def test_condition_errors(inline: IntrinsicResolver) -> None:
    with pytest.raises(TemplateError, match="condition Loop: refers to itself"):
        inline.condition("Loop")
    with pytest.raises(TemplateError, match="condition Missing: not in the template"):
        resolve(inline, "!If [Missing, a, b]")


def test_find_in_map_with_number_keys_and_default(inline: IntrinsicResolver) -> None:
    assert resolve(inline, "!FindInMap [BySize, !Ref Size, Timeout]") == 200
    assert resolve(inline, "!FindInMap [BySize, 60, Timeout]") == 380
    assert resolve(inline, "!FindInMap [BySize, 90, Timeout, {DefaultValue: 7}]") == 7
    with pytest.raises(TemplateError, match=r"BySize has no \[90\]\[Timeout\]"):
        resolve(inline, "!FindInMap [BySize, 90, Timeout]")
    with pytest.raises(TemplateError, match="no mapping Nope"):
        resolve(inline, "!FindInMap [Nope, 1, 2]")


def test_join_select_split_base64_contains(inline: IntrinsicResolver) -> None:
    assert resolve(inline, '!Join ["-", !Ref Names]') == "a-b-c"
    assert resolve(inline, '!Join ["", [x, !Ref Size, true]]') == "x30true"
    assert resolve(inline, "!Select [1, !Ref Names]") == "b"
    assert resolve(inline, '!Select ["2", [p, q, r]]') == "r"
    assert resolve(inline, '!Split [",", "1,2,,3"]') == ["1", "2", "", "3"]
    assert resolve(inline, "!Base64 hello") == base64.b64encode(b"hello").decode()
    assert resolve(inline, "!Contains [!Ref Names, b]") is True
    assert resolve(inline, "!Contains [[1, 2], 3]") is False
    with pytest.raises(TemplateError, match="index 3 is not within the 3 items"):
        resolve(inline, "!Select [3, !Ref Names]")
    with pytest.raises(TemplateError, match="Fn::Join: takes a list of 2 items"):
        resolve(inline, "!Join [only-one]")


def test_unsupported_functions_are_named(inline: IntrinsicResolver) -> None:
    with pytest.raises(TemplateError, match="Fn::GetAZs: not supported"):
        resolve(inline, '!GetAZs ""')


def test_creation_order_follows_references() -> None:
    document = yaml_template(
        """
        Resources:
          Main:
            Type: AWS::SQS::Queue
            Properties:
              RedrivePolicy: {deadLetterTargetArn: !GetAtt Dlq.Arn}
              QueueName: !Sub "${Topic.TopicName}-main"
          Topic: {Type: AWS::SNS::Topic, DependsOn: Dlq}
          Dlq: {Type: AWS::SQS::Queue}
        """
    )
    order = creation_order(document, ["Main", "Topic", "Dlq"])
    assert order.index("Dlq") < order.index("Topic") < order.index("Main")
    cyclic = yaml_template(
        """
        Resources:
          A: {Type: AWS::SQS::Queue, Properties: {X: !Ref B}}
          B: {Type: AWS::SQS::Queue, Properties: {X: !Ref A}}
        """
    )
    with pytest.raises(TemplateError, match="refer to each other"):
        creation_order(cyclic, ["A", "B"])


# template.yaml: rules, conditions, resources and the function.


def test_template_rules_refuse_a_large_fifo_batch(template: dict[str, Any]) -> None:
    template_resolver(template, QueueType="fifo", BatchSize="9").check_rules()
    with pytest.raises(TemplateError, match="BatchSize must be at most 10 when QueueType is fifo"):
        template_resolver(template, QueueType="fifo", BatchSize="20").check_rules()
    with pytest.raises(TemplateError, match="needs MaximumBatchingWindowInSeconds"):
        template_resolver(template, BatchSize="20").check_rules()
    template_resolver(template, BatchSize="20", MaximumBatchingWindowInSeconds="1").check_rules()


def test_template_conditions(template: dict[str, Any]) -> None:
    standard = template_resolver(template)
    assert standard.condition("IsFifo") is False
    assert standard.resource_enabled("OutcomeSubscription") is False
    subscribed = template_resolver(
        template,
        QueueType="fifo",
        OutcomeSubscriptionProtocol="sqs",
        OutcomeSubscriptionEndpoint=QUEUE_ARN,
    )
    assert subscribed.condition("IsFifo") is True
    assert subscribed.condition("HasOutcomeSubscription") is True
    assert subscribed.condition("HasOutcomeFilterPolicy") is False


def test_request_queue_properties_resolve_per_queue_type(template: dict[str, Any]) -> None:
    body = template["Resources"]["RequestQueue"]["Properties"]
    standard = template_resolver(template).resolve(body)
    assert "FifoQueue" not in standard
    assert "ContentBasedDeduplication" not in standard
    assert standard["VisibilityTimeout"] == 380  # FunctionTimeout 60 -> the Mappings table
    assert standard["RedrivePolicy"] == {
        "deadLetterTargetArn": QUEUE_ARN.replace("Request", "DeadLetter"),
        "maxReceiveCount": "5",
    }
    assert standard["MessageRetentionPeriod"] == "7200"
    fifo = template_resolver(
        template, QueueType="fifo", FunctionTimeout="30", MaxReceiveCount="3"
    ).resolve(body)
    assert fifo["FifoQueue"] is True
    assert fifo["ContentBasedDeduplication"] is True
    assert fifo["VisibilityTimeout"] == 200
    assert fifo["RedrivePolicy"]["maxReceiveCount"] == "3"


def test_function_config_merges_globals_and_resolves(template: dict[str, Any]) -> None:
    config = function_config(
        template,
        template_resolver(
            template, FunctionTimeout="30", MemorySize="512", StatusWaitSeconds="0.25"
        ),
        "SendSignalingFunction",
    )
    assert config.handler == "app.lambda_handler"
    assert config.code_uri == "functions/send_signaling/"
    assert config.runtime == "python3.13"
    assert config.timeout_seconds == 30
    assert config.memory_size_mb == 512
    assert config.tracing == "Active"
    assert config.layers == (LayerReference(logical_id="RelayLayer", content_uri="layers/relay/"),)
    assert config.log_group_name == "local-SendSignalingLogGroup"
    # Globals' variables and the function's own, resolved to strings.
    assert config.environment["POWERTOOLS_SERVICE_NAME"] == "kvs-signaling-relay"
    assert config.environment["POWERTOOLS_LOG_LEVEL"] == "INFO"
    assert config.environment["OUTCOME_TOPIC_ARN"] == TOPIC_ARN
    assert config.environment["STATUS_WAIT_SECONDS"] == "0.25"
    assert config.environment["PUBLISH_SENT_OUTCOMES"] == "true"
    assert config.environment["IDEMPOTENCY_TABLE_NAME"] == "local-IdempotencyTable"
    assert config.environment["IDEMPOTENCY_EXPIRES_SECONDS"] == "7200"
    [event] = config.sqs_events
    assert event.queue_arn == QUEUE_ARN
    assert event.batch_size == 10
    assert event.report_batch_item_failures is True
    assert event.maximum_concurrency == 5


def test_function_config_of_every_declared_variable(template: dict[str, Any]) -> None:
    config = function_config(template, template_resolver(template), "SendSignalingFunction")
    declared = {
        **template["Globals"]["Function"]["Environment"]["Variables"],
        **template["Resources"]["SendSignalingFunction"]["Properties"]["Environment"]["Variables"],
    }
    assert set(config.environment) == set(declared)
    for name, value in declared.items():
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in template["Parameters"]:
            parameter = template["Parameters"][value["Ref"]]
            assert config.environment[name] == str(parameter["Default"]), name


def test_fifo_event_source_has_no_batching_window(template: dict[str, Any]) -> None:
    config = function_config(
        template,
        template_resolver(template, QueueType="fifo", MaximumBatchingWindowInSeconds="5"),
        "SendSignalingFunction",
    )
    assert config.sqs_events[0].maximum_batching_window_seconds == 0
    standard = function_config(
        template,
        template_resolver(template, MaximumBatchingWindowInSeconds="5"),
        "SendSignalingFunction",
    )
    assert standard.sqs_events[0].maximum_batching_window_seconds == 5


def test_function_config_errors_name_the_function(template: dict[str, Any]) -> None:
    resolver = template_resolver(template)
    with pytest.raises(TemplateError, match="function Nope: not in the template"):
        function_config(template, resolver, "Nope")
    with pytest.raises(TemplateError, match="function OutcomeTopic: is a AWS::SNS::Topic"):
        function_config(template, resolver, "OutcomeTopic")


def test_function_sam_defaults_and_foreign_layers() -> None:
    document = yaml_template(
        """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Handler: index.handler
              CodeUri: src/
              Runtime: python3.13
              Layers: [!Sub "arn:aws:lambda:${AWS::Region}:1:layer:x:1"]
        """
    )
    config = function_config(document, IntrinsicResolver(document, {}, PSEUDO), "Fn")
    assert (config.timeout_seconds, config.memory_size_mb) == (3, 128)
    assert config.environment == {}
    assert config.layers == (LayerReference(arn="arn:aws:lambda:us-west-2:1:layer:x:1"),)


def test_merge_globals_follows_sam() -> None:
    assert merge_globals({"A": 1, "M": {"x": 1, "y": 1}}, {"M": {"y": 2}, "B": 2}) == {
        "A": 1,
        "M": {"x": 1, "y": 2},
        "B": 2,
    }
    assert merge_globals([1], [2]) == [1, 2]
    assert merge_globals({"Ref": "A"}, {"Ref": "B"}) == {"Ref": "B"}
    assert merge_globals(3, 30) == 30


def test_derived_resources_follow_the_stack_name(template: dict[str, Any]) -> None:
    derived = derived_resource_attributes(template, PSEUDO)
    assert derived["SendSignalingFunction"].ref == "local-SendSignalingFunction"
    assert derived["SendSignalingFunction"].attributes["Arn"] == (
        "arn:aws:lambda:us-west-2:123456789012:function:local-SendSignalingFunction"
    )
    assert derived["RelayLayer"].ref.endswith(":layer:local-RelayLayer:1")
    assert "RequestQueue" not in derived
