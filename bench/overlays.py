"""Overlays (issue 18): a window's CPU with 64 KiB of worst-case overlay metadata per frame,
against the same window without metadata and with the same bytes under another key."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import numpy as np
from harness import SPAWN, start, verdict

from viewer import FrameWriter

# ---- overlays: a window's CPU with 64 KiB of worst-case overlay metadata (issue 18) --------

OVERLAY_META_BYTES = 65536


def worst_overlay(k: int, shape: tuple[int, ...] = (480, 640, 3), *, long_labels: bool = False) -> dict:
    """Frame k's metadata: every overlay cap reached at once (viewer.view.overlay's MAX_SHAPES
    shapes, MAX_POINTS points, every edge across the whole frame, and MAX_TEXTS labels of
    MAX_CHARS characters in all, or MAX_TEXT long ones), then lines to fill OVERLAY_META_BYTES,
    which are decoded but not drawn. It moves with k, so every frame's overlay is new."""
    import orjson

    from viewer.view.overlay import MAX_CHARS, MAX_POINTS, MAX_SHAPES, MAX_TEXT, MAX_TEXTS

    h, w = shape[:2]
    vertices = 20
    polygons = (MAX_POINTS - 2 * MAX_SHAPES) // (vertices - 2)
    items = [{"polygon": [[0 if j % 2 else w, (k + i + 7 * j) % h] for j in range(vertices)]} for i in range(polygons)]
    items += [{"line": [0, (k + i) % h, w, h - (k + i) % h]} for i in range(MAX_SHAPES - polygons)]
    labelled = items[-(MAX_CHARS // MAX_TEXT) :] if long_labels else items[-MAX_TEXTS:]
    for item in labelled:
        item["label"] = "W" * (MAX_CHARS // len(labelled))
    room = OVERLAY_META_BYTES - len(orjson.dumps({"overlay": items}))
    items += [{"line": [0, i % h, w, h - i % h]} for i in range(room // 20)]  # each ~25 bytes: too many
    while len(orjson.dumps({"overlay": items})) > OVERLAY_META_BYTES:
        del items[-max(1, (len(orjson.dumps({"overlay": items})) - OVERLAY_META_BYTES) // 30) :]
    return {"overlay": items}


OVERLAY_MODES = {  # window name: what its stream's frames carry
    "bench-plain": "no metadata",
    "bench-meta": "the same 64 KiB, under another key (decoded, nothing drawn)",
    "bench-overlaid": "64 KiB of worst-case overlays",
}


def _overlay_writer(name: str, ready, stop) -> None:
    shape = (480, 640, 3)
    metas: list[dict | None] = [worst_overlay(k) for k in range(6)] if name != "bench-plain" else [None]
    if name == "bench-meta":
        metas = [{"boxes": m["overlay"]} for m in metas if m is not None]
    image = np.full(shape, 40, np.uint8)
    with FrameWriter(name, shape, meta_bytes=OVERLAY_META_BYTES) as w:
        ready.set()
        k, start = 0, time.perf_counter()
        while not stop.is_set():
            w.write(image, meta=metas[k % len(metas)])
            k += 1
            time.sleep(max(0.0, start + k / 30 - time.perf_counter()))  # 30 fps


def overlay_cpu(seconds: float, rounds: int) -> dict[str, float]:
    """% of one core used by three `shmview view` windows (offscreen, 300 ms) side by side, each
    on a 30 fps stream of its own (OVERLAY_MODES), measured over the same windows of time, so a
    busy machine loads them alike. Medians over rounds, by window name, and of the ratios of
    the overlaid window to the others ("x_plain", "x_meta")."""
    import psutil

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    ready, stop = SPAWN.Event(), SPAWN.Event()
    writers, viewers = [], []
    try:
        for name in OVERLAY_MODES:
            writers.append(start(_overlay_writer, name, ready, stop))
            ready.wait(60)
            ready.clear()
            viewers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "viewer", "view", name, "--interval-ms", "300"],
                    env=env,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(3.0)  # start-up: imports, first paint
        procs = {name: psutil.Process(v.pid) for name, v in zip(OVERLAY_MODES, viewers, strict=True)}
        samples = []
        for _ in range(rounds):
            before = {name: sum(p.cpu_times()[:2]) for name, p in procs.items()}
            time.sleep(seconds)
            samples.append({name: 100 * (sum(p.cpu_times()[:2]) - before[name]) / seconds for name, p in procs.items()})
    finally:
        for v in viewers:
            v.terminate()
            v.wait(30)
        stop.set()
        for wr in writers:
            wr.join(30)
    out = {name: statistics.median(s[name] for s in samples) for name in OVERLAY_MODES}
    for key, name in (("x_plain", "bench-plain"), ("x_meta", "bench-meta")):
        out[key] = statistics.median(s["bench-overlaid"] / s[name] for s in samples)
    return out


def overlay_row(lines: list[str], seconds: float, rounds: int) -> None:
    cpu = overlay_cpu(seconds, rounds)
    lines.append(
        f"| viewer window at 300 ms, 30 fps stream with 64 KiB of worst-case overlays per frame: CPU | "
        f"{cpu['bench-overlaid']:.2f} % of one core | | {cpu['x_plain']:.2f}x the same window on frames "
        f"without metadata ({cpu['bench-plain']:.2f} %); {cpu['x_meta']:.2f}x on frames with the same "
        f"64 KiB under another key ({cpu['bench-meta']:.2f} %) | ≤ 3x | {verdict(cpu['x_plain'] <= 3)} |"
    )
