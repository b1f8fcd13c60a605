"""The control plane through boto3's own kinesisvideo client: shapes, errors, SigV4, quotas."""

from __future__ import annotations

import datetime as dt
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kvs_local.emulator import ControlPlaneQuotas, Emulator, EmulatorConfig
from kvs_local.emulator.pytest_plugin import EmulatorFactory
from kvs_relay.protocol import CHANNEL_ARN_PATTERN

from .conftest import REGION, control_client


def error_of(call: Any, **kwargs: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response
    return (
        error["Error"]["Code"],
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"]["Message"],
    )


def unique(prefix: str = "cp") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_create_describe_list_and_delete_with_the_real_shapes(emu: Emulator) -> None:
    kvs = control_client(emu)
    name = unique()
    arn = kvs.create_signaling_channel(
        ChannelName=name,
        ChannelType="SINGLE_MASTER",
        SingleMasterConfiguration={"MessageTtlSeconds": 30},
    )["ChannelARN"]
    assert CHANNEL_ARN_PATTERN.fullmatch(arn)
    assert arn.startswith(f"arn:aws:kinesisvideo:{REGION}:{emu.config.account_id}:channel/{name}/")

    by_name = kvs.describe_signaling_channel(ChannelName=name)["ChannelInfo"]
    by_arn = kvs.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]
    assert by_name == by_arn
    assert by_name["ChannelARN"] == arn
    assert by_name["ChannelStatus"] == "ACTIVE"
    assert by_name["ChannelType"] == "SINGLE_MASTER"
    assert by_name["SingleMasterConfiguration"] == {"MessageTtlSeconds": 30}
    assert isinstance(by_name["CreationTime"], dt.datetime)

    listed = kvs.list_signaling_channels(
        ChannelNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": name}
    )["ChannelInfoList"]
    assert [c["ChannelARN"] for c in listed] == [arn]

    kvs.delete_signaling_channel(ChannelARN=arn, CurrentVersion=by_name["Version"])
    assert error_of(kvs.describe_signaling_channel, ChannelARN=arn)[:2] == (
        "ResourceNotFoundException",
        404,
    )


def test_default_ttl_is_sixty_seconds(emu: Emulator) -> None:
    kvs = control_client(emu)
    name = unique()
    kvs.create_signaling_channel(ChannelName=name)
    info = kvs.describe_signaling_channel(ChannelName=name)["ChannelInfo"]
    assert info["SingleMasterConfiguration"] == {"MessageTtlSeconds": 60}


def test_list_pages_with_next_token(emu: Emulator) -> None:
    kvs = control_client(emu)
    prefix = unique("page")
    arns = sorted(
        kvs.create_signaling_channel(ChannelName=f"{prefix}-{n}")["ChannelARN"] for n in range(5)
    )
    paginator = kvs.get_paginator("list_signaling_channels")
    pages = list(
        paginator.paginate(
            ChannelNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": prefix},
            PaginationConfig={"PageSize": 2},
        )
    )
    assert [len(p["ChannelInfoList"]) for p in pages] == [2, 2, 1]
    assert sorted(c["ChannelARN"] for p in pages for c in p["ChannelInfoList"]) == arns


@pytest.mark.parametrize("role", ["MASTER", "VIEWER"])
def test_endpoints_for_each_role_and_protocol(emu: Emulator, role: str) -> None:
    kvs = control_client(emu)
    arn = kvs.create_signaling_channel(ChannelName=unique())["ChannelARN"]
    endpoints = kvs.get_signaling_channel_endpoint(
        ChannelARN=arn,
        SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "HTTPS"], "Role": role},
    )["ResourceEndpointList"]
    assert endpoints == [
        {"Protocol": "WSS", "ResourceEndpoint": emu.ws_endpoint},
        {"Protocol": "HTTPS", "ResourceEndpoint": emu.control_endpoint},
    ]
    only_wss = kvs.get_signaling_channel_endpoint(
        ChannelARN=arn,
        SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS"], "Role": role},
    )["ResourceEndpointList"]
    assert [e["Protocol"] for e in only_wss] == ["WSS"]


def test_duplicate_name_is_resource_in_use(emu: Emulator) -> None:
    kvs = control_client(emu)
    name = unique()
    kvs.create_signaling_channel(ChannelName=name)
    code, status, message = error_of(kvs.create_signaling_channel, ChannelName=name)
    assert (code, status) == ("ResourceInUseException", 400)
    assert name in message


@pytest.mark.parametrize(
    ("operation", "kwargs"),
    [
        ("describe_signaling_channel", {"ChannelName": "no-such-channel"}),
        (
            "describe_signaling_channel",
            {"ChannelARN": f"arn:aws:kinesisvideo:{REGION}:123456789012:channel/none/1"},
        ),
        (
            "get_signaling_channel_endpoint",
            {"ChannelARN": f"arn:aws:kinesisvideo:{REGION}:123456789012:channel/none/1"},
        ),
        (
            "delete_signaling_channel",
            {"ChannelARN": f"arn:aws:kinesisvideo:{REGION}:123456789012:channel/none/1"},
        ),
    ],
)
def test_unknown_channels_are_resource_not_found(
    emu: Emulator, operation: str, kwargs: dict[str, Any]
) -> None:
    kvs = control_client(emu)
    code, status, _ = error_of(getattr(kvs, operation), **kwargs)
    assert (code, status) == ("ResourceNotFoundException", 404)


def test_a_channel_of_another_region_is_not_found(emu: Emulator) -> None:
    name = unique()
    control_client(emu).create_signaling_channel(ChannelName=name)
    elsewhere = control_client(emu, region="eu-central-1")
    assert error_of(elsewhere.describe_signaling_channel, ChannelName=name)[0] == (
        "ResourceNotFoundException"
    )
    arn = elsewhere.create_signaling_channel(ChannelName=name)["ChannelARN"]
    assert arn.startswith("arn:aws:kinesisvideo:eu-central-1:")


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        ({"ChannelName": "has space"}, "channelName", "regular expression pattern"),
        ({"ChannelName": "x" * 257}, "channelName", "less than or equal to 256"),
        (
            {"ChannelName": "ttl", "SingleMasterConfiguration": {"MessageTtlSeconds": 4}},
            "singleMasterConfiguration.messageTtlSeconds",
            "greater than or equal to 5",
        ),
        (
            {"ChannelName": "ttl", "SingleMasterConfiguration": {"MessageTtlSeconds": 121}},
            "singleMasterConfiguration.messageTtlSeconds",
            "less than or equal to 120",
        ),
        ({"ChannelName": "mesh", "ChannelType": "FULL_MESH"}, "", "SINGLE_MASTER"),
    ],
)
def test_invalid_arguments_name_the_field_and_rule(
    emu: Emulator, kwargs: dict[str, Any], field: str, rule: str
) -> None:
    # boto3 checks the bounds it knows client-side; with that off, the raw body reaches us.
    kvs = control_client(emu, validate=False)
    code, status, message = error_of(kvs.create_signaling_channel, **kwargs)
    assert (code, status) == ("InvalidArgumentException", 400)
    assert f"'{field}'" in message or not field
    assert rule in message


def test_endpoint_protocol_webrtc_is_refused_with_a_reason(emu: Emulator) -> None:
    kvs = control_client(emu)
    arn = kvs.create_signaling_channel(ChannelName=unique())["ChannelARN"]
    code, _, message = error_of(
        kvs.get_signaling_channel_endpoint,
        ChannelARN=arn,
        SingleMasterChannelEndpointConfiguration={"Protocols": ["WEBRTC"], "Role": "VIEWER"},
    )
    assert code == "InvalidArgumentException"
    assert "WEBRTC" in message


def test_delete_with_a_stale_version_is_a_version_mismatch(emu: Emulator) -> None:
    kvs = control_client(emu)
    arn = kvs.create_signaling_channel(ChannelName=unique())["ChannelARN"]
    code, status, _ = error_of(kvs.delete_signaling_channel, ChannelARN=arn, CurrentVersion="999")
    assert (code, status) == ("VersionMismatchException", 400)
    kvs.delete_signaling_channel(ChannelARN=arn)


def test_a_wrong_secret_is_refused_as_aws_refuses_it(emu: Emulator) -> None:
    kvs = control_client(emu, secret_access_key="not-the-secret")
    code, status, message = error_of(kvs.list_signaling_channels)
    assert (code, status) == ("InvalidSignatureException", 403)
    assert message.startswith("The request signature we calculated does not match")


def test_an_unknown_access_key_is_unrecognized(emu: Emulator) -> None:
    kvs = control_client(emu, access_key_id="AKIAUNKNOWNKEY000000")
    code, status, message = error_of(kvs.list_signaling_channels)
    assert (code, status) == ("UnrecognizedClientException", 403)
    assert message == "The security token included in the request is invalid."


def test_temporary_credentials_need_their_token_and_expire(
    kvs_emulator_factory: EmulatorFactory,
) -> None:
    # The clock is the one thing no local server can move: a settable one stands in for time.
    now = [time.time()]
    emulator = kvs_emulator_factory(EmulatorConfig(wall_clock=lambda: now[0]))
    key, secret, token = emulator.issue_session_credentials(duration_seconds=900)
    assert key.startswith("ASIA")
    with_token = control_client(
        emulator, access_key_id=key, secret_access_key=secret, session_token=token
    )
    assert with_token.list_signaling_channels()["ChannelInfoList"] == []
    without = control_client(emulator, access_key_id=key, secret_access_key=secret)
    assert error_of(without.list_signaling_channels)[:2] == ("UnrecognizedClientException", 403)
    wrong = control_client(
        emulator, access_key_id=key, secret_access_key=secret, session_token=token + "x"
    )
    assert error_of(wrong.list_signaling_channels)[0] == "UnrecognizedClientException"
    now[0] += 901
    assert error_of(with_token.list_signaling_channels)[:2] == ("ExpiredTokenException", 403)


def test_a_request_signed_too_long_ago_is_expired(kvs_emulator_factory: EmulatorFactory) -> None:
    # The emulator's clock runs six minutes ahead of the client's: beyond the 5-minute skew.
    emulator = kvs_emulator_factory(EmulatorConfig(wall_clock=lambda: time.time() + 360))
    code, status, message = error_of(control_client(emulator).list_signaling_channels)
    assert (code, status) == ("InvalidSignatureException", 403)
    assert message.startswith("Signature expired:")
    assert "- 5 min." in message


def test_a_request_without_authorization_is_refused(emu: Emulator) -> None:
    url = emu.control_endpoint + "/listSignalingChannels"
    request = urllib.request.Request(url, data=b"{}", method="POST")  # noqa: S310 (loopback)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310
    assert caught.value.code == 403
    assert caught.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_a_key_without_permission_gets_access_denied(emu: Emulator) -> None:
    name = unique()
    allowed = emu.create_channel(name)
    emu.add_credentials(
        "AKIAREADONLY00000001",
        "read-only-secret",
        allowed_actions=["kinesisvideo:DescribeSignalingChannel"],
        allowed_resources=[allowed],
    )
    kvs = control_client(
        emu, access_key_id="AKIAREADONLY00000001", secret_access_key="read-only-secret"
    )
    assert kvs.describe_signaling_channel(ChannelARN=allowed)["ChannelInfo"]["ChannelName"] == name
    code, status, message = error_of(kvs.create_signaling_channel, ChannelName=unique())
    assert (code, status) == ("AccessDeniedException", 401)
    assert "kinesisvideo:CreateSignalingChannel" in message
    assert error_of(kvs.get_signaling_channel_endpoint, ChannelARN=allowed)[0] == (
        "AccessDeniedException"
    )


def test_describe_is_throttled_above_five_per_second_per_channel(emu: Emulator) -> None:
    kvs = control_client(emu)
    arn = kvs.create_signaling_channel(ChannelName=unique())["ChannelARN"]
    codes = []
    for _ in range(6):
        try:
            kvs.describe_signaling_channel(ChannelARN=arn)
            codes.append("ok")
        except ClientError as error:
            codes.append(error.response["Error"]["Code"])
    # Six calls well within a second: the sixth is over the 5 TPS per-channel quota.
    assert codes.count("ok") == 5
    assert codes[-1] == "ClientLimitExceededException"


def test_account_wide_endpoint_quota_is_configurable(kvs_emulator_factory: EmulatorFactory) -> None:
    emulator = kvs_emulator_factory(
        EmulatorConfig(
            control_quotas=ControlPlaneQuotas(endpoint_and_describe_per_account_per_second=2)
        )
    )
    kvs = control_client(emulator)
    arns = [kvs.create_signaling_channel(ChannelName=unique())["ChannelARN"] for _ in range(3)]
    kvs.get_signaling_channel_endpoint(ChannelARN=arns[0])
    kvs.get_signaling_channel_endpoint(ChannelARN=arns[1])
    code, status, _ = error_of(kvs.get_signaling_channel_endpoint, ChannelARN=arns[2])
    assert (code, status) == ("ClientLimitExceededException", 400)
