"""The benchmark's plot: wall time and GB-seconds per 1,000 messages, relay vs baseline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt

from bench.scenarios import ScenarioResult

RELAY_COLOUR = "#1f77b4"
BASELINE_COLOUR = "#bbbbbb"
SHORT_TITLES = {
    "ten_channels": "10 answers,\n10 channels",
    "one_channel_answers": "answers,\none channel",
    "one_viewer_ice": "ICE candidates,\none viewer",
    "end_to_end": "end to end\n(queue, runner, SNS)",
}


def draw(results: Sequence[ScenarioResult], path: Path, subtitle: str) -> None:
    """Two panels of grouped bars (log scale), each bar pair labelled with the relay's gain."""
    labels = [SHORT_TITLES.get(r.key, r.key) for r in results]
    panels = [
        (
            "wall time (s)",
            [r.relay.wall_seconds for r in results],
            [r.baseline.wall_seconds for r in results],
        ),
        (
            "Lambda GB-s per 1,000 messages",
            [r.relay.gb_seconds_per_1000 or 0.0 for r in results],
            [r.baseline.gb_seconds_per_1000 or 0.0 for r in results],
        ),
    ]
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    positions = list(range(len(results)))
    width = 0.38
    for axis, (title, relay, baseline) in zip(axes, panels, strict=True):
        axis.bar(
            [p - width / 2 for p in positions], relay, width, label="relay", color=RELAY_COLOUR
        )
        axis.bar(
            [p + width / 2 for p in positions],
            baseline,
            width,
            label="baseline (naive)",
            color=BASELINE_COLOUR,
        )
        axis.set_yscale("log")
        axis.set_title(title)
        axis.set_xticks(positions, labels, fontsize=8)
        axis.grid(axis="y", which="both", alpha=0.3)
        for position, mine, theirs in zip(positions, relay, baseline, strict=True):
            if mine > 0 and theirs > 0:
                axis.annotate(
                    f"{theirs / mine:.1f}x",
                    (position, max(mine, theirs)),
                    textcoords="offset points",
                    xytext=(0, 4),
                    ha="center",
                    fontsize=8,
                )
        axis.margins(y=0.25)
    axes[0].legend(loc="upper left", fontsize=8)
    figure.suptitle(f"kvs-signaling-relay vs the naive sender ({subtitle})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)
