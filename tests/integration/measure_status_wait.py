"""Measure how long after a send a rejection (STATUS_RESPONSE) arrives, against the emulator.

``python -m tests.integration.measure_status_wait [--samples N]`` prints one JSON line per
injected latency: the time from writing an invalid frame to reading its STATUS_RESPONSE
(median, p95, max, in ms). docs/contract.md cites the figures to justify STATUS_WAIT_SECONDS.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

import websocket
from botocore.credentials import ReadOnlyCredentials

from kvs_relay.presign import presign_connect_url
from kvs_relay.protocol import MessageType, parse_server_event


def measure(latency: float, samples: int) -> dict[str, float]:
    from kvs_local.emulator import Emulator, EmulatorConfig, Faults

    with Emulator(EmulatorConfig(wss_port=None, endpoint_scheme="ws")) as emu:
        arn = emu.create_channel(f"measure-{uuid.uuid4().hex[:8]}")
        emu.set_faults(arn, Faults(latency_seconds=latency))
        credentials = ReadOnlyCredentials(emu.access_key_id, emu.secret_access_key, None)
        url = presign_connect_url(emu.ws_endpoint, arn, "measurer", credentials, "us-west-2")
        ws = websocket.create_connection(url, timeout=10)
        times: list[float] = []
        try:
            for n in range(samples):
                correlation = f"m{n}"
                # Invalid base64: the service refuses it and answers with a STATUS_RESPONSE.
                frame = json.dumps(
                    {"action": "SDP_OFFER", "messagePayload": "%%%", "correlationId": correlation}
                )
                started = time.perf_counter()
                ws.send(frame)
                while True:
                    event = parse_server_event(ws.recv())
                    if (
                        event.message_type is MessageType.STATUS_RESPONSE
                        and event.status_response
                        and event.status_response.correlation_id == correlation
                    ):
                        break
                times.append((time.perf_counter() - started) * 1000)
                time.sleep(0.25)  # stay well under the 5/s offer quota
        finally:
            ws.close()
    ordered = sorted(times)
    return {
        "latency_ms": latency * 1000,
        "samples": samples,
        "median_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 2),
        "max_ms": round(ordered[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--latencies", default="0,0.05,0.1,0.25")
    args = parser.parse_args()
    for latency in (float(x) for x in args.latencies.split(",")):
        print(json.dumps(measure(latency, args.samples)))


if __name__ == "__main__":
    main()
