"""The signaling WebSocket, as a thin adapter over websocket-client.

The delivery engine sees only :class:`Connector` and :class:`SignalingConnection`; this module is
the few lines of I/O behind them. TLS trust follows ``AWS_CA_BUNDLE`` (the same CA file botocore
uses), so a local emulator's CA works for the control plane and the WebSocket alike.
"""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass
from typing import Protocol

import websocket


class ConnectFailure(Exception):
    """The WebSocket could not be opened. ``status`` is the refused handshake's HTTP status."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    @property
    def permanent(self) -> bool:
        """400 and 404 (bad request, no such channel) will not heal; anything else may."""
        return self.status in (400, 404)


class ConnectionLost(Exception):
    """The connection closed (service close, drop, or a close frame)."""


@dataclass(frozen=True, slots=True)
class Pong:
    """The service answered a ping: it has read every frame written before that ping."""

    payload: bytes


class SignalingConnection(Protocol):
    """An open signaling WebSocket."""

    def send(self, frame: str) -> None:
        """Send one text frame; raises :class:`ConnectionLost`."""
        ...

    def ping(self, payload: bytes) -> None:
        """Send a ping; its :class:`Pong` comes back through :meth:`receive`."""
        ...

    def receive(self, timeout: float) -> str | Pong | None:
        """The next text frame or pong, or None after ``timeout`` s; raises
        :class:`ConnectionLost`."""
        ...

    def close(self) -> None: ...


class Connector(Protocol):
    """Opens signaling WebSockets to presigned URLs."""

    def connect(self, url: str) -> SignalingConnection:
        """Open a connection; raises :class:`ConnectFailure`."""
        ...


_MIN_TIMEOUT = 0.001  # websocket-client treats 0 as non-blocking, which TLS reads dislike


class WebSocketConnection:
    """A :class:`SignalingConnection` on a ``websocket.WebSocket``."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self._ws = ws
        self._closed = False  # once a close is seen, nothing more may be written

    def send(self, frame: str) -> None:
        if self._closed or not self._ws.connected:
            raise ConnectionLost("closed")
        try:
            self._ws.send(frame)
        except (websocket.WebSocketException, OSError) as exc:
            self._closed = True
            raise ConnectionLost(type(exc).__name__) from exc

    def ping(self, payload: bytes) -> None:
        if self._closed or not self._ws.connected:
            raise ConnectionLost("closed")
        try:
            self._ws.ping(payload)
        except (websocket.WebSocketException, OSError) as exc:
            self._closed = True
            raise ConnectionLost(type(exc).__name__) from exc

    def receive(self, timeout: float) -> str | Pong | None:
        if self._closed or not self._ws.connected:
            raise ConnectionLost("closed")
        self._ws.settimeout(max(timeout, _MIN_TIMEOUT))
        try:
            # Control frames too: a pong tells which writes the service has read. (websocket-
            # client answers the service's pings itself.)
            opcode, data = self._ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return None
        except TimeoutError:
            return None
        except (websocket.WebSocketException, OSError) as exc:
            self._closed = True
            raise ConnectionLost(type(exc).__name__) from exc
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self._closed = True
            raise ConnectionLost("close frame")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)
        if opcode == websocket.ABNF.OPCODE_PONG:
            return Pong(bytes(data))
        return None  # pings (answered already) and binary frames (not signaling)

    def close(self) -> None:
        self._closed = True
        # Closing a dead socket fails harmlessly: nothing is left to release.
        with contextlib.suppress(websocket.WebSocketException, OSError):
            self._ws.close(timeout=0.5)


class WebSocketConnector:
    """Opens :class:`WebSocketConnection` s with a connect timeout and optional CA bundle."""

    def __init__(self, connect_timeout: float, ca_bundle: str | None = None) -> None:
        self._timeout = connect_timeout
        # One TLS context for every connection of the container: loading a trust store costs
        # about 15 ms of CPU, which websocket-client would otherwise spend on each connect.
        # A plain client context (hostname and certificate checked), as websocket-client builds
        # one itself: no VERIFY_X509_STRICT, which create_default_context adds on 3.13.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca_bundle:
            context.load_verify_locations(cafile=ca_bundle)
        else:
            context.load_default_certs()
            with contextlib.suppress(ImportError):  # websocket-client's own choice, when present
                import certifi

                context.load_verify_locations(cafile=certifi.where())
        self._sslopt: dict[str, object] = {"context": context}

    def connect(self, url: str) -> SignalingConnection:
        try:
            ws = websocket.create_connection(
                url, timeout=self._timeout, sslopt=self._sslopt, enable_multithread=True
            )
        except websocket.WebSocketBadStatusException as exc:
            # Only the status: the exception text may quote headers, never the (signed) URL.
            raise ConnectFailure(
                f"handshake refused: HTTP {exc.status_code}", exc.status_code
            ) from exc
        except (websocket.WebSocketException, OSError) as exc:
            raise ConnectFailure(f"connect failed: {type(exc).__name__}") from exc
        return WebSocketConnection(ws)
