"""Helpers for the emulator's own tests: real clients only (boto3, websocket-client, raw frames).

Every test gets fresh channels, so counters and quota windows never leak between tests.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import websocket
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials

from kvs_local.emulator import Emulator, EmulatorConfig
from kvs_relay.presign import presign_connect_url
from kvs_relay.protocol import MessageType, ServerEvent, parse_server_event

REGION = "us-west-2"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """A plain ws:// emulator for one test module, on free ports."""
    with Emulator(EmulatorConfig()) as emulator:
        yield emulator


def new_channel(emulator: Emulator, ttl: int = 60) -> str:
    return emulator.create_channel(f"ch-{uuid.uuid4().hex[:12]}", message_ttl_seconds=ttl)


def credentials_of(emulator: Emulator) -> ReadOnlyCredentials:
    return ReadOnlyCredentials(emulator.access_key_id, emulator.secret_access_key, None)


def connect_url(
    emulator: Emulator,
    channel_arn: str,
    client_id: str | None,
    *,
    credentials: ReadOnlyCredentials | None = None,
    signed_at: dt.datetime | None = None,
    expires: int = 299,
    region: str = REGION,
    endpoint: str | None = None,
) -> str:
    """A URL presigned with botocore, as the relay and the SDKs build it."""
    return presign_connect_url(
        endpoint or emulator.ws_endpoint,
        channel_arn,
        client_id,
        credentials or credentials_of(emulator),
        region,
        expires=expires,
        signed_at=signed_at,
    )


class Client:
    """A signaling client on websocket-client."""

    def __init__(self, url: str, **options: Any) -> None:
        self.ws = websocket.create_connection(url, timeout=3, **options)

    def send(self, body: dict[str, Any] | str) -> None:
        self.ws.send(body if isinstance(body, str) else json.dumps(body))

    def events(self, quiet: float = 0.3) -> list[ServerEvent]:
        """Everything that arrives until the connection is quiet for ``quiet`` seconds."""
        got: list[ServerEvent] = []
        self.ws.settimeout(quiet)
        while True:
            try:
                frame = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                return got
            except websocket.WebSocketConnectionClosedException:
                return got
            if frame:
                got.append(parse_server_event(frame))

    def next_event(self, timeout: float = 3.0) -> ServerEvent:
        self.ws.settimeout(timeout)
        return parse_server_event(self.ws.recv())

    def statuses(self, quiet: float = 0.3) -> dict[str, tuple[str, str, str]]:
        """STATUS_RESPONSEs received, by correlationId: (errorType, statusCode, description)."""
        found = {}
        for event in self.events(quiet):
            if event.message_type is MessageType.STATUS_RESPONSE:
                assert event.status_response is not None
                status = event.status_response
                found[status.correlation_id] = (
                    status.error_type,
                    status.status_code,
                    status.description,
                )
        return found

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    for client in opened:
        client.close()


def open_client(opened: list[Client], url: str, **options: Any) -> Client:
    client = Client(url, **options)
    opened.append(client)
    return client


def refused_status(url: str, **options: Any) -> int:
    """The HTTP status of a refused handshake (fails the test if the handshake succeeds)."""
    try:
        ws = websocket.create_connection(url, timeout=3, **options)
    except websocket.WebSocketBadStatusException as refused:
        return int(refused.status_code)
    ws.close()
    pytest.fail("the handshake was accepted")


def kinesisvideo_client(
    endpoint_url: str,
    access_key_id: str,
    secret_access_key: str,
    *,
    ca_bundle: str | None = None,
    session_token: str | None = None,
    region: str = REGION,
    validate: bool = True,
) -> Any:
    """boto3's kinesisvideo client for an emulator, retries off (the tests check errors).

    ``validate=False`` turns off boto3's client-side checks so bad input reaches the server.
    """
    return boto3.session.Session().client(
        "kinesisvideo",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        verify=ca_bundle or True,
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"}, parameter_validation=validate
        ),
    )


def control_client(
    emulator: Emulator,
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    region: str = REGION,
    validate: bool = True,
) -> Any:
    """:func:`kinesisvideo_client` for an in-process emulator (its own keys by default)."""
    return kinesisvideo_client(
        emulator.control_endpoint,
        access_key_id or emulator.access_key_id,
        secret_access_key or emulator.secret_access_key,
        ca_bundle=emulator.ca_cert_path,
        session_token=session_token,
        region=region,
        validate=validate,
    )


def payload(body: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(body).encode()).decode()


ANSWER = payload({"type": "answer", "sdp": "v=0\r\n"})
OFFER = payload({"type": "offer", "sdp": "v=0\r\n"})
ICE = payload({"candidate": "candidate:1 1 udp 1 192.0.2.1 9 typ host", "sdpMid": "0"})
