"""Metadata and histograms (issue 13): write() with a detection list against write() without,
and a frame's histogram."""

from __future__ import annotations

import functools

import numpy as np
from harness import per_call, us, verdict

# ---- metadata, histogram (issue 13) ---------------------------------------------------------

DETECTIONS = {"detections": [{"label": "person", "score": 0.87, "box": [12 + i, 40, 64, 128]} for i in range(20)]}


def histogram_cost(frame: np.ndarray, rounds: int, seconds: float) -> float:
    from viewer.view.histogram import histogram

    return per_call(functools.partial(histogram, frame, "BGR", (0, 255)), rounds, seconds)


def rows(lines: list[str], res: dict[str, dict[str, float]]) -> None:
    small, big = res["480x640x3"], res["1080x1920x3"]
    x = small["write_meta"] / small["write"]
    lines.append(
        f"| FrameWriter.write with a 20-box detection list as metadata | {us(small['write_meta'])} | "
        f"{us(big['write_meta'])} | {x:.2f}x write() without | ≤ 1.1x | {verdict(x <= 1.1)} |"
    )
    lines.append(
        f"| histogram of a frame (3 channels) | {us(small['hist'])} | {us(big['hist'])} | "
        f"| < 5 ms at 1080x1920x3 | {verdict(big['hist'] < 0.005)} |"
    )
