"""The WebSocket adapter (websocket-client) against a real loopback aiohttp WebSocket server.

The server here is a plain WebSocket server (echo, refuse, close), not a signaling service: it
checks the adapter's I/O contract (frames, timeouts, closes, refused handshakes) only.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from aiohttp import WSMsgType, web

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


@pytest.fixture(scope="module")
def ws_server() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.add_routes(
        [web.get("/echo", echo), web.get("/close", close_after_one), web.get("/refuse", refuse)]
    )
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def test_frames_go_out_and_come_back_and_silence_times_out(ws_server: str) -> None:
    connection = WebSocketConnector(connect_timeout=2).connect(f"{ws_server}/echo")
    try:
        connection.send('{"action":"SDP_OFFER"}')
        assert connection.receive(2.0) == '{"action":"SDP_OFFER"}'
        assert connection.receive(0.05) is None
    finally:
        connection.close()


def test_a_server_close_is_reported_as_connection_lost(ws_server: str) -> None:
    connection = WebSocketConnector(connect_timeout=2).connect(f"{ws_server}/close")
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


def test_a_refused_handshake_gives_its_status_and_never_the_signed_url(ws_server: str) -> None:
    url = f"{ws_server}/refuse?X-Amz-Signature=deadbeefsecret&X-Amz-Credential=AKIDSECRET"
    with pytest.raises(ConnectFailure) as refused:
        WebSocketConnector(connect_timeout=2).connect(url)
    assert refused.value.status == 403
    assert not refused.value.permanent
    assert "secret" not in str(refused.value).lower()
    assert "AKIDSECRET" not in str(refused.value)


def test_nothing_listening_is_a_transient_connect_failure() -> None:
    with pytest.raises(ConnectFailure) as failed:
        WebSocketConnector(connect_timeout=2).connect(f"ws://127.0.0.1:{closed_loopback_port()}/")
    assert failed.value.status is None
    assert not failed.value.permanent
