"""Following one stream over time: attach when it appears, say whether it is healthy,
re-attach when its producer comes back. The headless viewer and the window share this.

The following and the state are the reader's (FrameReader.reattach(), .state); the monitor
chooses when to ask, shows GONE as STALE (the last frame stays on screen), adds WAITING
and ERROR, and reaps what a killed producer left behind.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from viewer.errors import BusyError, ShmviewError, StreamNotFoundError
from viewer.stream import Frame, FrameReader, RawReader, StreamInfo
from viewer.stream.frames import ERROR, GONE, LIVE, STALE, WAITING, State
from viewer.stream.reader import STALE_AFTER_S
from viewer.stream.registry import reap, record_path
from viewer.view.imaging import pixel_sum

log = logging.getLogger(__name__)

FPS_WINDOW_S = 1.0
REAP_AFTER_S = 1.0  # a dead producer's manager cleans up within milliseconds; then we do
RECHECK_S = 1.0  # how often a stream that keeps delivering is checked for a restart


class RateMeter:
    """Events per second over about the last second, from samples of a running count.

    Give it a sample when the count moves (``add`` also takes samples that did not move, as a
    display counter does). The rate is over the samples of the last ``window_s``, and at least
    the last two moves: a 1 fps stream polled every 0.3 s says 1.0, never 0.0 or 0.7. With a
    ``stamp`` (the producer's own time of the event, in seconds) the time between the stamps is
    used when it agrees with the time between the samples (within a factor of 2): the
    producer's clock has no polling jitter in it."""

    def __init__(self, window_s: float = FPS_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int, float | None]] = deque()

    def add(self, t: float, count: int, stamp: float | None = None) -> float | None:
        """Record ``count`` at time ``t``; return the rate, or None before two samples."""
        samples = self._samples
        samples.append((t, count, stamp))
        while len(samples) > 2 and t - samples[1][0] >= self.window_s:
            samples.popleft()
        (t0, n0, s0), (t1, n1, s1) = samples[0], samples[-1]
        span = t1 - t0
        if s0 is not None and s1 is not None and span / 2 <= s1 - s0 <= span * 2:
            span = s1 - s0
        return (n1 - n0) / span if span > 0 else None

    def clear(self) -> None:
        self._samples.clear()


@dataclass(frozen=True)
class RawSpec:
    """How to read a foreign block that holds a bare array at offset 0."""

    shape: tuple[int, ...]
    dtype: str = "uint8"
    pixel_format: str | None = None


@dataclass(frozen=True)
class Status:
    """One look at a stream. ``frame`` is the newest frame seen, kept while stale."""

    stream: str
    state: State  # LIVE, STALE, WAITING or ERROR: a viewer shows GONE as STALE
    info: StreamInfo | None = None
    frame: Frame | None = None
    new: bool = False  # frame arrived since the previous poll
    sum: int | float | None = None
    fps: float | None = None
    latency_ms: float | None = None
    error: str | None = None  # why the state is ERROR


Reader = FrameReader | RawReader


class StreamMonitor:
    """Polls one stream, and never raises: whatever goes wrong with the stream (a corrupt
    or foreign block, an OS error, a header out of range) is an ERROR status naming it,
    and the next poll tries again.

    A stream name is followed through the user's registry only; a block name is
    followed only when asked (``block=True``, or ``raw`` for a bare array).

    Frames are read into two buffers used in turn, so a viewer refreshing every 300 ms does
    not allocate (and page-fault) a fresh frame each time: a Status's frame stays intact
    while the next new frame is taken, and its buffer is reused for the one after. Copy
    it to keep it longer.
    """

    def __init__(
        self,
        name: str,
        *,
        raw: RawSpec | None = None,
        block: bool = False,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self.name = name
        self.raw = raw
        self.by_block = block or raw is not None
        self.stale_after_s = stale_after_s
        self._reader: Reader | None = None
        self._frame: Frame | None = None
        self._sum: int | float | None = None
        self._latency_ms: float | None = None  # age of the newest frame when it was copied
        self._seen = 0  # frames_written when the newest frame we took was published
        self._last_new = 0.0
        self._last_look = 0.0  # when the registry was last asked whether the stream moved
        self._dead_since: float | None = None
        self._rate = RateMeter()
        self._fps: float | None = None  # the producer's rate, as of the newest frame
        self._spare = np.empty(0)  # the buffer the next frame is copied into

    def poll(self) -> Status:
        try:
            return self._poll(time.monotonic())
        except Exception as exc:  # a viewer must outlive any one bad stream
            log.debug("%s: %s", self.name, exc, exc_info=True)
            reason = str(exc) if isinstance(exc, ShmviewError) else f"{type(exc).__name__}: {exc}"
            info = self._reader.info if self._reader is not None else None
            return Status(self.name, ERROR, info, self._frame, error=reason)

    def _poll(self, now: float) -> Status:
        self._follow(now)
        reader = self._reader
        if reader is None:
            return Status(self.name, WAITING)
        new = self._take_new_frame(reader, now)
        state = self._state(reader, now, new)
        fps = self._fps if isinstance(reader, FrameReader) else None
        return Status(
            self.name,
            state,
            reader.info,
            self._frame,
            new,
            self._sum,
            0.0 if state == STALE and fps is not None else fps,
            self._latency_ms,
        )

    def _open(self) -> Reader:
        if self.raw:
            return RawReader(self.name, self.raw.shape, self.raw.dtype, self.raw.pixel_format)
        if self.by_block:
            return FrameReader.from_block(self.name, stale_after_s=self.stale_after_s)
        return FrameReader(self.name, stale_after_s=self.stale_after_s)

    def _follow(self, now: float) -> None:
        """Attach if not attached, or let the reader re-attach if the stream now lives in
        another block.

        While frames keep coming from the block we have, its producer has not been
        replaced (only one producer holds a name): then the registry is asked at most once
        a second, which is a third of an idle viewer's polling cost otherwise."""
        reader = self._reader
        if reader is None:
            try:
                self._reader = self._open()
            except StreamNotFoundError:
                return  # not there (yet): keep waiting
            self._attached(now)
            return
        fresh = self._last_new > self._last_look and now - self._last_look < RECHECK_S
        if fresh and not self.by_block:  # a block's own identity check costs two stats: always
            return
        if reader.reattach():
            self._attached(now)
        self._last_look = now

    def _attached(self, now: float) -> None:
        """Start afresh on the block the reader is now attached to."""
        assert self._reader is not None
        self._seen, self._last_new, self._last_look, self._dead_since = 0, now, now, None
        self._frame = self._sum = self._latency_ms = self._fps = None
        self._rate.clear()
        self._spare = np.empty(self._reader.layout.shape, self._reader.layout.dtype)

    def _take_new_frame(self, reader: Reader, now: float) -> bool:
        """Copy a new frame, if there is one, into the spare buffer, never over the current
        frame: a copy that fails its consistency check must not spoil what is shown."""
        spare = self._spare
        frame: Frame | None
        if isinstance(reader, RawReader):
            frame = reader.read(spare)  # a bare array has no counter: every look is new
        else:
            reader.check_header()  # a header rewritten under us: an error, not stale numbers
            if reader.frames_written == self._seen:
                return False
            try:
                frame = reader.read(spare)
            except BusyError:
                return False
            if frame is None:
                return False
            assert frame.index is not None and frame.timestamp_ns is not None
            self._seen = frame.index + 1  # the frame we got, which may be newer than we asked
            self._latency_ms = (time.time_ns() - frame.timestamp_ns) / 1e6
            # the rate moves only with frames: between them it holds (until STALE says 0)
            self._fps = self._rate.add(now, self._seen, frame.timestamp_ns / 1e9)
        self._spare = self._frame.image if self._frame is not None else np.empty_like(spare)
        self._frame = frame
        self._sum = pixel_sum(frame.image)
        self._last_new = now
        return True

    def _state(self, reader: Reader, now: float, new: bool) -> State:
        state = reader.state
        if state is LIVE and new and isinstance(reader, FrameReader) and not reader.producer_alive():
            # The reader skips the kernel's word on a look that found a new frame; but a frame
            # written just before its producer died must not make a dead stream look live.
            state = GONE
        if state is not GONE:
            self._dead_since = None
            return state
        if isinstance(reader, FrameReader) and not self.by_block and not reader.closed_by_producer:
            self._reap_later(now)
        return STALE  # shown as stale: the last frame stays, and the stream may come back

    def _reap_later(self, now: float) -> None:
        """A dead producer's record left behind (its whole process group was killed) is
        reaped after a grace period its manager would have used."""
        if self._dead_since is None:
            self._dead_since = now
        elif now - self._dead_since > REAP_AFTER_S:
            reap(record_path(self.name))

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
