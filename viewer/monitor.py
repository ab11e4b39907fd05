"""Following one stream over time: attach when it appears, say whether it is healthy,
re-attach when its producer comes back. The headless viewer and the window share this.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from viewer.errors import BusyError, StreamNotFoundError
from viewer.imaging import pixel_sum
from viewer.registry import pid_alive, read_record, record_stamp
from viewer.shm import block_exists
from viewer.stream import Frame, FrameReader, RawReader, StreamInfo

WAITING, LIVE, STALE = "waiting", "live", "stale"
STALE_AFTER_S = 2.0
FPS_WINDOW_S = 1.0


class RateMeter:
    """Events per second over about the last second, from samples of a running count."""

    def __init__(self, window_s: float = FPS_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, t: float, count: int) -> float | None:
        """Record ``count`` at time ``t``; return the rate, or None before two samples."""
        samples = self._samples
        samples.append((t, count))
        while len(samples) > 2 and t - samples[1][0] >= self.window_s:
            samples.popleft()
        (t0, n0), (t1, n1) = samples[0], samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None

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
    state: str
    info: StreamInfo | None = None
    frame: Frame | None = None
    new: bool = False  # frame arrived since the previous poll
    sum: int | float | None = None
    fps: float | None = None
    latency_ms: float | None = None


class StreamMonitor:
    """Polls one stream. ProtocolError escapes poll(): what to do with it is the caller's.

    Frames are read into two buffers used in turn, so a viewer refreshing every 300 ms does
    not allocate (and page-fault) a fresh frame each time: a Status's frame stays intact
    while the next new frame is taken, and its buffer is reused for the one after. Copy
    it to keep it longer.
    """

    def __init__(self, name: str, *, raw: RawSpec | None = None, stale_after_s: float = STALE_AFTER_S):
        self.name = name
        self.raw = raw
        self.stale_after_s = stale_after_s
        self._reader: FrameReader | RawReader | None = None
        self._frame: Frame | None = None
        self._sum: int | float | None = None
        self._latency_ms: float | None = None  # age of the newest frame when it was copied
        self._seen = 0
        self._last_new = 0.0
        self._rate = RateMeter()
        self._stamp: tuple[int, int] | None = None  # of the registry record last followed
        self._spare = np.empty(0)  # the buffer the next frame is copied into

    def poll(self) -> Status:
        now = time.monotonic()
        self._follow(now)
        reader = self._reader
        if reader is None:
            return Status(self.name, WAITING)
        new = self._take_new_frame(reader, now)
        return Status(
            self.name, self._state(reader, now, new), reader.info, self._frame, new, self._sum,
            self._fps(reader, now), self._latency_ms,
        )

    def _follow(self, now: float) -> None:
        """Attach if not attached, or re-attach if the name now points to another block."""
        if self._reader is not None and (self.raw or not self._moved()):
            return
        try:
            if self.raw:
                reader: FrameReader | RawReader = RawReader(
                    self.name, self.raw.shape, self.raw.dtype, self.raw.pixel_format
                )
            else:
                reader = FrameReader(self.name)
        except StreamNotFoundError:
            return  # not there (yet, or any more): keep what we had, if anything
        self.close()
        self._reader, self._seen, self._last_new = reader, 0, now
        self._frame = self._sum = self._latency_ms = None
        self._rate.clear()
        self._spare = np.empty(reader.layout.shape, reader.layout.dtype)

    def _moved(self) -> bool:
        """Whether the name points to another block now (its producer restarted). Reads the
        registry record only when the record file changed: a stat() per poll otherwise."""
        assert self._reader is not None
        stamp = record_stamp(self.name)
        if stamp is not None and stamp == self._stamp:
            return False
        rec = read_record(self.name) if stamp is not None else None
        if rec is not None:
            self._stamp = stamp  # a half-written record is read again next time
        # No record: the name is a block name ("/psm_ab12" and "psm_ab12" are one block).
        return (rec.block if rec else self.name.lstrip("/")) != self._reader.info.block

    def _take_new_frame(self, reader: FrameReader | RawReader, now: float) -> bool:
        """Copy a new frame, if there is one, into the spare buffer, never over the current
        frame: a copy that fails its consistency check must not spoil what is shown."""
        spare = self._spare
        if isinstance(reader, RawReader):
            frame = reader.read(spare)  # a bare array has no counter: every look is new
        else:
            written = reader.frames_written
            if written == self._seen:
                return False
            try:
                frame = reader.read(spare)
            except BusyError:
                return False
            if frame is None:
                return False
            self._seen = written
            assert frame.timestamp_ns is not None
            self._latency_ms = (time.time_ns() - frame.timestamp_ns) / 1e6
        self._spare = self._frame.image if self._frame is not None else np.empty_like(spare)
        self._frame = frame
        self._sum = pixel_sum(frame.image)
        self._last_new = now
        return True

    def _state(self, reader: FrameReader | RawReader, now: float, new: bool) -> str:
        if isinstance(reader, RawReader):
            return LIVE if block_exists(reader.info.block) else STALE
        if reader.closed_by_producer:
            return STALE
        if new:
            return LIVE  # a frame just arrived: its producer is alive
        gone = not pid_alive(reader.info.producer_pid or 0)
        return STALE if gone or now - self._last_new > self.stale_after_s else LIVE

    def _fps(self, reader: FrameReader | RawReader, now: float) -> float | None:
        """Producer frames per second over the last second of polls."""
        if isinstance(reader, RawReader):
            return None
        return self._rate.add(now, reader.frames_written)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
