"""The demo's path, not only its script: a real WebRTC exchange whose SDP answer goes through the
producer, the queue, the runner, the function (under the Lambda RIE) and the emulator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kvs_local.demo import VIEWER_ID, main, run_demo

BUILD = Path(__file__).resolve().parents[2] / ".aws-sam" / "build"

needs_build = pytest.mark.skipif(
    not BUILD.is_dir() and os.environ.get("KVS_RELAY_REQUIRE_BUILD") != "1",
    reason=".aws-sam/build is missing: run `make build` first (make test does)",
)


@needs_build
def test_the_data_channel_opens_with_an_answer_the_relay_delivered() -> None:
    result = run_demo(mode="rie", timeout=45)
    assert result.error is None
    assert result.opened
    assert result.viewer_heard == "hello from the answering service"
    assert result.master_heard == [f"hello from viewer {VIEWER_ID}"]
    [outcome] = result.outcomes
    assert (outcome["status"], outcome["action"], outcome["role"]) == (
        "SENT",
        "SDP_ANSWER",
        "MASTER",
    )
    assert outcome["correlationId"] == f"answer-{VIEWER_ID}"
    steps = [what for _, what in result.timeline.entries]
    assert steps.index("answering service made an SDP answer") < steps.index(
        "data channel open (viewer side)"
    )


def test_the_demo_command_exits_zero_and_prints_the_timeline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--mode", "in-process"]) == 0
    printed = capsys.readouterr().out
    assert "Outcomes published on SNS:" in printed
    assert '"status": "SENT"' in printed
    assert "Data channel open" in printed
