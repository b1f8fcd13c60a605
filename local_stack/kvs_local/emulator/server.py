"""The emulator's servers: the thin aiohttp adapter around the control plane and the hub.

One aiohttp application answers on a plain listener (``http://`` and ``ws://``) and, when asked,
a TLS listener (``https://`` and ``wss://``):

* ``POST /<operation>``: the control plane (REST-JSON, SigV4 header auth);
* ``GET /?X-Amz-ChannelARN=...`` with a WebSocket upgrade: the signaling data plane (SigV4
  presigned URL);
* ``/_emulator/...``: the admin API (faults, inspection, temporary credentials), unauthenticated:
  the emulator is a development tool bound to loopback.

:class:`Emulator` runs it on an event loop in a background thread, so tests and scripts use it as
a context manager, and offers the same faults and inspection from Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import threading
from collections.abc import Awaitable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

from kvs_local.emulator.channels import Channel, ChannelRegistry
from kvs_local.emulator.config import EmulatorConfig, Faults
from kvs_local.emulator.control_plane import ApiError, ControlPlane, operation_for_path
from kvs_local.emulator.credentials import ALL_ACTIONS, CredentialStore, Identity
from kvs_local.emulator.signaling import Close, Deliver, HubAction, Refusal, SignalingHub
from kvs_local.emulator.sigv4_verify import (
    AuthFailure,
    split_query,
    verify_presigned_request,
    verify_signed_request,
)
from kvs_local.emulator.tls import TlsFiles, generate_tls_files
from kvs_relay.protocol import CHANNEL_ARN_PATTERN, ClientMessage, Role, ServerEvent

log = logging.getLogger("kvs_local.emulator")

SIGNING_SERVICE = "kinesisvideo"
ADMIN_PREFIX = "/_emulator"
_T = TypeVar("_T")


def _error_response(status: int, error_type: str, message: str) -> web.Response:
    # REST-JSON errors as AWS sends them: the type in a header, the message in the body.
    return web.json_response(
        {"message": message}, status=status, headers={"x-amzn-ErrorType": error_type}
    )


@dataclass(slots=True)
class _Socket:
    ws: web.WebSocketResponse
    request: web.Request


class _Server:
    """Everything that runs on the event loop."""

    def __init__(
        self,
        config: EmulatorConfig,
        registry: ChannelRegistry,
        hub: SignalingHub,
        store: CredentialStore,
        tls: TlsFiles | None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.hub = hub
        self.store = store
        self.tls = tls
        self.sockets: dict[int, _Socket] = {}
        self.control = ControlPlane(
            registry, self.endpoints_for, config.control_quotas, self._channel_deleted
        )
        self.port = 0
        self.tls_port: int | None = None
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # Endpoints.

    def base_url(self, scheme: str) -> str:
        secure = scheme in ("https", "wss")
        port = self.tls_port if secure else self.port
        return f"{scheme}://{self.config.host}:{port}"

    def endpoints_for(self, role: Role) -> dict[str, str]:
        del role  # one host serves both roles here; the role comes from X-Amz-ClientId
        secure = self.config.endpoint_scheme == "wss"
        return {
            "WSS": self.base_url("wss" if secure else "ws"),
            "HTTPS": self.base_url("https" if secure else "http"),
        }

    # Lifecycle.

    async def start(self) -> None:
        app = web.Application(client_max_size=self.config.max_frame_bytes)
        app.router.add_route("*", ADMIN_PREFIX + "/{tail:.*}", self.admin)
        app.router.add_post("/{operation}", self.control_plane)
        # The data plane listens on "/"; any other GET is answered there too, and refused as the
        # signature (which covers the path) does not verify.
        app.router.add_get("/{path:.*}", self.data_plane)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.port = _bound_port(site)
        if self.config.wss_port is not None:
            assert self.tls is not None
            secure = web.TCPSite(
                self._runner,
                self.config.host,
                self.config.wss_port,
                ssl_context=self.tls.server_context(),
            )
            await secure.start()
            self.tls_port = _bound_port(secure)
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for socket in list(self.sockets.values()):
            with contextlib.suppress(Exception):
                await socket.ws.close(code=1001, message=b"emulator stopping")
        if self._runner is not None:
            await self._runner.cleanup()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_seconds)
            await self.perform(self.hub.tick(self.config.monotonic()))

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # Actions of the hub, performed on sockets.

    async def perform(self, actions: Iterable[HubAction]) -> None:
        for action in actions:
            socket = self.sockets.get(action.connection_id)
            if socket is None or socket.ws.closed:
                continue
            if isinstance(action, Deliver):
                # A peer that vanished mid-write loses the frame, as it would in the cloud.
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await socket.ws.send_str(action.frame)
            elif isinstance(action, Close):
                if action.abort:
                    transport = socket.request.transport
                    if transport is not None:
                        transport.abort()
                else:
                    self._spawn(socket.ws.close(code=action.code, message=action.reason.encode()))

    def _channel_deleted(self, channel: Channel) -> None:
        self._spawn(self.perform(self.hub.channel_deleted(channel.arn)))

    # Control plane.

    async def control_plane(self, request: web.Request) -> web.Response:
        body = await request.read()
        operation = operation_for_path().get(request.path)
        if operation is None:
            return _error_response(404, "UnknownOperationException", "Unknown operation.")
        try:
            verified = verify_signed_request(
                method=request.method,
                path=request.rel_url.raw_path,
                raw_query=request.rel_url.raw_query_string,
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers
                ],
                body=body,
                store=self.store,
                now=self.config.wall_clock(),
                service=SIGNING_SERVICE,
            )
        except AuthFailure as failure:
            return _error_response(failure.status, failure.error_type, failure.message)
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return _error_response(400, "SerializationException", "The body is not JSON.")
        arn = payload.get("ChannelARN") if isinstance(payload, dict) else None
        if isinstance(arn, str):
            latency = self.hub.faults(arn).latency_seconds
            if latency > 0:
                await asyncio.sleep(latency)
        try:
            result = self.control.handle(
                operation,
                payload,
                identity=verified.identity,
                region=verified.region,
                wall_now=self.config.wall_clock(),
                now=self.config.monotonic(),
            )
        except ApiError as error:
            return _error_response(error.status, error.error_type, error.message)
        return web.json_response(result)

    # Data plane.

    async def data_plane(self, request: web.Request) -> web.StreamResponse:
        params = dict(reversed(split_query(request.rel_url.raw_query_string)))
        arn = params.get("X-Amz-ChannelARN")
        if arn is None or not CHANNEL_ARN_PATTERN.fullmatch(arn):
            return _refuse(
                Refusal(400, "InvalidArgumentException", "X-Amz-ChannelARN must be a channel ARN.")
            )
        faults = self.hub.faults(arn)
        round_trips = (
            self.config.handshake_round_trips_tls
            if request.secure
            else self.config.handshake_round_trips_plain
        )
        delay = faults.latency_seconds * round_trips + faults.handshake_delay_seconds
        if delay > 0:
            await asyncio.sleep(delay)
        injected = self.hub.handshake_fault(arn)
        if injected is not None:
            return _refuse(injected)
        outcome = self._admit(request, arn, params)
        if isinstance(outcome, Refusal):
            return _refuse(outcome)
        connection, actions = outcome
        ws = web.WebSocketResponse(autoping=False, max_msg_size=self.config.max_frame_bytes)
        ws_ready = ws.can_prepare(request)
        if not ws_ready.ok:
            self.hub.disconnect(connection.id)
            return _refuse(Refusal(400, "BadRequest", "A WebSocket upgrade is required."))
        try:
            await ws.prepare(request)
        except ConnectionError:  # the client went away during the handshake
            self.hub.disconnect(connection.id)
            return ws
        self.sockets[connection.id] = _Socket(ws, request)
        await self.perform(actions)
        inbox: asyncio.Queue[tuple[float, str | bytes] | None] = asyncio.Queue()
        worker = asyncio.create_task(self._process(connection.id, arn, inbox))
        try:
            async for message in ws:
                now = self.config.monotonic()
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    inbox.put_nowait((now, message.data))
                elif message.type == WSMsgType.PING:
                    self.hub.activity(connection.id, now)
                    with contextlib.suppress(ConnectionError):  # a client already gone
                        await ws.pong(message.data)
                elif message.type == WSMsgType.PONG:
                    self.hub.activity(connection.id, now)
        finally:
            # What arrived before the close is still handled, as the service would.
            inbox.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            self.sockets.pop(connection.id, None)
            self.hub.disconnect(connection.id)
        return ws

    def _admit(
        self, request: web.Request, arn: str, params: dict[str, str]
    ) -> tuple[Any, list[HubAction]] | Refusal:
        region = arn.split(":")[3]
        try:
            verified = verify_presigned_request(
                method="GET",
                path=request.rel_url.raw_path,
                raw_query=request.rel_url.raw_query_string,
                host=request.headers.get("Host", ""),
                store=self.store,
                now=self.config.wall_clock(),
                service=SIGNING_SERVICE,
                region=region,
            )
        except AuthFailure as failure:
            return Refusal(failure.status, failure.error_type, failure.message)
        channel = self.registry.get(arn)
        if channel is None or channel.account_id != verified.identity.account_id:
            return Refusal(
                404,
                "ResourceNotFoundException",
                "The requested channel is not found or not active.",
            )
        client_id = params.get("X-Amz-ClientId")
        action = "ConnectAsViewer" if "X-Amz-ClientId" in params else "ConnectAsMaster"
        if not verified.identity.allows(f"kinesisvideo:{action}", arn):
            return Refusal(
                403, "AccessDeniedException", f"Not authorized to perform kinesisvideo:{action}."
            )
        return self.hub.admit(channel, client_id, self.config.monotonic())

    async def _process(
        self, connection_id: int, arn: str, inbox: asyncio.Queue[tuple[float, str | bytes] | None]
    ) -> None:
        while True:
            item = await inbox.get()
            if item is None:
                return
            arrived, data = item
            wait = arrived + self.hub.faults(arn).latency_seconds - self.config.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.perform(self.hub.receive(connection_id, data, self.config.monotonic()))

    # Admin API.

    async def admin(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        try:
            return await self._admin(request, tail)
        except (KeyError, ValueError) as problem:
            return web.json_response({"error": str(problem).strip("'\"")}, status=400)

    async def _admin(self, request: web.Request, tail: str) -> web.Response:
        method = request.method
        arn = request.query.get("channelArn", "")
        if tail == "health":
            return web.json_response({"ok": True})
        if tail == "channels" and method == "GET":
            return web.json_response(
                [
                    {
                        **channel.info(),
                        "connections": [
                            {
                                "id": c.id,
                                "role": c.role.value,
                                "clientId": c.client_id,
                                "messages": c.messages,
                            }
                            for c in self.hub.connections(channel.arn)
                        ],
                        "counters": self.hub.counters(channel.arn),
                    }
                    for channel in self.registry.all()
                ]
            )
        if tail == "counters" and method == "GET":
            return web.json_response(self.hub.counters(_known(self.registry, arn)))
        if tail == "recipient" and method == "GET":
            channel = _known(self.registry, arn)
            client_id = request.query.get("clientId")
            now = self.config.monotonic()
            return web.json_response(
                {
                    "sentBy": [m.to_dict() for m in self.hub.sent_by(channel, client_id)],
                    "sentAt": self.hub.sent_times(channel, client_id),
                    "deliveredTo": [e.to_dict() for e in self.hub.delivered_to(channel, client_id)],
                    "pending": [e.to_dict() for e in self.hub.pending(channel, client_id, now)],
                }
            )
        if tail == "faults":
            channel = _known(self.registry, arn)
            if method == "PUT":
                self.hub.set_faults(channel, Faults.from_dict(await request.json()))
            elif method == "DELETE":
                self.hub.set_faults(channel, Faults())
            elif method != "GET":
                return web.json_response({"error": "use GET, PUT or DELETE"}, status=405)
            return web.json_response(self.hub.faults(channel).to_dict())
        if tail == "session-credentials" and method == "POST":
            data = await request.json() if request.can_read_body else {}
            identity = self.store.issue_session(
                self.config.account_id,
                self.config.wall_clock(),
                float(data.get("DurationSeconds", 3600)),
            )
            return web.json_response(_credentials_json(identity))
        return web.json_response({"error": f"no admin route {method} {tail}"}, status=404)


def _known(registry: ChannelRegistry, arn: str) -> str:
    if registry.get(arn) is None:
        raise KeyError(f"channelArn: no channel {arn!r}")
    return arn


def _credentials_json(identity: Identity) -> dict[str, Any]:
    return {
        "AccessKeyId": identity.access_key_id,
        "SecretAccessKey": identity.secret_access_key,
        "SessionToken": identity.session_token,
        "Expiration": identity.expires_at,
    }


def _refuse(refusal: Refusal) -> web.Response:
    return _error_response(refusal.status, refusal.error_type, refusal.message)


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server here; it knows the bound port
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    port: int = sockets[0].getsockname()[1]
    return port


class Emulator:
    """The KVS signaling emulator, in-process: ``with Emulator() as emu: ...``.

    Starts on free loopback ports unless told otherwise; see :class:`EmulatorConfig`. Every
    method is safe to call from any thread.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.registry = ChannelRegistry()
        self.hub = SignalingHub(self.registry, self.config.quotas, self.config.second_master)
        self.store = CredentialStore()
        self.store.add(
            Identity(
                self.config.access_key_id,
                self.config.secret_access_key,
                self.config.account_id,
            )
        )
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None

    # Lifecycle.

    def start(self) -> Emulator:
        tls = None
        if self.config.wss_port is not None:
            folder = self.config.cert_dir
            if folder is None:
                self._tempdir = tempfile.TemporaryDirectory(prefix="kvs-emulator-")
                folder = Path(self._tempdir.name)
            tls = generate_tls_files(folder, (self.config.host, "localhost"))
        self._server = _Server(self.config, self.registry, self.hub, self.store, tls)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kvs-emulator", daemon=True
        )
        self._thread.start()
        self._call(self._server.start())
        return self

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return
        self._call(self._server.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, coroutine: Awaitable[_T]) -> _T:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(_as_coroutine(coroutine), self._loop)
        return future.result(timeout=30)

    @property
    def _running(self) -> _Server:
        if self._server is None:
            raise RuntimeError("the emulator is not running (use start() or a with block)")
        return self._server

    # Where it listens, and who it trusts.

    @property
    def control_endpoint(self) -> str:
        """The control plane (boto3 ``endpoint_url``): https when endpoint_scheme is wss."""
        return self._running.endpoints_for(Role.MASTER)["HTTPS"]

    @property
    def ws_endpoint(self) -> str:
        return self._running.base_url("ws")

    @property
    def wss_endpoint(self) -> str | None:
        return self._running.base_url("wss") if self._running.tls_port is not None else None

    @property
    def admin_endpoint(self) -> str:
        return self._running.base_url("http") + ADMIN_PREFIX

    @property
    def ca_cert_path(self) -> str | None:
        """The CA to trust for ``wss://`` and ``https://`` (None without a TLS listener)."""
        tls = self._running.tls
        return str(tls.ca_cert) if tls is not None else None

    @property
    def access_key_id(self) -> str:
        return self.config.access_key_id

    @property
    def secret_access_key(self) -> str:
        return self.config.secret_access_key

    @property
    def region(self) -> str:
        return self.config.region

    def describe(self) -> dict[str, Any]:
        """Endpoints and test credentials, as ``python -m kvs_local.emulator`` prints them."""
        return {
            "controlEndpoint": self.control_endpoint,
            "wsEndpoint": self.ws_endpoint,
            "wssEndpoint": self.wss_endpoint,
            "signalingEndpoint": self._running.endpoints_for(Role.MASTER)["WSS"],
            "adminEndpoint": self.admin_endpoint,
            "caCertPath": self.ca_cert_path,
            "region": self.config.region,
            "accountId": self.config.account_id,
            "accessKeyId": self.config.access_key_id,
            "secretAccessKey": self.config.secret_access_key,
        }

    # Channels and credentials.

    def create_channel(
        self,
        name: str,
        message_ttl_seconds: int = 60,
        *,
        region: str | None = None,
        account_id: str | None = None,
        creation_id: int | None = None,
    ) -> str:
        """Create a channel directly (no signature needed) and return its ARN."""
        channel = self.registry.create(
            name,
            region=region or self.config.region,
            account_id=account_id or self.config.account_id,
            now=self.config.wall_clock(),
            message_ttl_seconds=message_ttl_seconds,
            creation_id=creation_id,
        )
        return channel.arn

    def delete_channel(self, channel_arn: str) -> None:
        """Delete a channel; its connections are closed."""
        if self.registry.delete(channel_arn) is not None:
            server = self._running
            self._call(server.perform(self.hub.channel_deleted(channel_arn)))

    def add_credentials(
        self,
        access_key_id: str,
        secret_access_key: str,
        *,
        session_token: str | None = None,
        account_id: str | None = None,
        allowed_actions: Iterable[str] = (ALL_ACTIONS,),
        allowed_resources: Iterable[str] = ("*",),
    ) -> None:
        """Accept another key, optionally limited to some actions and resource ARN patterns."""
        self.store.add(
            Identity(
                access_key_id,
                secret_access_key,
                account_id or self.config.account_id,
                session_token=session_token,
                allowed_actions=frozenset(allowed_actions),
                allowed_resources=tuple(allowed_resources),
            )
        )

    def issue_session_credentials(self, duration_seconds: float = 3600) -> tuple[str, str, str]:
        """Temporary credentials (key id, secret, session token), as Lambda's role gets them."""
        identity = self.store.issue_session(
            self.config.account_id, self.config.wall_clock(), duration_seconds
        )
        assert identity.session_token is not None
        return identity.access_key_id, identity.secret_access_key, identity.session_token

    # Faults and inspection.

    def set_faults(self, channel_arn: str, faults: Faults) -> None:
        self.hub.set_faults(channel_arn, faults)

    def clear_faults(self, channel_arn: str) -> None:
        self.hub.set_faults(channel_arn, Faults())

    def counters(self, channel_arn: str) -> dict[str, int]:
        """The channel's counters: connects, throttling per quota, deliveries, closes, faults."""
        return self.hub.counters(channel_arn)

    def sent_by(self, channel_arn: str, client_id: str | None) -> list[ClientMessage]:
        """What the service accepted from a client (``None``: the master), in order."""
        return self.hub.sent_by(channel_arn, client_id)

    def sent_times(self, channel_arn: str, client_id: str | None) -> list[float]:
        """When the service accepted each message :meth:`sent_by` lists (``config.monotonic``
        seconds, in the same order)."""
        return self.hub.sent_times(channel_arn, client_id)

    def delivered_to(self, channel_arn: str, client_id: str | None) -> list[ServerEvent]:
        """What the service delivered to a client (``None``: the master), in order."""
        return self.hub.delivered_to(channel_arn, client_id)

    def pending(self, channel_arn: str, client_id: str | None) -> list[ServerEvent]:
        """What is held for a client that is not connected (within the channel's TTL)."""
        return self.hub.pending(channel_arn, client_id, self.config.monotonic())


async def _as_coroutine(awaitable: Awaitable[_T]) -> _T:
    return await awaitable
