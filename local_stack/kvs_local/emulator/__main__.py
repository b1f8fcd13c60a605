"""``python -m kvs_local.emulator``: run the signaling emulator until SIGINT or SIGTERM.

Prints one JSON line with its endpoints and test credentials once it listens.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from kvs_local.emulator.config import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_ACCOUNT_ID,
    DEFAULT_REGION,
    DEFAULT_SECRET_ACCESS_KEY,
    EmulatorConfig,
    SecondMasterPolicy,
)
from kvs_local.emulator.server import Emulator
from kvs_relay.quotas import DEFAULT_QUOTAS, SignalingQuotas

QUOTA_NAMES = [f.name for f in dataclasses.fields(SignalingQuotas)]


def _quota(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    if name not in QUOTA_NAMES:
        raise argparse.ArgumentTypeError(
            f"unknown quota {name!r} (known: {', '.join(QUOTA_NAMES)})"
        )
    try:
        return name, float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"quota {name} needs a number, got {value!r}") from exc


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m kvs_local.emulator",
        description="A local Kinesis Video Streams signaling service (control plane + WebSocket).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="http:// and ws:// (0: a free port)")
    parser.add_argument(
        "--wss-port",
        type=int,
        default=None,
        help="https:// and wss:// (0: a free port; off if unset)",
    )
    parser.add_argument(
        "--endpoint-scheme",
        choices=["ws", "wss"],
        default=None,
        help="what GetSignalingChannelEndpoint returns (default: wss when --wss-port is set)",
    )
    parser.add_argument("--region", default=DEFAULT_REGION)
    parser.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID)
    parser.add_argument("--access-key-id", default=DEFAULT_ACCESS_KEY_ID)
    parser.add_argument("--secret-access-key", default=DEFAULT_SECRET_ACCESS_KEY)
    parser.add_argument("--cert-dir", type=Path, default=None, help="where ca.pem is written")
    parser.add_argument(
        "--second-master",
        choices=[p.value for p in SecondMasterPolicy],
        default=SecondMasterPolicy.LATEST_WINS.value,
    )
    parser.add_argument(
        "--quota",
        type=_quota,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"override a signaling quota ({', '.join(QUOTA_NAMES)})",
    )
    parser.add_argument(
        "--channel", action="append", default=[], metavar="NAME", help="create this channel"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scheme = args.endpoint_scheme or ("wss" if args.wss_port is not None else "ws")
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        wss_port=args.wss_port,
        endpoint_scheme=scheme,
        region=args.region,
        account_id=args.account_id,
        access_key_id=args.access_key_id,
        secret_access_key=args.secret_access_key,
        cert_dir=args.cert_dir,
        second_master=SecondMasterPolicy(args.second_master),
        quotas=dataclasses.replace(DEFAULT_QUOTAS, **dict(args.quota)),
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with Emulator(config) as emulator:
        channels = {name: emulator.create_channel(name) for name in args.channel}
        print(json.dumps({**emulator.describe(), "channels": channels}), flush=True)
        while not stop.wait(0.5):
            pass
    print(json.dumps({"stopped": True}), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
