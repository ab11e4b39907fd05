"""FrameSource, and the one loop that paces any source into a FrameWriter."""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType

import numpy as np

from viewer.errors import NoFrameYet
from viewer.signals import Stop
from viewer.stream import FrameWriter

log = logging.getLogger(__name__)


class FrameSource(ABC):
    """Something that yields frames: ``open()``, ``read()`` until None, ``close()``.

    Frames are numpy arrays: 2-D or 1-channel grey, or 3 or 4 channels in
    ``colour_order`` (OpenCV's BGR unless a source says RGB). The producer loop makes
    them fit the stream, so a source never needs to know its size or format.
    """

    colour_order = "BGR"
    #: The source's own frame rate, where it has one (a video file's), known after open().
    fps: float | None = None
    #: The frames' numpy shape where it is known before the first frame (a synthetic
    #: pattern's): lets a producer refuse a stream too big for shared memory at once.
    shape: tuple[int, ...] | None = None
    #: Set by the producer once the stream's format is known: a function that makes a
    #: frame fit it. Sources that decode ahead in threads may apply it there.
    prepare: Callable[[np.ndarray], np.ndarray] | None = None

    def __str__(self) -> str:
        """How errors name the source: the class name unless the source says better."""
        return f"source {type(self).__name__}"

    def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire the device or file. Raise an exception naming it if that fails."""

    @abstractmethod
    def read(self) -> np.ndarray | None:
        """The next frame, or None when the source has ended. A live source may raise
        NoFrameYet after waiting a short while, so the loop can check for a stop."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what open() took. Must be safe to call twice."""

    def fills(self, shape: tuple[int, ...], dtype: np.dtype) -> bool:
        """Whether read_into() can write this stream's frames in place, with no
        conversion. Sources that draw or decode straight into an array say yes."""
        return False

    def read_into(self, out: np.ndarray) -> bool:
        """Put the next frame into ``out`` (the stream's next slot, lent by the writer);
        False when the source has ended. Only called when fills() said yes. The
        default reads a frame and copies it; sources override it to save that copy."""
        frame = self.read()
        if frame is None:
            return False
        np.copyto(out, frame)
        return True

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _Ended(Exception):
    """Inside a loan: the source has no more frames, so publish nothing."""


def _fill_in_place(source: FrameSource, writer: FrameWriter) -> bool:
    """One frame drawn or decoded straight into the writer's next slot: no copy."""
    try:
        with writer.loan() as pixels:
            if not source.read_into(pixels):
                raise _Ended
    except _Ended:
        return False
    return True


def _copy(source: FrameSource, writer: FrameWriter, convert: Callable[[np.ndarray], np.ndarray] | None) -> bool:
    frame = source.read()
    if frame is None:
        return False
    writer.write(convert(frame) if convert else frame)
    return True


def run(
    source: FrameSource,
    writer: FrameWriter,
    *,
    fps: float = 30.0,
    frames: int | None = None,
    stop: Stop | None = None,
    convert: Callable[[np.ndarray], np.ndarray] | None = None,
    first: np.ndarray | None = None,
) -> int:
    """Write frames from an opened ``source`` until it ends, ``frames`` are written, or
    ``stop`` is set. Paced to ``fps`` on an absolute schedule (no drift); 0 means as
    fast as possible. A producer that falls behind skips ahead instead of bursting.
    ``first`` is a frame already taken from the source, written before the others.
    Returns the number of frames written.
    """
    stop = stop or threading.Event()
    period = 1.0 / fps if fps > 0 else 0.0
    start = time.monotonic()
    written = 0
    in_place = source.fills(writer.layout.shape, writer.layout.dtype)
    while not stop.is_set() and (frames is None or written < frames):
        try:
            if first is not None:
                writer.write(convert(first) if convert else first)
                first = None
            elif not (_fill_in_place(source, writer) if in_place else _copy(source, writer, convert)):
                break
        except NoFrameYet:
            continue
        written += 1
        if written == frames:
            break
        delay = start + written * period - time.monotonic()
        if delay < -period:
            start = time.monotonic() - written * period  # fell behind: re-anchor the schedule
        elif delay > 0:
            stop.wait(min(delay, 86400.0))  # a wait longer than a day: a day at a time
    return written
