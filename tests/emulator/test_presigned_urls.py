"""Presigned connect URLs: every vector the official JS SDK signed verifies at its signedAt time,
and any one changed character is refused. Over the network, with websocket-client, against an
emulator whose clock is fixed at the vector's signing time (the one thing a server cannot
produce: an old "now")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import websocket

from kvs_local.emulator import Emulator, EmulatorConfig
from kvs_local.emulator.sigv4_verify import split_query
from tests.conftest import load_presign_vectors

VECTORS = load_presign_vectors()


def signed_at(vector: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(vector["signedAt"].replace("Z", "+00:00")).timestamp()


class VectorService:
    """An emulator that knows the vector's keys and channel, its clock set by the test."""

    def __init__(self, vector: dict[str, Any]) -> None:
        self.vector = vector
        self.now = signed_at(vector)
        arn = vector["query"]["X-Amz-ChannelARN"]
        _, _, _, region, account, resource = arn.split(":", 5)
        self.emulator = Emulator(EmulatorConfig(region=region, wall_clock=lambda: self.now))
        self.emulator.start()
        self.emulator.add_credentials(
            vector["accessKeyId"],
            vector["secretAccessKey"],
            session_token=vector["sessionToken"],
            account_id=account,
        )
        _, name, creation_id = resource.split("/")
        created = self.emulator.create_channel(
            name, region=region, account_id=account, creation_id=int(creation_id)
        )
        assert created == arn

    def handshake(self, url: str) -> int:
        """101 when accepted, else the refused handshake's HTTP status.

        The vector's URL names the real KVS host; the request goes to the emulator on loopback
        with that Host header, exactly as the signature covers it.
        """
        parts = urlsplit(url)
        local = f"{self.emulator.ws_endpoint}{parts.path or '/'}?{parts.query}"
        try:
            ws = websocket.create_connection(local, timeout=3, host=parts.netloc)
        except websocket.WebSocketBadStatusException as refused:
            return int(refused.status_code)
        ws.close()
        return 101


@pytest.fixture(params=VECTORS, ids=[v["name"] for v in VECTORS])
def service(request: pytest.FixtureRequest) -> Iterator[VectorService]:
    running = VectorService(request.param)
    yield running
    running.emulator.stop()


def test_the_vector_verifies_at_its_signing_time(service: VectorService) -> None:
    assert service.handshake(service.vector["url"]) == 101
    role = "viewer" if "X-Amz-ClientId" in service.vector["query"] else "master"
    counters = service.emulator.counters(service.vector["query"]["X-Amz-ChannelARN"])
    assert (counters["connects"], counters[f"connects_{role}"]) == (1, 1)


def test_x_amz_expires_is_honoured(service: VectorService) -> None:
    expires = service.vector["expiresSeconds"]
    service.now = signed_at(service.vector) + expires - 1
    assert service.handshake(service.vector["url"]) == 101
    service.now = signed_at(service.vector) + expires + 1
    assert service.handshake(service.vector["url"]) == 403


def test_a_url_signed_in_the_future_is_refused(service: VectorService) -> None:
    service.now = signed_at(service.vector) - 301  # beyond the five minutes of clock skew
    assert service.handshake(service.vector["url"]) == 403


def _same_request(original: str, mutated: str) -> bool:
    """Whether two URLs say the same to the service (a percent-escape's hex case, say)."""
    a, b = urlsplit(original), urlsplit(mutated)
    return (a.netloc, a.path or "/", split_query(a.query)) == (
        b.netloc,
        b.path or "/",
        split_query(b.query),
    )


def test_any_one_changed_character_is_refused(service: VectorService) -> None:
    url = service.vector["url"]
    start = url.index("://") + 3  # the scheme never reaches the server; everything after does
    accepted = []
    checked = 0
    for index in range(start, len(url)):
        replacement = "A" if url[index] != "A" else "B"
        mutated = url[:index] + replacement + url[index + 1 :]
        if _same_request(url, mutated):
            continue
        checked += 1
        status = service.handshake(mutated)
        if status == 101:
            accepted.append(index)
        else:
            assert status in (400, 403, 404), (index, status)
    assert accepted == []
    assert checked > 400  # every character of host, path and query, bar no-op changes
