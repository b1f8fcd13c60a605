"""``python -m kvs_relay_producer --queue-url URL [FILE]``: enqueue requests from JSON lines.

Reads one request per line (or one JSON array) from FILE or stdin, validates them all with the
relay's model, enqueues them, and prints a JSON report. Exit status: 0 all enqueued, 1 some not
enqueued, 2 invalid input (nothing sent). AWS settings come from the usual places (profile,
environment); ``--endpoint-url`` or ``AWS_ENDPOINT_URL_SQS`` points it at the local stack.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any, TextIO

import boto3

from kvs_relay_producer.client import InvalidRequest, SignalingProducer


def read_requests(stream: TextIO) -> list[Any]:
    text = stream.read()
    stripped = text.strip()
    if stripped.startswith("["):
        loaded = json.loads(stripped)
        if not isinstance(loaded, list):
            raise ValueError("expected a JSON array of requests")
        return loaded
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kvs_relay_producer", description=__doc__)
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--region", default=None)
    parser.add_argument("--endpoint-url", default=None, help="SQS endpoint (the local stack)")
    parser.add_argument("--fifo", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("file", nargs="?", type=argparse.FileType("r"), default=sys.stdin)
    args = parser.parse_args(argv)
    try:
        requests = read_requests(args.file)
    except ValueError as exc:
        print(json.dumps({"error": f"input: {exc}"}), file=sys.stderr)
        return 2
    sqs = boto3.session.Session().client(
        "sqs", region_name=args.region, endpoint_url=args.endpoint_url
    )
    producer = SignalingProducer(sqs, args.queue_url, fifo=args.fifo)
    try:
        report = producer.send(requests)
    except InvalidRequest as invalid:
        print(
            json.dumps(
                {
                    "error": "invalid request, nothing sent",
                    "index": invalid.index,
                    "violations": [asdict(v) for v in invalid.violations],
                }
            ),
            file=sys.stderr,
        )
        return 2
    print(
        json.dumps(
            {
                "enqueued": [asdict(e) for e in report.enqueued],
                "failed": [asdict(f) for f in report.failed],
                "calls": report.calls,
            }
        )
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
