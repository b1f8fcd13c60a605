"""The KVS control plane for signaling channels, as request/response data (no HTTP here).

Input rules, error types and their HTTP statuses come from botocore's own model of the
``kinesisvideo`` API, the same file boto3 clients are generated from, so a client sees the
shapes and errors it expects.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import botocore.session
from botocore.model import ListShape, ServiceModel, Shape, StructureShape

from kvs_local.emulator.channels import Channel, ChannelExists, ChannelRegistry
from kvs_local.emulator.config import ControlPlaneQuotas
from kvs_local.emulator.credentials import Identity
from kvs_relay.protocol import Role
from kvs_relay.quotas import SlidingWindow

OPERATIONS = (
    "CreateSignalingChannel",
    "DescribeSignalingChannel",
    "ListSignalingChannels",
    "DeleteSignalingChannel",
    "GetSignalingChannelEndpoint",
)
SUPPORTED_PROTOCOLS = ("WSS", "HTTPS")


@cache
def service_model() -> ServiceModel:
    """botocore's model of the kinesisvideo API."""
    model: ServiceModel = botocore.session.get_session().get_service_model("kinesisvideo")
    return model


@cache
def operation_for_path() -> dict[str, str]:
    """``/createSignalingChannel`` -> ``CreateSignalingChannel`` for the supported operations."""
    model = service_model()
    return {model.operation_model(name).http["requestUri"]: name for name in OPERATIONS}


class ApiError(Exception):
    """An error response: the modelled error type, its HTTP status, and a message."""

    def __init__(self, error_type: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        if status is None:
            shape = service_model().shape_for(error_type)
            status = int(shape.metadata.get("error", {}).get("httpStatusCode", 400))
        self.status = status


def _invalid(message: str) -> ApiError:
    return ApiError("InvalidArgumentException", message)


def _member_path(path: str, name: str) -> str:
    # AWS names members in validation messages with a lower-case first letter.
    member = name[:1].lower() + name[1:]
    return f"{path}.{member}" if path else member


def _bounds(
    measure: int, meta: Mapping[str, Any], quantity: str, subject: str, long_subject: str
) -> str | None:
    """The ``min``/``max`` rule ``measure`` breaks (``quantity``: "length" or "value").

    ``long_subject`` names the member when it is over the maximum (a long value is not quoted).
    """
    if "min" in meta and measure < meta["min"]:
        return (
            f"{subject} failed to satisfy constraint: Member must have {quantity} "
            f"greater than or equal to {meta['min']}"
        )
    if "max" in meta and measure > meta["max"]:
        return (
            f"{long_subject} failed to satisfy constraint: Member must have {quantity} "
            f"less than or equal to {meta['max']}"
        )
    return None


def _violation(value: Any, shape: Shape, path: str) -> str | None:
    """The first constraint ``value`` breaks, in AWS's validation-message words."""
    kind = shape.type_name
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        if not isinstance(value, Mapping):
            return f"Value at '{path}' failed to satisfy constraint: Member must be an object"
        for required in shape.required_members:
            if value.get(required) is None:
                return (
                    f"Value null at '{_member_path(path, required)}' failed to satisfy "
                    f"constraint: Member must not be null"
                )
        for name, member in shape.members.items():
            if value.get(name) is not None:
                found = _violation(value[name], member, _member_path(path, name))
                if found:
                    return found
        return None
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            return f"Value at '{path}' failed to satisfy constraint: Member must be a list"
        at = f"Value at '{path}'"
        found = _bounds(len(value), meta, "length", at, at)
        if found:
            return found
        for index, item in enumerate(value):
            found = _violation(item, shape.member, f"{path}.{index + 1}.member")
            if found:
                return found
        return None
    if kind == "integer" or kind == "long":
        if not isinstance(value, int) or isinstance(value, bool):
            return f"Value at '{path}' failed to satisfy constraint: Member must be an integer"
        quoted = f"Value '{value}' at '{path}'"
        return _bounds(value, meta, "value", quoted, quoted)
    if kind == "string":
        if not isinstance(value, str):
            return f"Value at '{path}' failed to satisfy constraint: Member must be a string"
        if "enum" in meta and value not in meta["enum"]:
            return (
                f"Value '{value}' at '{path}' failed to satisfy constraint: Member must "
                f"satisfy enum value set: [{', '.join(meta['enum'])}]"
            )
        found = _bounds(
            len(value), meta, "length", f"Value '{value}' at '{path}'", f"Value at '{path}'"
        )
        if found:
            return found
        pattern = meta.get("pattern")
        # Java's \p{..} classes (tags) have no `re` equivalent; those patterns are not checked.
        if pattern and "\\p{" not in pattern and not re.fullmatch(pattern, value):
            return (
                f"Value '{value}' at '{path}' failed to satisfy constraint: Member must "
                f"satisfy regular expression pattern: {pattern}"
            )
        return None
    return None


def validate_input(operation: str, body: Any) -> None:
    """Raise InvalidArgumentException if ``body`` breaks the operation's modelled rules."""
    shape = service_model().operation_model(operation).input_shape
    if shape is None:
        return
    found = _violation(body, shape, "")
    if found:
        raise _invalid(f"1 validation error detected: {found}")


EndpointsFor = Callable[[Role], dict[str, str]]
"""The endpoint URL per protocol (``WSS``, ``HTTPS``) handed out for a role."""


class ControlPlane:
    """The five signaling-channel operations over a :class:`ChannelRegistry`."""

    def __init__(
        self,
        registry: ChannelRegistry,
        endpoints_for: EndpointsFor,
        quotas: ControlPlaneQuotas,
        on_delete: Callable[[Channel], None],
    ) -> None:
        self._registry = registry
        self._endpoints_for = endpoints_for
        self._quotas = quotas
        self._on_delete = on_delete
        self._describe_windows: dict[str, SlidingWindow] = {}
        self._account_windows: dict[str, SlidingWindow] = {}
        self.throttled = 0

    def handle(
        self,
        operation: str,
        body: Any,
        *,
        identity: Identity,
        region: str,
        wall_now: float,
        now: float,
    ) -> dict[str, Any]:
        """Run one operation for a verified caller; raises :class:`ApiError`."""
        validate_input(operation, body)
        handler = {
            "CreateSignalingChannel": self._create,
            "DescribeSignalingChannel": self._describe,
            "ListSignalingChannels": self._list,
            "DeleteSignalingChannel": self._delete,
            "GetSignalingChannelEndpoint": self._endpoint,
        }[operation]
        return handler(body, identity, region, wall_now, now)

    def _authorize(self, identity: Identity, operation: str, resource: str) -> None:
        if not identity.allows(f"kinesisvideo:{operation}", resource):
            raise ApiError(
                "AccessDeniedException",
                f"User: arn:aws:iam::{identity.account_id}:user/{identity.access_key_id} is not "
                f"authorized to perform: kinesisvideo:{operation} on resource: {resource}",
            )

    def _throttle(
        self, windows: dict[str, SlidingWindow], key: str, rate: float, now: float
    ) -> None:
        window = windows.setdefault(key, SlidingWindow.per_second(rate))
        if not window.try_acquire(now):
            self.throttled += 1
            raise ApiError("ClientLimitExceededException", "Rate exceeded for this operation.")

    def _channel(
        self, body: Mapping[str, Any], identity: Identity, region: str, operation: str
    ) -> Channel:
        arn = body.get("ChannelARN")
        name = body.get("ChannelName")
        if arn is None and name is None:
            raise _invalid("Either ChannelName or ChannelARN must be specified.")
        if arn is not None and name is not None:
            raise _invalid("Specify either ChannelName or ChannelARN, not both.")
        channel = (
            self._registry.get(arn)
            if arn is not None
            else self._registry.find(identity.account_id, region, str(name))
        )
        resource = arn or f"arn:aws:kinesisvideo:{region}:{identity.account_id}:channel/{name}/*"
        self._authorize(identity, operation, channel.arn if channel else resource)
        if channel is None or channel.account_id != identity.account_id:
            raise ApiError(
                "ResourceNotFoundException", "The requested channel is not found or not active."
            )
        return channel

    def _create(
        self, body: Any, identity: Identity, region: str, wall_now: float, now: float
    ) -> dict[str, Any]:
        name = body["ChannelName"]
        resource = f"arn:aws:kinesisvideo:{region}:{identity.account_id}:channel/{name}/*"
        self._authorize(identity, "CreateSignalingChannel", resource)
        if body.get("ChannelType", "SINGLE_MASTER") != "SINGLE_MASTER":
            raise _invalid("The emulator supports SINGLE_MASTER channels only.")
        ttl = (body.get("SingleMasterConfiguration") or {}).get("MessageTtlSeconds", 60)
        tags = {tag["Key"]: tag["Value"] for tag in body.get("Tags") or []}
        try:
            channel = self._registry.create(
                name,
                region=region,
                account_id=identity.account_id,
                now=wall_now,
                message_ttl_seconds=ttl,
                tags=tags,
            )
        except ChannelExists as exc:
            raise ApiError(
                "ResourceInUseException", f"A signaling channel named {name} already exists."
            ) from exc
        return {"ChannelARN": channel.arn}

    def _describe(
        self, body: Any, identity: Identity, region: str, wall_now: float, now: float
    ) -> dict[str, Any]:
        channel = self._channel(body, identity, region, "DescribeSignalingChannel")
        self._throttle(
            self._account_windows,
            identity.account_id,
            self._quotas.endpoint_and_describe_per_account_per_second,
            now,
        )
        self._throttle(
            self._describe_windows, channel.arn, self._quotas.describe_per_channel_per_second, now
        )
        return {"ChannelInfo": channel.info()}

    def _list(
        self, body: Any, identity: Identity, region: str, wall_now: float, now: float
    ) -> dict[str, Any]:
        self._authorize(identity, "ListSignalingChannels", "*")
        channels = self._registry.in_scope(identity.account_id, region)
        condition = body.get("ChannelNameCondition") or {}
        prefix = condition.get("ComparisonValue")
        if prefix is not None:
            channels = [c for c in channels if c.name.startswith(prefix)]
        start = 0
        token = body.get("NextToken")
        if token:
            try:
                start = int(base64.b64decode(token, validate=True).decode())
            except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
                raise _invalid("NextToken is not valid.") from exc
        limit = body.get("MaxResults", 10_000)
        page = channels[start : start + limit]
        response: dict[str, Any] = {"ChannelInfoList": [c.info() for c in page]}
        if start + limit < len(channels):
            response["NextToken"] = base64.b64encode(str(start + limit).encode()).decode()
        return response

    def _delete(
        self, body: Any, identity: Identity, region: str, wall_now: float, now: float
    ) -> dict[str, Any]:
        channel = self._channel(body, identity, region, "DeleteSignalingChannel")
        version = body.get("CurrentVersion")
        if version is not None and version != channel.version:
            raise ApiError(
                "VersionMismatchException",
                f"The version {version} does not match the channel's version {channel.version}.",
            )
        self._registry.delete(channel.arn)
        self._on_delete(channel)
        return {}

    def _endpoint(
        self, body: Any, identity: Identity, region: str, wall_now: float, now: float
    ) -> dict[str, Any]:
        channel = self._channel(body, identity, region, "GetSignalingChannelEndpoint")
        self._throttle(
            self._account_windows,
            identity.account_id,
            self._quotas.endpoint_and_describe_per_account_per_second,
            now,
        )
        config = body.get("SingleMasterChannelEndpointConfiguration") or {}
        protocols = config.get("Protocols") or list(SUPPORTED_PROTOCOLS)
        if "WEBRTC" in protocols:
            raise _invalid(
                "The WEBRTC protocol needs a channel configured for media ingestion, "
                "which the emulator does not provide."
            )
        endpoints = self._endpoints_for(Role(config.get("Role", "MASTER")))
        del channel  # the endpoints do not depend on the channel here (one emulator, one host)
        return {
            "ResourceEndpointList": [
                {"Protocol": protocol, "ResourceEndpoint": endpoints[protocol]}
                for protocol in dict.fromkeys(protocols)
            ]
        }
