"""Recording (issue 14): frames per second the MCAP writer takes, with each compression."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from harness import SIZES, frames_for, verdict


def recording_rate(frame: np.ndarray, compression: str, seconds: float) -> float:
    """Frames/s the MCAP writer takes (frames varying a little, as a camera's do)."""
    from viewer.recording.messages import Description
    from viewer.recording.sinks import McapSink
    from viewer.stream.frames import Frame

    desc = Description("bench", frame.shape, "uint8", "BGR", 4096)
    noisy = [np.clip(frame.astype(np.int16) + k, 0, 255).astype(np.uint8) for k in (-3, 0, 3)]
    with tempfile.TemporaryDirectory(prefix="shmview-bench-rec-") as folder:
        sink = McapSink(Path(folder) / "rate.mcap", compression)
        try:
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                sink.write(desc, Frame(noisy[n % 3], n, time.time_ns()))
                n += 1
            sink.flush()
            return n / (time.perf_counter() - start)
        finally:
            sink.close()


def rows(lines: list[str], phase: float) -> None:
    for compression in ("zstd", "lz4", "none"):
        rates = [recording_rate(frames_for(shape)[0], compression, 4 * phase + 1) for shape in SIZES.values()]
        lines.append(
            f"| shmview record to MCAP ({compression}): frames/s the writer takes | {rates[0]:,.0f}/s | "
            f"{rates[1]:,.0f}/s | | ≥ 60 / ≥ 30 with zstd | "
            f"{verdict(rates[0] >= 60 and rates[1] >= 30) if compression == 'zstd' else ''} |"
        )
