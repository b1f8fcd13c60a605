"""Log hygiene: a full invocation logs ids and outcomes, never URLs, credentials or payloads.

One batch, run by the handler against the KVS emulator and a moto server with temporary
credentials (key id, secret, session token, as Lambda's role gets them): an SDP answer with a
recognisable SDP, an ICE candidate, and a request the service refuses (its channel throttles
every message). Everything written to stdout/stderr (Powertools writes its JSON lines there) and
every record of the logging module at DEBUG, the emulator's own logger included, is searched
for the presigned URLs and their parts, the credentials, the SDP, the candidate's address and
the base64 payloads.

One exception, outside the project: botocore's own DEBUG records (``botocore.endpoint`` logs
the signed request headers, ``botocore.auth`` the canonical request) carry the access key id
and the session token. They only exist when the root logger is at DEBUG, which the function
never sets (Powertools configures its service logger and ``kvs_relay`` only; Lambda's root
logger stays at WARNING with the template's text log format). The stdout check below fails if
the function ever routes them to its own output.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from botocore.credentials import ReadOnlyCredentials

from kvs_local.emulator import Emulator, Faults
from kvs_relay import delivery
from kvs_relay.presign import presign_connect_url
from kvs_relay.protocol import MessageType, encode_json_payload, encode_sdp_payload
from tests.integration.conftest import (
    LambdaContextStub,
    OutcomeInbox,
    Peer,
    RequestQueue,
    load_handler,
)

SDP_ADDRESS = "192.0.2.77"
SDP = (
    f"v=0\r\no=- 4611731400430051336 2 IN IP4 {SDP_ADDRESS}\r\ns=-\r\nt=0 0\r\n"
    f"a=group:BUNDLE 0\r\nm=audio 54400 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 {SDP_ADDRESS}\r\n"
    "a=ice-ufrag:F7gI\r\na=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n"
    "a=fingerprint:sha-256 D1:2C:BE:AD:C4:F6:64:5C:25:16:11:9C:AF:E7:0F:73\r\n"
)
CANDIDATE_ADDRESS = "203.0.113.45"
CANDIDATE: dict[str, Any] = {
    "candidate": f"candidate:842163049 1 udp 1677729535 {CANDIDATE_ADDRESS} 61665 typ srflx "
    "raddr 10.0.0.5 rport 61665",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
    "usernameFragment": "F7gI",
}
REFUSED_ADDRESS = "198.51.100.99"
REFUSED_PAYLOAD = encode_json_payload(
    {"type": "answer", "sdp": f"v=0\r\no=- 77 2 IN IP4 {REFUSED_ADDRESS}\r\n"}
)
SDK_DEBUG_LOGGERS = ("botocore", "boto3", "urllib3")
EMULATOR_LOGGERS = ("kvs_local", "aiohttp")
# What Powertools sets on its service logger once configured (it then reuses that logger as is).
POWERTOOLS_MARKS = (
    "init",
    "powertools_handler",
    "powertools_buffer_config",
    "powertools_buffer_cache",
)

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def render(record: logging.LogRecord) -> str:
    """A record as any handler could write it: message, arguments and extra fields."""
    return f"{record.name} {record.getMessage()} {record.__dict__!r}"


def is_sdk_debug(record: logging.LogRecord) -> bool:
    return record.levelno < logging.INFO and record.name.startswith(SDK_DEBUG_LOGGERS)


@pytest.fixture
def presigned_urls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connect URL the relay signs (a spy around the real signer)."""
    urls: list[str] = []
    real = presign_connect_url

    def spy(*args: Any, **kwargs: Any) -> str:
        url = real(*args, **kwargs)
        urls.append(url)
        return url

    monkeypatch.setattr(delivery, "presign_connect_url", spy)  # where the relay calls it
    return urls


@pytest.fixture
def session_credentials(
    relay_env: dict[str, str], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> ReadOnlyCredentials:
    """Temporary credentials in the function's environment, as Lambda sets them."""
    key_id, secret, token = emulator.issue_session_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")  # the function's most verbose setting
    return ReadOnlyCredentials(key_id, secret, token)


@pytest.fixture
def cold_start(
    session_credentials: ReadOnlyCredentials, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], Invoke]]:
    """Import the handler fresh (a cold start) with the credentials above, when the test says.

    Powertools binds its log handler to the sys.stdout of the moment it is imported, and pytest's
    capfd stream of the setup phase is not the one of the call: import during the call. A real
    cold start is a new process, so what earlier imports in this one configured on the service
    logger (its handler, Powertools' "preconfigured" marks) is set aside until the test ends.
    """

    def start() -> Invoke:
        service = logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"])
        for mark in POWERTOOLS_MARKS:
            monkeypatch.setattr(service, mark, None, raising=False)
        monkeypatch.setattr(service, "handlers", [])
        module = load_handler(monkeypatch)

        def call(event: dict[str, Any]) -> dict[str, Any]:
            response: dict[str, Any] = module.lambda_handler(event, LambdaContextStub())
            return response

        return call

    yield start
    sys.modules.pop("app", None)


def forbidden_strings(
    credentials: ReadOnlyCredentials, urls: list[str], payloads: list[str]
) -> dict[str, str]:
    """What must never be logged, by what it is."""
    assert credentials.token is not None
    forbidden = {
        "X-Amz-Signature": "X-Amz-Signature",
        "X-Amz-Credential": "X-Amz-Credential",
        "X-Amz-Security-Token": "X-Amz-Security-Token",
        "secret access key": credentials.secret_key,
        "session token": credentials.token,
        "session token (URL-encoded)": quote(credentials.token, safe=""),
        "access key id": credentials.access_key,
        "raw SDP": SDP,
        "raw SDP (JSON-escaped)": json.dumps(SDP)[1:-1],
        "SDP origin session id": "4611731400430051336",
        "SDP ICE password": "x9cml/YzichV2+XlhiMu8g",
        "SDP address": SDP_ADDRESS,
        "candidate address": CANDIDATE_ADDRESS,
        "candidate line": CANDIDATE["candidate"],
        "refused payload's address": REFUSED_ADDRESS,
    }
    for index, url in enumerate(urls):
        query = urlsplit(url).query
        params = parse_qs(query)
        forbidden[f"presigned URL {index}"] = url
        forbidden[f"presigned URL {index} query"] = query
        forbidden[f"presigned URL {index} signature"] = params["X-Amz-Signature"][0]
        forbidden[f"presigned URL {index} credential"] = params["X-Amz-Credential"][0]
        forbidden[f"presigned URL {index} credential (URL-encoded)"] = quote(
            params["X-Amz-Credential"][0], safe=""
        )
    for index, payload in enumerate(payloads):
        forbidden[f"base64 messagePayload {index}"] = payload
    return forbidden


def leaks(text: str, forbidden: dict[str, str]) -> list[str]:
    return sorted(name for name, value in forbidden.items() if value and value in text)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_full_invocation_logs_ids_but_no_urls_credentials_or_payloads(
    cold_start: Callable[[], Invoke],
    session_credentials: ReadOnlyCredentials,
    presigned_urls: list[str],
    emulator: Emulator,
    channel: str,
    connect_peer: Callable[[str, str | None], Peer],
    request_queue: RequestQueue,
    outcome_inbox: OutcomeInbox,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    throttled = emulator.create_channel(f"throttled-{uuid.uuid4().hex[:10]}")
    emulator.set_faults(throttled, Faults(throttle=True))
    viewer = connect_peer(channel, "viewer-sec")
    master = {"role": "MASTER", "recipientClientId": "viewer-sec"}
    bodies: list[dict[str, Any]] = [
        {
            **master,
            "channelArn": channel,
            "action": "SDP_ANSWER",
            "sdp": SDP,
            "correlationId": "sec-answer-1",
        },
        {
            **master,
            "channelArn": channel,
            "action": "ICE_CANDIDATE",
            "iceCandidate": CANDIDATE,
            "correlationId": "sec-ice-1",
        },
        {
            **master,
            "channelArn": throttled,
            "action": "SDP_ANSWER",
            "messagePayload": REFUSED_PAYLOAD,
            "correlationId": "sec-refused-1",
        },
    ]
    event = request_queue.event(bodies)
    message_ids = {json.loads(r["body"])["correlationId"]: r["messageId"] for r in event["Records"]}
    capfd.readouterr()
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        # The emulator's logger is captured at DEBUG like every other one.
        logging.getLogger("kvs_local.emulator").debug("capture probe %s", "emulator-probe-1")
        response = cold_start()(event)
    out, err = capfd.readouterr()
    records = list(caplog.records)

    # The batch took every path: delivered, delivered, refused by the service (throttled).
    assert response == {"batchItemFailures": [{"itemIdentifier": message_ids["sec-refused-1"]}]}
    statuses = {o["correlationId"]: o["status"] for o in outcome_inbox.drain()}
    assert statuses == {"sec-answer-1": "SENT", "sec-ice-1": "SENT", "sec-refused-1": "RETRY"}
    received = viewer.receive_all()
    assert [e.message_type for e in received] == [
        MessageType.SDP_ANSWER,
        MessageType.ICE_CANDIDATE,
    ]
    assert emulator.counters(throttled)["throttled_by_fault"] == 1
    assert len(presigned_urls) == 2  # one connection per sender and channel
    assert all("X-Amz-Security-Token=" in url for url in presigned_urls)
    payloads = [encode_sdp_payload("answer", SDP), encode_json_payload(CANDIDATE), REFUSED_PAYLOAD]
    assert [e.message_payload for e in received] == payloads[:2]

    # Logging is on: Powertools' JSON lines name each record's correlation id and message id.
    lines = json_lines(out)
    for correlation_id, message_id in message_ids.items():
        assert any(
            line.get("correlation_id") == correlation_id and line.get("message_id") == message_id
            for line in lines
        ), f"no log line names {correlation_id} / {message_id}"
    refused = "STATUS_RESPONSE ClientLimitExceededException 400"
    assert any(line.get("reason") == refused for line in lines)

    forbidden = forbidden_strings(session_credentials, presigned_urls, payloads)
    assert leaks(out, forbidden) == [], "stdout"
    assert leaks(err, forbidden) == [], "stderr"
    assert {line.get("name") for line in lines} >= {"kvs_relay.relay", "kvs_relay.delivery"}
    ours = [r for r in records if not is_sdk_debug(r)]
    assert sorted({(r.name, leak) for r in ours for leak in leaks(render(r), forbidden)}) == []

    # The emulator's own logs, on their own: captured (the probe), and clean.
    emulator_records = [r for r in records if r.name.startswith(EMULATOR_LOGGERS)]
    assert any("emulator-probe-1" in r.getMessage() for r in emulator_records)
    assert leaks("\n".join(map(render, emulator_records)), forbidden) == []
