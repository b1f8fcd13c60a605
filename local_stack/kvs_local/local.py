"""``python -m kvs_local.local`` (``make local``): the whole system on this machine until Ctrl-C.

Brings up the local stack (a moto server with template.yaml's queue, dead-letter queue and topic;
the KVS signaling emulator), starts the event-source runner that invokes the function as the
template declares it, prints one JSON line with everything your own peers and producers need
(endpoints, credentials, CA, queue URLs, topic ARN, channels), writes the same to
``--state-file`` for ``python -m kvs_local.invoke --stack-state``, and runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from kvs_local.demo import function_invoke
from kvs_local.invoke import DEFAULT_BUILD_DIR, local_function
from kvs_local.sqs_event_source import SqsEventSourceRunner
from kvs_local.stack import LocalStack

DEFAULT_STATE_FILE = Path(".local-stack/state.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kvs_local.local", description=__doc__)
    parser.add_argument("--mode", choices=["rie", "in-process"], default="rie")
    parser.add_argument("--config-env", default="default")
    parser.add_argument(
        "--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE", help="template"
    )
    parser.add_argument(
        "--channel", action="append", default=[], metavar="NAME", help="create this channel"
    )
    parser.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE)
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.parameter_overrides)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's access log
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with LocalStack(
        config_env=args.config_env,
        parameter_overrides=overrides,
        channels=args.channel or ["demo"],
    ) as stack:
        state = stack.snapshot()
        function = local_function(
            state, build_dir=DEFAULT_BUILD_DIR if args.mode == "rie" else None
        )
        runner = function.runner(args.mode)
        runner.start()
        events = SqsEventSourceRunner(
            stack.client("sqs"), state.event_source_settings(), function_invoke(runner)
        )
        events.start()
        try:
            described = stack.state()
            args.state_file.parent.mkdir(parents=True, exist_ok=True)
            args.state_file.write_text(json.dumps(described, indent=2))
            print(json.dumps(described), flush=True)
            print(
                f"\nLocal stack up ({args.mode}). Enqueue with:\n"
                f"  AWS_ENDPOINT_URL_SQS={state.endpoints.moto} "
                f"AWS_ACCESS_KEY_ID={state.access_key_id} "
                f"AWS_SECRET_ACCESS_KEY={state.secret_access_key} "
                f"AWS_DEFAULT_REGION={state.region} \\\n"
                f"  .venv/bin/python -m kvs_relay_producer "
                f"--queue-url {state.event_source_settings().queue_url} requests.jsonl\n"
                f"State written to {args.state_file}. Ctrl-C stops everything.",
                file=sys.stderr,
                flush=True,
            )
            while not stop.wait(0.5):
                pass
        finally:
            events.stop()
            runner.stop()
    print(json.dumps({"stopped": True}), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
