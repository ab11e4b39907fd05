"""Per-call cost of FrameWriter.write() and FrameReader.read() against one np.copyto, for one
or more source trees side by side (issue 20's hot path).

    .venv/bin/python bench/hot_path.py [--tree DIR ...] [--rounds N]

Each tree (default: this one) is measured in its own child process with PYTHONPATH=DIR; the
trees take turns, round after round, so they share the machine's moods, and every ratio is
taken inside one child against a copyto it timed in the same breath. Prints the median of
each ratio over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

SHAPES = {"480x640x3": (480, 640, 3), "1x1x3": (1, 1, 3)}
KEYS = ("write", "read_out", "read")


def _per_call(fns: dict[str, Callable[[], object]], rounds: int, seconds: float) -> dict[str, float]:
    """Median over rounds of the mean seconds per call, the functions' rounds taken in turn."""
    calls = {}
    for key, fn in fns.items():
        n = 1
        while True:
            t = time.perf_counter()
            for _ in range(n):
                fn()
            if (elapsed := time.perf_counter() - t) > 0.02:
                calls[key] = max(1, int(n * seconds / elapsed))
                break
            n *= 2
    times: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            t = time.perf_counter()
            for _ in range(calls[key]):
                fn()
            times[key].append((time.perf_counter() - t) / calls[key])
    return {key: statistics.median(v) for key, v in times.items()}


def child() -> None:
    import numpy as np

    from viewer import FrameReader, FrameWriter

    result = {}
    for label, shape in SHAPES.items():
        frame, dst = np.random.default_rng(0).integers(0, 256, shape, np.uint8), np.empty(shape, np.uint8)
        with FrameWriter("hot-path", shape) as w, FrameReader("hot-path") as r:
            w.write(frame)
            t = _per_call(
                {
                    "copyto": partial(np.copyto, dst, frame),
                    "write": partial(w.write, frame),
                    "read_out": partial(r.read, out=dst),
                    "read": r.read,
                },
                5,
                0.2,
            )
        result[label] = t
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=Path, help="a source tree to measure (repeatable)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    trees = args.tree or [Path(__file__).resolve().parent.parent]
    runs: dict[Path, list[dict]] = {tree: [] for tree in trees}
    with tempfile.TemporaryDirectory(prefix="shmview-hot-") as registry:
        for _ in range(args.rounds):
            for tree in trees:
                env = {**os.environ, "PYTHONPATH": str(tree), "SHMVIEW_REGISTRY": registry}
                out = subprocess.run(
                    [sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, check=True
                ).stdout
                runs[tree].append(json.loads(out))
    print("| tree | frame | copyto | write() | read(out=) | read() |\n|---|---|---|---|---|---|")
    for tree, results in runs.items():
        for label in SHAPES:
            copy = statistics.median(r[label]["copyto"] for r in results)
            cells = [
                f"{statistics.median(r[label][k] for r in results) * 1e6:.2f} us "
                f"({statistics.median(r[label][k] / r[label]['copyto'] for r in results):.2f}x)"
                for k in KEYS
            ]
            print(f"| {tree} | {label} | {copy * 1e6:.2f} us | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child()
    else:
        sys.exit(main())
