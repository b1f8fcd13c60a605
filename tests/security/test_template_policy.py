"""template.yaml's security posture, read with the project's own template reader: least
privilege, encryption at rest, and no checkov check skipped without a reason."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from kvs_local.template import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
GUARDED_SERVICES = ("kinesisvideo:", "sns:", "dynamodb:")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every inline policy statement of every function, conditional ones included."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "Statement" in node:
                found.extend(node["Statement"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            walk(resource["Properties"].get("Policies", []))
    return found


def test_kinesisvideo_sns_and_dynamodb_statements_name_their_resources(
    template: dict[str, Any],
) -> None:
    guarded = [
        statement
        for statement in statements(template)
        if any(str(a).startswith(GUARDED_SERVICES) for a in statement["Action"])
    ]
    assert {a.split(":")[0] for s in guarded for a in s["Action"]} == {"kinesisvideo", "dynamodb"}
    for statement in guarded:
        resource = statement["Resource"]
        assert resource != "*"
        assert isinstance(resource, dict)  # a Ref or GetAtt, never a literal wildcard
        assert set(resource) <= {"Ref", "Fn::GetAtt"}
    # SNS goes through SAM's SNSPublishMessagePolicy, scoped to the topic's name.
    function = template["Resources"]["SendSignalingFunction"]["Properties"]
    [sns] = [
        p["SNSPublishMessagePolicy"]
        for p in function["Policies"]
        if isinstance(p, dict) and "SNSPublishMessagePolicy" in p
    ]
    assert sns == {"TopicName": {"Fn::GetAtt": ["OutcomeTopic", "TopicName"]}}


def test_channel_arns_has_no_default_and_refuses_a_bare_wildcard(
    template: dict[str, Any],
) -> None:
    parameter = template["Parameters"]["ChannelArns"]
    assert "Default" not in parameter
    pattern = re.compile(parameter["AllowedPattern"])
    assert not pattern.fullmatch("*")
    assert not pattern.fullmatch("arn:aws:kinesisvideo:*:*:channel/*/*")
    assert pattern.fullmatch("arn:aws:kinesisvideo:us-west-2:123456789012:channel/cam-*/*")


def test_queues_topic_and_table_are_encrypted(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for body in resources.values():
        by_type.setdefault(body["Type"], []).append(body.get("Properties", {}))
    assert len(by_type["AWS::SQS::Queue"]) == 2
    for queue in by_type["AWS::SQS::Queue"]:
        assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue
    [topic] = by_type["AWS::SNS::Topic"]
    assert topic["KmsMasterKeyId"] == "alias/aws/sns"
    [table] = by_type["AWS::DynamoDB::Table"]
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_every_skipped_checkov_check_says_why(template: dict[str, Any]) -> None:
    skips = [
        (logical_id, skip)
        for logical_id, body in template["Resources"].items()
        for skip in ((body.get("Metadata") or {}).get("checkov") or {}).get("skip", [])
    ]
    assert skips  # the template does skip some: each must carry its reason
    for logical_id, skip in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), (logical_id, skip)
        assert len(str(skip.get("comment", "")).split()) >= 8, (logical_id, skip)
