"""The viewer without a window: one line (or one JSON object) per stream per refresh."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from viewer.errors import StreamNotFoundError
from viewer.imaging import single_threaded_opencv
from viewer.monitor import WAITING, RawSpec, Status, StreamMonitor
from viewer.registry import live_records


def status_dict(s: Status) -> dict[str, object]:
    """The JSON form of a status line (documented in the README)."""
    info = s.info
    return {
        "stream": s.stream,
        "state": s.state,
        "frame": s.frame.index if s.frame else None,
        "sum": s.sum,
        "shape": list(info.shape) if info else None,
        "dtype": info.dtype if info else None,
        "pixel_format": info.pixel_format if info else None,
        "fps": None if s.fps is None else round(s.fps, 2),
        "latency_ms": None if s.latency_ms is None else round(s.latency_ms, 3),
        "block": info.block if info else None,
    }


def status_line(s: Status) -> str:
    parts = [s.stream, s.state]
    if s.frame is not None:
        parts.append(f"frame {s.frame.index if s.frame.index is not None else '-'}")
        parts.append(f"sum {s.sum:,}" if isinstance(s.sum, int) else f"sum {s.sum:.6g}")
    if s.info is not None:
        parts.append("x".join(map(str, s.info.shape)) + f" {s.info.dtype} {s.info.pixel_format}")
    if s.fps is not None:
        parts.append(f"{s.fps:.1f} fps")
    if s.latency_ms is not None:
        parts.append(f"{s.latency_ms:.1f} ms")
    return "  ".join(parts)


def not_found(names: Sequence[str], waited_s: float) -> StreamNotFoundError:
    live = ", ".join(r.name for r in live_records()) or "none"
    which = ", ".join(repr(n) for n in names)
    return StreamNotFoundError(
        f"no stream {which} after {waited_s:g} s; live streams: {live}", names=list(names)
    )


def run(
    names: Sequence[str],
    *,
    interval_s: float = 0.3,
    as_json: bool = False,
    count: int | None = None,
    timeout_s: float | None = 5.0,
    raw: RawSpec | None = None,
    out: TextIO = sys.stdout,
    until: Callable[[], bool] | None = None,
) -> None:
    """Refresh every ``interval_s`` until ``count`` refreshes (forever if None), or until
    ``until()`` says to stop.

    Raises StreamNotFoundError if a stream has not appeared within ``timeout_s``.
    """
    single_threaded_opencv()
    monitors = [StreamMonitor(n, raw=raw) for n in names]
    start = next_tick = time.monotonic()
    refreshes = 0
    try:
        while True:
            statuses = [m.poll() for m in monitors]
            waiting = [s.stream for s in statuses if s.state == WAITING]
            if waiting and timeout_s is not None and time.monotonic() - start >= timeout_s:
                raise not_found(waiting, timeout_s)
            if not waiting:
                timeout_s = None  # the timeout is for appearing; afterwards we wait forever
            for s in statuses:
                print(json.dumps(status_dict(s)) if as_json else status_line(s), file=out, flush=True)
            refreshes += 1
            if refreshes == count or (until is not None and until()):
                break
            next_tick += interval_s
            time.sleep(max(0.0, next_tick - time.monotonic()))
    finally:
        for m in monitors:
            m.close()
