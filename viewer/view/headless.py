"""The viewer without a window: one line (or one JSON object) per stream per refresh."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from viewer.durations import duration
from viewer.errors import StreamNotFoundError
from viewer.signals import Stop
from viewer.stream.frames import ERROR, WAITING
from viewer.stream.registry import live_records
from viewer.view.imaging import finite_or_none, nonfinite_count, single_threaded_opencv
from viewer.view.monitor import RawSpec, Status, StreamMonitor
from viewer.view.statistics import Roi, roi_dict, roi_stats, roi_text
from viewer.view.status import status_words


class SkipCounter:
    """Frames a stream published that the viewer never printed, since its previous line.

    Counted from frame indices, per block: a restarted producer starts counting afresh.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[str, int]] = {}

    def __call__(self, s: Status) -> int | None:
        if s.frame is None or s.frame.index is None or s.info is None:
            return None  # nothing shown yet, or a raw block, which has no indices
        previous = self._last.get(s.stream)
        self._last[s.stream] = (s.info.block, s.frame.index)
        if previous is None or previous[0] != s.info.block:
            return 0
        return max(0, s.frame.index - previous[1] - 1)


def _rounded(value: float | None, digits: int) -> float | None:
    value = finite_or_none(value)
    return None if value is None else round(value, digits)


def status_dict(s: Status, skipped: int | None = None, roi: Roi | None = None) -> dict[str, object]:
    """The JSON form of a status line (documented in the README). Strict JSON: NaN and
    infinities become null, and ``nonfinite`` counts the samples that hold them. With an
    ``roi``, the key ``roi`` holds its statistics (null while there is no frame)."""
    info, frame = s.info, s.frame
    image = frame.image if frame is not None else None
    line: dict[str, object] = {
        "stream": s.stream,
        "state": s.state,
        "error": s.error,
        "frame": frame.index if frame else None,
        "timestamp_ns": frame.timestamp_ns if frame else None,
        "skipped": skipped,
        "sum": finite_or_none(s.sum),
        "nonfinite": nonfinite_count(image) if image is not None else None,
        "shape": list(info.shape) if info else None,
        "dtype": info.dtype if info else None,
        "pixel_format": info.pixel_format if info else None,
        "fps": _rounded(s.fps, 2),
        "latency_ms": _rounded(s.latency_ms, 3),
        "block": info.block if info else None,
        "producer_pid": info.producer_pid if info else None,
        "meta": frame.meta if frame else None,
        "origin": frame.meta.get("_origin") if frame and frame.meta else None,
    }
    if roi is not None:
        line["roi"] = roi_dict(roi_stats(image, roi, info.pixel_format)) if image is not None and info else None
    return line


def json_line(s: Status, skipped: int | None = None, roi: Roi | None = None) -> str:
    # allow_nan=False: a NaN that slipped through is an error here, never invalid JSON out there
    return json.dumps(status_dict(s, skipped, roi), allow_nan=False)


def status_line(s: Status, roi: Roi | None = None) -> str:
    """The text form of a status: its words in their order, two spaces apart, with an
    ``roi``'s statistics at the end."""
    words = status_words(s)
    if words.error is not None:
        return f"{words.stream}  {words.state}  {words.error}"
    parts = [words.stream, words.state, words.frame, words.sum, words.size, words.fps, words.latency, words.source]
    if roi is not None and s.frame is not None and s.info is not None:
        parts.append("  ".join(roi_text(roi_stats(s.frame.image, roi, s.info.pixel_format))))
    return "  ".join(p for p in parts if p is not None)


def not_found(names: Sequence[str], waited_s: float, *, raw: bool = False) -> StreamNotFoundError:
    which = ", ".join(repr(n) for n in names)
    if raw:
        return StreamNotFoundError(f"no shared-memory block {which} after {duration(waited_s)}", names=list(names))
    live = ", ".join(r.name for r in live_records()) or "none"
    return StreamNotFoundError(f"no stream {which} after {duration(waited_s)}; live streams: {live}", names=list(names))


class Schedule:
    """Ticks every ``interval_s`` on an absolute schedule, so lines do not drift; after a
    stall of more than one interval it starts again from now instead of catching up with
    a burst of lines."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.next = time.monotonic()

    def delay(self) -> float:
        """Seconds to sleep until the next tick."""
        self.next += self.interval_s
        now = time.monotonic()
        if now - self.next > self.interval_s:
            self.next = now
        return max(0.0, self.next - now)


def run(
    names: Sequence[str],
    *,
    interval_s: float = 0.3,
    as_json: bool = False,
    count: int | None = None,
    timeout_s: float | None = 5.0,
    raw: RawSpec | None = None,
    block: bool = False,
    out: TextIO = sys.stdout,
    until: Callable[[], bool] | None = None,
    roi: Roi | None = None,
    stop: Stop | None = None,
) -> int:
    """Refresh every ``interval_s`` until ``count`` refreshes (forever if None), or until
    ``until()`` says to stop. Returns 0, or 1 if a stream's last status was an error; 0 when
    ``stop`` is set (a stop signal: the way to end a viewer).

    Raises StreamNotFoundError if a stream has not appeared within ``timeout_s``, or had
    not appeared by the time ``count`` refreshes were done.
    """
    single_threaded_opencv()
    stop = stop or threading.Event()
    monitors = [StreamMonitor(n, raw=raw, block=block) for n in names]
    by_block = block or raw is not None
    start, schedule, skipped = time.monotonic(), Schedule(interval_s), SkipCounter()
    refreshes, seen = 0, set[str]()
    try:
        while True:
            statuses = [m.poll() for m in monitors]
            seen.update(s.stream for s in statuses if s.state != WAITING)
            waiting = [n for n in names if n not in seen]
            if waiting and timeout_s is not None and time.monotonic() - start >= timeout_s:
                raise not_found(waiting, timeout_s, raw=by_block)
            for s in statuses:
                print(json_line(s, skipped(s), roi) if as_json else status_line(s, roi), file=out, flush=True)
            refreshes += 1
            if refreshes == count or (until is not None and until()):
                break
            if stop.wait(schedule.delay()):
                return 0
    finally:
        for m in monitors:
            m.close()
    if waiting:
        raise not_found(waiting, time.monotonic() - start, raw=by_block)
    return 1 if any(s.state == ERROR for s in statuses) else 0
