"""The benchmark's harness: timing (per call, per refresh, rounds taken in turn so ratios share
the machine's moods), frames, spawned processes, the table's cells, and the command line.
The topics (hot path in bench.py, transports, peers, display, metadata, recording, overlays)
build on it; bench.py puts their rows together.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SIZES = {"480x640x3": (480, 640, 3), "1080x1920x3": (1080, 1920, 3)}
SPAWN = mp.get_context("spawn")
ACK = struct.Struct("<q")  # a CLOCK_MONOTONIC stamp or a frame index, between processes


# ---- timing helpers ------------------------------------------------------------------------


def per_call(fn: Callable[[], object], rounds: int, seconds: float) -> float:
    """Median over rounds of the mean seconds per call (each round about `seconds` long)."""
    return per_call_interleaved({"fn": fn}, rounds, seconds)["fn"]


def _calls_per(fn: Callable[[], object], seconds: float) -> int:
    fn()
    n = 1
    while True:  # calibrate calls per round
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if (elapsed := time.perf_counter() - t) > 0.02:
            return max(1, int(n * seconds / elapsed))
        n *= 2


def per_call_interleaved(fns: dict[str, Callable[[], object]], rounds: int, seconds: float) -> dict[str, float]:
    """per_call for several functions, their rounds taken in turn: on a shared machine a
    ratio between them is then measured under the same load."""
    calls = {key: _calls_per(fn, seconds) for key, fn in fns.items()}
    results: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            t = time.perf_counter()
            for _ in range(calls[key]):
                fn()
            results[key].append((time.perf_counter() - t) / calls[key])
    return {key: statistics.median(r) for key, r in results.items()}


def per_refresh(prepare: Callable[[], object], fn: Callable[[], object], rounds: int, seconds: float) -> float:
    """Like per_call, but `prepare` (untimed) runs before each call: a new frame to show."""
    for _ in range(20):
        prepare()
        fn()
    results = []
    for _ in range(rounds):
        spent, end = 0.0, time.perf_counter() + seconds
        calls = 0
        while time.perf_counter() < end:
            prepare()
            t = time.perf_counter()
            fn()
            spent += time.perf_counter() - t
            calls += 1
        results.append(spent / calls)
    return statistics.median(results)


def cycling_copy(frame: np.ndarray, count: int) -> Callable[[], None]:
    """np.copyto into `count` destinations in turn: the cache footprint of a `count`-slot ring.
    (At 1080x1920x3, 3 destinations and the source no longer stay in this machine's L3.)"""
    dsts = [np.ones_like(frame) for _ in range(count)]
    turn = [0]

    def copy() -> None:
        np.copyto(dsts[turn[0] % count], frame)
        turn[0] += 1

    return copy


def frames_for(shape: tuple[int, ...], count: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, shape, np.uint8) for _ in range(count)]


def start(target, *args) -> mp.Process:
    proc = SPAWN.Process(target=target, args=args)  # not daemonic: a FrameWriter starts a manager
    proc.start()
    return proc


# ---- the table ------------------------------------------------------------------------------


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def write_table(lines: list[str], out: Path | None) -> None:
    table = "\n".join(lines)
    print(table)
    if out:
        out.write_text(table + "\n")


# ---- command line -----------------------------------------------------------------------------


def main(description: str, run: Callable[..., int], overlays_only: Callable[[float], int]) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter phases (a smoke run)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("--overlays-only", action="store_true", help="only the row of a window's CPU with overlays")
    args = parser.parse_args()
    rounds, phase, count, idle = (3, 0.1, 100, 4.0) if args.quick else (7, 0.5, 400, 20.0)
    peer_rounds, peer_count = (2, 60) if args.quick else (5, 200)
    own_registry = "SHMVIEW_REGISTRY" not in os.environ
    if own_registry:
        os.environ["SHMVIEW_REGISTRY"] = tempfile.mkdtemp(prefix="shmview-bench-")
    try:
        if args.overlays_only:
            return overlays_only(idle)
        return run(args, rounds, phase, count, idle, peer_rounds, peer_count)
    finally:
        if own_registry:
            import shutil

            shutil.rmtree(os.environ["SHMVIEW_REGISTRY"], ignore_errors=True)
