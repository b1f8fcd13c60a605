"""The emulator as its own process (one JSON line on start, clean stop on SIGINT/SIGTERM), and
its TLS listener trusted through the CA it generates."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
from botocore.credentials import ReadOnlyCredentials

from kvs_local.emulator import Emulator
from kvs_relay.presign import presign_connect_url

from .conftest import Client, kinesisvideo_client


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kvs_local.emulator",
            "--port",
            "0",
            "--wss-port",
            "0",
            "--cert-dir",
            str(tmp_path),
            "--channel",
            "demo",
            "--quota",
            "viewer_connections_per_channel=3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        yield process, json.loads(line)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_runs_on_its_own_prints_its_endpoints_and_stops_cleanly(
    emulator_process: tuple[subprocess.Popen[str], dict[str, Any]], stop_signal: int
) -> None:
    process, started = emulator_process
    assert started["signalingEndpoint"].startswith("wss://127.0.0.1:")
    assert Path(started["caCertPath"]).is_file()
    arn = started["channels"]["demo"]

    kvs = kinesisvideo_client(
        started["controlEndpoint"],
        started["accessKeyId"],
        started["secretAccessKey"],
        ca_bundle=started["caCertPath"],
    )
    [endpoint] = kvs.get_signaling_channel_endpoint(
        ChannelARN=arn,
        SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS"], "Role": "VIEWER"},
    )["ResourceEndpointList"]
    credentials = ReadOnlyCredentials(started["accessKeyId"], started["secretAccessKey"], None)
    url = presign_connect_url(endpoint["ResourceEndpoint"], arn, "v", credentials, "us-west-2")
    Client(url, sslopt={"ca_certs": started["caCertPath"]}).close()

    process.send_signal(stop_signal)
    assert process.wait(timeout=10) == 0
    assert process.stderr is not None
    assert '{"stopped": true}' in process.stderr.read()


def test_wss_needs_the_emulators_ca(kvs_emulator: Emulator) -> None:
    arn = kvs_emulator.create_channel("tls-check")
    credentials = ReadOnlyCredentials(
        kvs_emulator.access_key_id, kvs_emulator.secret_access_key, None
    )
    assert kvs_emulator.wss_endpoint is not None
    url = presign_connect_url(kvs_emulator.wss_endpoint, arn, "v", credentials, "us-west-2")
    assert kvs_emulator.ca_cert_path is not None
    Client(url, sslopt={"ca_certs": kvs_emulator.ca_cert_path}).close()
    with pytest.raises(ssl.SSLCertVerificationError):
        websocket.create_connection(url, timeout=3, sslopt={"cert_reqs": ssl.CERT_REQUIRED})
