"""A stream's status in words, made once for every viewer: the window's status line and the
text viewer's lines take the same words and only choose their order and separators.

No Qt here."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from viewer.errors import ShmviewError
from viewer.stream.frames import ERROR, describe
from viewer.view.imaging import nonfinite_count, number_text
from viewer.view.monitor import Status
from viewer.view.overlay import origin

NO_REASON = "unknown error"  # an error state that came without one
WAIT_HINT_AFTER_S = 2.0  # a viewer waiting this long for a stream says what is there instead
MAX_NAMED = 8  # live streams named in a hint; then "and N more"


@dataclass(frozen=True)
class StatusWords:
    """The words of one look at a stream; a field is None where it does not apply (no frame
    yet, no rate yet, a local stream has no ``source``). ``error`` is set in the error state
    only, and then it is the whole story: the other fields are None."""

    stream: str
    state: str
    error: str | None = None
    frame: str | None = None  # "frame 1234", or "frame -" for a raw block, which has no indices
    sum: str | None = None  # "sum 1,234", "sum 0.5", "sum nan (3 non-finite)"
    size: str | None = None  # "640x480 BGR uint8", the one way sizes and formats are shown
    fps: str | None = None  # the producer's rate, "30.0 fps"
    latency: str | None = None  # "0.4 ms", or "end to end 12.0 ms" for a mirrored stream
    source: str | None = None  # "from robot1, jpeg": where a mirrored stream comes from


def status_words(s: Status) -> StatusWords:
    """The words for ``s``."""
    if s.state == ERROR:
        return StatusWords(s.stream, s.state, error=error_reason(s))
    frame, info = s.frame, s.info
    where = origin(frame.meta) if frame is not None else None
    return StatusWords(
        s.stream,
        s.state,
        frame=None if frame is None else f"frame {frame.index if frame.index is not None else '-'}",
        sum=None if frame is None or s.sum is None else sum_text(s.sum, frame.image),
        size=None if info is None else describe(info.shape, info.dtype, info.pixel_format),
        fps=None if s.fps is None else f"{s.fps:.1f} fps",  # the monitor says 0 at once when stale
        latency=None if s.latency_ms is None else f"{'end to end ' if where else ''}{s.latency_ms:.1f} ms",
        source=None if where is None else f"from {where}",
    )


def error_reason(s: Status) -> str:
    """Why a stream in the error state cannot be shown, in one line."""
    return s.error or NO_REASON


def sum_text(total: int | float, image: np.ndarray) -> str:
    """A frame's sum in words: exact for an integer frame; for a float frame, with how many
    samples are NaN or infinite when there are any (counted only then: a finite sum has none)."""
    if isinstance(total, int):
        return f"sum {total:,}"
    bad = None if math.isfinite(total) else nonfinite_count(image)
    return f"sum {number_text(total)}" + (f" ({bad:,} non-finite)" if bad else "")


def reason(exc: BaseException) -> str:
    """One line saying what went wrong: the message of one of our errors, else the
    exception's name with its message's first line."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    return text if isinstance(exc, ShmviewError) and text else f"{type(exc).__name__}: {text}".rstrip(": ")


def waiting_text(name: str, waited_s: float, *, block: bool = False) -> str:
    """What a viewer waiting for ``name`` shows: what it waits for, and after
    WAIT_HINT_AFTER_S what is there instead (the live streams, or that there are none)."""
    what = f"block '{name}'" if block else f"stream '{name}'"
    if waited_s < WAIT_HINT_AFTER_S:
        return f"waiting for {what}…"
    return f"waiting for {what}…\n{live_hint(name, block=block)}"


def live_hint(name: str, *, block: bool = False) -> str:
    """'live streams: cam0, cam1', or 'no live streams; see shmview list'."""
    from viewer.stream.registry import live_records

    try:
        others = [r.name for r in live_records() if r.name != name]
    except OSError as exc:  # an unreadable registry: say that instead
        return f"cannot list the live streams: {reason(exc)}"
    if block:
        return f"no block '{name}' in /dev/shm yet" + (f"; live streams: {_named(others)}" if others else "")
    return f"live streams: {_named(others)}" if others else "no live streams; see shmview list"


def _named(names: list[str]) -> str:
    more = len(names) - MAX_NAMED
    return ", ".join(names[:MAX_NAMED]) + (f" and {more} more" if more > 0 else "")
