"""Real WebRTC peers (aiortc) that signal through a KVS signaling service.

The demo's two ends: :class:`DemoViewer` connects as a VIEWER, sends an SDP offer and waits for
the answer; :class:`AnsweringService` connects as the MASTER, receives offers, and makes real SDP
answers that it hands to a callback (the demo enqueues them for the relay). Once the answer is
applied, ICE runs on loopback and each side sends one data-channel message to the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aioice.ice
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from botocore.credentials import ReadOnlyCredentials

from kvs_relay.presign import presign_connect_url
from kvs_relay.protocol import (
    Action,
    ClientMessage,
    MessageType,
    ServerEvent,
    decode_json_payload,
    encode_sdp_payload,
    parse_server_event,
)

DATA_CHANNEL_LABEL = "kvs-relay-demo"


@contextlib.contextmanager
def loopback_ice() -> Iterator[None]:
    """Gather ICE host candidates on 127.0.0.1 only.

    aioice lists every interface except loopback; on our machines traffic may go to loopback
    only, so the demo swaps the address lister for the duration (the one patch it needs).
    """
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


@dataclass
class Timeline:
    """What happened when, in seconds since the timeline began (printed by the demo)."""

    started: float = field(default_factory=time.monotonic)
    entries: list[tuple[float, str]] = field(default_factory=list)

    def mark(self, what: str) -> None:
        self.entries.append((time.monotonic() - self.started, what))

    def render(self) -> str:
        return "\n".join(f"{at * 1000:8.0f} ms  {what}" for at, what in self.entries)


@dataclass(frozen=True)
class SignalingTarget:
    """Where and as whom a peer connects."""

    endpoint: str  # the WSS (or ws://) endpoint from GetSignalingChannelEndpoint
    channel_arn: str
    region: str
    credentials: ReadOnlyCredentials
    ca_cert_path: str | None = None

    def url(self, client_id: str | None) -> str:
        return presign_connect_url(
            self.endpoint, self.channel_arn, client_id, self.credentials, self.region
        )

    def ssl_context(self) -> ssl.SSLContext | bool:
        if self.ca_cert_path is None:
            return True
        return ssl.create_default_context(cafile=self.ca_cert_path)


class SignalingSocket:
    """An asyncio signaling WebSocket: send client messages, receive server events."""

    def __init__(self, target: SignalingTarget, client_id: str | None) -> None:
        self._target = target
        self._client_id = client_id
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> SignalingSocket:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(
            self._target.url(self._client_id), ssl=self._target.ssl_context()
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def send(self, message: ClientMessage) -> None:
        assert self._ws is not None
        await self._ws.send_str(message.to_json())

    async def next_event(self, wanted: MessageType, timeout: float) -> ServerEvent:
        """The next event of type ``wanted`` (others are skipped), or TimeoutError."""
        assert self._ws is not None
        async with asyncio.timeout(timeout):
            async for frame in self._ws:
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    break
                event = parse_server_event(frame.data)
                if event.message_type is wanted:
                    return event
        raise ConnectionError(f"signaling connection closed before a {wanted.value} arrived")


def _sdp_of(event: ServerEvent, kind: str) -> str:
    body: Any = decode_json_payload(event.message_payload or "")
    if not isinstance(body, dict) or body.get("type") != kind or "sdp" not in body:
        raise ValueError(f"{event.message_type.value} payload is not an SDP {kind}")
    return str(body["sdp"])


async def _wait_open(channel: RTCDataChannel, timeout: float) -> None:
    if channel.readyState == "open":
        return
    opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_open() -> None:
        if not opened.done():
            opened.set_result(None)

    channel.on("open", on_open)
    await asyncio.wait_for(opened, timeout)


class DemoViewer:
    """A viewer that offers a data channel and waits for the answer through signaling."""

    def __init__(self, target: SignalingTarget, client_id: str, timeline: Timeline) -> None:
        self.client_id = client_id
        self._target = target
        self._timeline = timeline
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._channel = self._pc.createDataChannel(DATA_CHANNEL_LABEL)
        self._reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._channel.on("message", self._on_message)

    def _on_message(self, message: object) -> None:
        if not self._reply.done():
            self._reply.set_result(str(message))

    async def run(self, answer_timeout: float = 30.0) -> str:
        """Offer, wait for the answer, open the channel, and return the master's reply."""
        async with SignalingSocket(self._target, self.client_id) as signaling:
            self._timeline.mark(f"viewer {self.client_id} connected to signaling")
            await self._pc.setLocalDescription(await self._pc.createOffer())
            await signaling.send(
                ClientMessage(
                    Action.SDP_OFFER,
                    encode_sdp_payload("offer", self._pc.localDescription.sdp),
                    correlation_id=f"{self.client_id}-offer",
                )
            )
            self._timeline.mark("viewer sent SDP_OFFER")
            answer = await signaling.next_event(MessageType.SDP_ANSWER, answer_timeout)
            sender = answer.sender_client_id or "the master"
            self._timeline.mark(f"viewer received SDP_ANSWER from {sender}")
            await self._pc.setRemoteDescription(
                RTCSessionDescription(_sdp_of(answer, "answer"), "answer")
            )
        await _wait_open(self._channel, answer_timeout)
        self._timeline.mark("data channel open (viewer side)")
        self._channel.send(f"hello from viewer {self.client_id}")
        reply = await asyncio.wait_for(self._reply, answer_timeout)
        self._timeline.mark(f"viewer got over the data channel: {reply!r}")
        return reply

    async def close(self) -> None:
        await self._pc.close()


AnswerSink = Callable[[str, str], Awaitable[None]]
"""Called with (viewer client id, SDP answer text): the demo enqueues it for the relay."""


class AnsweringService:
    """The master side: receives offers, answers with aiortc, echoes data-channel messages."""

    def __init__(self, target: SignalingTarget, on_answer: AnswerSink, timeline: Timeline) -> None:
        self._target = target
        self._on_answer = on_answer
        self._timeline = timeline
        self._peers: list[RTCPeerConnection] = []
        self.received: list[str] = []

    async def answer_one(self, offer_timeout: float = 30.0) -> str:
        """Wait for one SDP offer, answer it through ``on_answer``; return the viewer's id."""
        async with SignalingSocket(self._target, None) as signaling:
            self._timeline.mark("answering service connected to signaling as MASTER")
            offer = await signaling.next_event(MessageType.SDP_OFFER, offer_timeout)
        viewer_id = offer.sender_client_id or ""
        self._timeline.mark(f"answering service received SDP_OFFER from {viewer_id}")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._peers.append(pc)
        pc.on("datachannel", self._on_datachannel)
        await pc.setRemoteDescription(RTCSessionDescription(_sdp_of(offer, "offer"), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        self._timeline.mark("answering service made an SDP answer")
        await self._on_answer(viewer_id, pc.localDescription.sdp)
        return viewer_id

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        def on_message(message: object) -> None:
            self.received.append(str(message))
            self._timeline.mark(f"master got over the data channel: {str(message)!r}")
            channel.send("hello from the answering service")

        channel.on("message", on_message)

    async def close(self) -> None:
        for pc in self._peers:
            await pc.close()
