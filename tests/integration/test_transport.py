"""The WebSocket adapter (websocket-client) against a real loopback aiohttp WebSocket server.

The server here is a plain WebSocket server (echo, refuse, close), not a signaling service: it
checks the adapter's I/O contract (frames, timeouts, closes, refused handshakes) only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import WSMsgType, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kvs_relay.transport import ConnectFailure, ConnectionLost, WebSocketConnector

from .conftest import closed_loopback_port


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            await ws.send_str(message.data)
    return ws


async def close_after_one(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.receive()
    await ws.close()
    return ws


async def refuse(request: web.Request) -> web.Response:
    return web.Response(status=403, text="Forbidden")


def write_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (ca.pem, server.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("relay test CA"))
        .issuer_name(name("relay test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture(scope="module")
def ca_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return write_ca_and_server_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module", params=["ws", "wss"])
def ws_server(request: pytest.FixtureRequest, ca_files: tuple[Path, Path, Path]) -> Iterator[str]:
    scheme: str = request.param
    context: ssl.SSLContext | None = None
    if scheme == "wss":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(ca_files[1], ca_files[2])
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.add_routes(
        [web.get("/echo", echo), web.get("/close", close_after_one), web.get("/refuse", refuse)]
    )
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"{scheme}://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


@pytest.fixture
def connector(ca_files: tuple[Path, Path, Path]) -> WebSocketConnector:
    """Trusts the test CA, as the relay trusts AWS_CA_BUNDLE (plain ws:// ignores it)."""
    return WebSocketConnector(connect_timeout=2, ca_bundle=str(ca_files[0]))


def test_frames_go_out_and_come_back_and_silence_times_out(
    ws_server: str, connector: WebSocketConnector
) -> None:
    connection = connector.connect(f"{ws_server}/echo")
    try:
        connection.send('{"action":"SDP_OFFER"}')
        assert connection.receive(2.0) == '{"action":"SDP_OFFER"}'
        assert connection.receive(0.05) is None
    finally:
        connection.close()


def test_a_server_close_is_reported_as_connection_lost(
    ws_server: str, connector: WebSocketConnector
) -> None:
    connection = connector.connect(f"{ws_server}/close")
    connection.send("one")
    lost = False
    for _ in range(50):  # the close frame arrives shortly after the server read "one"
        try:
            connection.receive(0.1)
        except ConnectionLost:
            lost = True
            break
    connection.close()
    assert lost
    with pytest.raises(ConnectionLost):
        connection.send("two")


def test_a_refused_handshake_gives_its_status_and_never_the_signed_url(
    ws_server: str, connector: WebSocketConnector
) -> None:
    url = f"{ws_server}/refuse?X-Amz-Signature=deadbeefsecret&X-Amz-Credential=AKIDSECRET"
    with pytest.raises(ConnectFailure) as refused:
        connector.connect(url)
    assert refused.value.status == 403
    assert not refused.value.permanent
    assert "secret" not in str(refused.value).lower()
    assert "AKIDSECRET" not in str(refused.value)


def test_nothing_listening_is_a_transient_connect_failure() -> None:
    with pytest.raises(ConnectFailure) as failed:
        WebSocketConnector(connect_timeout=2).connect(f"ws://127.0.0.1:{closed_loopback_port()}/")
    assert failed.value.status is None
    assert not failed.value.permanent


def test_wss_without_the_ca_is_refused(ws_server: str) -> None:
    if not ws_server.startswith("wss://"):
        pytest.skip("TLS trust applies to wss:// only")
    with pytest.raises(ConnectFailure) as untrusted:
        WebSocketConnector(connect_timeout=2).connect(f"{ws_server}/echo")
    assert untrusted.value.status is None
