"""shmview against memcpy, multiprocessing, ZeroMQ, iceoryx2 and the usual Qt display paths,
measured side by side in one run on this machine. Prints a Markdown table with ratios and targets.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/bench.py [--quick] [--out FILE]

Every figure is a median over rounds after a warm-up. Latency is one-way: the sender takes
CLOCK_MONOTONIC just before it starts handing a frame over, the receiver when it holds a
usable array (and, in the peer rows, when it has the exact sum). The older transport rows are
lock-step (the receiver acks each frame); the peer rows pace the writer instead and let the
reader spin on the newest frame, with a fresh process pair per system, size and round. On a
shared machine compare ratios within one run, not figures across runs.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness
import metadata
import recording
from display import display_costs, viewer_cpu
from harness import SIZES, cycling_copy, frames_for, per_call_interleaved, us, verdict, write_table
from metadata import DETECTIONS, histogram_cost
from overlays import overlay_row
from peers import peer_rows, peers
from transports import flood_shmview, latency_pipe, latency_queue, latency_shmview, latency_zmq, paced_rate

from viewer import FrameReader, FrameWriter


def run(
    args: argparse.Namespace, rounds: int, phase: float, count: int, idle: float, peer_rounds: int, peer_count: int
) -> int:
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}; {time.strftime('%Y-%m-%d')}; {'quick run' if args.quick else 'full run'}",
        "",
        "| what | 480x640x3 | 1080x1920x3 | ratio (at 480x640x3 / 1080x1920x3) | target | |",
        "|---|---|---|---|---|---|",
    ]
    res: dict[str, dict[str, float]] = {k: {} for k in SIZES}
    for label, shape in SIZES.items():
        print(f"measuring {label} ...", file=sys.stderr)
        r = res[label]
        frames = frames_for(shape)
        frame, dst = frames[0], np.empty(shape, np.uint8)
        with FrameWriter("bench-cost", shape) as writer, FrameReader("bench-cost") as reader:
            r.update(
                per_call_interleaved(
                    {
                        "copyto": functools.partial(np.copyto, dst, frame),
                        "copyto_ring": cycling_copy(frame, 3),
                        "write": functools.partial(writer.write, frame),
                        "read": reader.read,
                        "write_meta": functools.partial(writer.write, frame, meta=DETECTIONS),
                    },
                    rounds,
                    phase,
                )
            )
        r["hist"] = histogram_cost(frame, rounds, phase)
        n = count if shape[0] < 1000 else count // 4
        transports = [
            ("lat_shmview", latency_shmview),
            ("lat_zmq", latency_zmq),
            ("lat_pipe", latency_pipe),
            ("lat_queue", latency_queue),
        ]
        medians: dict[str, list[float]] = {name: [] for name, _ in transports}
        for _ in range(3):  # rounds interleave the transports, so they share the machine's moods
            for name, fn in transports:
                medians[name].append(statistics.median(fn(frames, n)) / 1e6)
        r.update({name: statistics.median(m) for name, m in medians.items()})
        r["w_fps"], r["r_fps"], r["torn"], r["reads"] = flood_shmview(shape, 3 * phase + 0.5)
        r.update({f"disp_{k}": v for k, v in display_costs(shape, rounds, phase).items()})
    print(f"measuring peers: {peer_rounds} interleaved rounds ...", file=sys.stderr)
    peer = peers(peer_rounds, peer_count)
    small, big = res["480x640x3"], res["1080x1920x3"]

    def row(
        what: str, key: str, fmt: Callable[[float], str], ratio: str = "", target: str = "", ok: bool | None = None
    ) -> None:
        lines.append(
            f"| {what} | {fmt(small[key])} | {fmt(big[key])} | {ratio} | {target} | "
            f"{'' if ok is None else verdict(ok)} |"
        )

    row("np.copyto one frame (floor: one destination, cache-warm)", "copyto", us, "1.00x copyto")
    ring = [r["copyto_ring"] / r["copyto"] for r in (small, big)]
    row(
        "np.copyto into 3 destinations in turn (a 3-slot ring's cache footprint)",
        "copyto_ring",
        us,
        f"{ring[0]:.2f}x / {ring[1]:.2f}x copyto",
    )
    for key, what, limit in (
        ("write", "FrameWriter.write", 1.3),
        ("read", "FrameReader.read (a new array each time)", 1.5),
    ):
        x = [r[key] / r["copyto"] for r in (small, big)]
        row(what, key, us, f"{x[0]:.2f}x / {x[1]:.2f}x copyto", f"≤ {limit}x", max(x) <= limit)
    x = [r["write"] / r["copyto_ring"] for r in (small, big)]
    row(
        "FrameWriter.write against the same footprint (3 destinations in turn)",
        "write",
        us,
        f"{x[0]:.2f}x / {x[1]:.2f}x",
        "",
        None,
    )
    peer_rows(lines, peer, peer_rounds, peer_count)
    row("one-way latency, shmview (reader polling, read(out=...))", "lat_shmview", us)
    zmq_x, queue_x = small["lat_zmq"] / small["lat_shmview"], small["lat_queue"] / small["lat_shmview"]
    row(
        "one-way latency, pyzmq PUSH/PULL ipc:// zero-copy",
        "lat_zmq",
        us,
        f"shmview {zmq_x:.1f}x lower",
        "≥ 5x",
        zmq_x >= 5,
    )
    row(
        "one-way latency, mp.Pipe recv_bytes_into",
        "lat_pipe",
        us,
        f"shmview {small['lat_pipe'] / small['lat_shmview']:.1f}x lower",
    )
    row("one-way latency, mp.Queue", "lat_queue", us, f"shmview {queue_x:.1f}x lower", "≥ 50x", queue_x >= 50)
    row("writer flooding: frames written/s", "w_fps", lambda v: f"{v:,.0f}/s")
    ratio = small["r_fps"] / small["w_fps"]
    row(
        "... consistent new frames read/s by one reader (read(out=...))",
        "r_fps",
        lambda v: f"{v:,.0f}/s",
        f"{ratio:.2f}x of written",
        "≥ 0.5x",
        ratio >= 0.5,
    )
    row("... torn frames accepted", "torn", lambda v: f"{v:.0f}", "", "0", small["torn"] == 0 and big["torn"] == 0)
    for other, label in (("disp_qlabel", "QLabel/QPixmap + ndarray.sum()"), ("disp_pyqtgraph", "pyqtgraph")):
        if other in small:
            x = small[other] / small["disp_shmview"]
            row(f"refresh of a new frame, {label}", other, us, f"shmview {x:.1f}x faster", "≥ 3x", x >= 3)
    row("refresh of a new frame, shmview (read + exact sum + paint)", "disp_shmview", us)
    print("measuring a paced producer with 8 readers ...", file=sys.stderr)
    alone, _ = paced_rate(SIZES["480x640x3"], 100, 4 * phase + 1, 0)
    crowded, torn8 = paced_rate(SIZES["480x640x3"], 100, 4 * phase + 1, 8)
    lines.append(
        f"| producer paced at 100 fps, alone / with 8 readers flooding | {alone:.1f} / {crowded:.1f} fps | | "
        f"{crowded / alone:.2f}x; torn {torn8} | within 10 %, 0 torn | "
        f"{verdict(crowded >= 0.9 * alone and torn8 == 0)} |"
    )
    print("measuring metadata, histogram and recording ...", file=sys.stderr)
    metadata.rows(lines, res)
    recording.rows(lines, phase)
    print(f"measuring viewer CPU over {idle:g} s ...", file=sys.stderr)
    viewer_pct, producer_pct = viewer_cpu(idle)
    lines.append(
        f"| viewer window at 300 ms, producer at 30 fps: CPU | {viewer_pct:.2f} % of one core | | "
        f"producer {producer_pct:.2f} % | < 0.3 % | {verdict(viewer_pct < 0.3)} |"
    )
    print(f"measuring three viewer windows, with and without overlays, over {idle:g} s x 3 ...", file=sys.stderr)
    overlay_row(lines, idle, 3)
    write_table(lines, args.out)
    return 0


def overlays_only(idle: float) -> int:
    lines = ["| what | 480x640x3 | | ratio | target | |", "|---|---|---|---|---|---|"]
    print(f"measuring three viewer windows, with and without overlays, over {idle:g} s x 3 ...", file=sys.stderr)
    overlay_row(lines, idle, 3)
    print("\n".join(lines))
    return 0


def main() -> int:
    return harness.main(__doc__.split("\n\n")[0], run, overlays_only)


if __name__ == "__main__":
    sys.exit(main())
