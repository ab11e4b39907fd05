"""Run a source as a named stream until it ends or a signal stops it (the CLI's producer)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import numpy as np

from producers.base import FrameSource, NoFrameYet, run
from producers.convert import Conformer
from viewer.errors import SourceError
from viewer.stream import FrameWriter

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SignalStop:
    """A stop flag that SIGINT, SIGTERM and SIGHUP raise, and a sleep they cut short.

    The handlers must not take locks: a ``threading.Event.set()`` in a handler deadlocks
    when the signal lands while the main thread holds the event's own lock (inside
    ``wait()``). So the handler sets a plain flag, and ``signal.set_wakeup_fd`` wakes the
    ``select()`` that sleeps between frames. Handling SIGTERM at all matters (FACTS 3-4):
    a process started with ``&`` ignores SIGINT, and an unhandled SIGTERM skips every exit
    handler.
    """

    def __init__(self) -> None:
        self._stopped = False
        self._read, self._write = os.pipe()
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)

    def is_set(self) -> bool:
        return self._stopped

    def set(self) -> None:
        self._stopped = True

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` s, less if a signal arrives; return whether to stop."""
        if not self._stopped and select.select([self._read], [], [], max(0.0, timeout))[0]:
            with contextlib.suppress(BlockingIOError):
                os.read(self._read, 512)
        return self._stopped

    @contextmanager
    def installed(self) -> Iterator[SignalStop]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # only the main thread may handle signals; the caller stops us
            return
        previous_fd = signal.set_wakeup_fd(self._write)
        previous = {s: signal.signal(s, lambda *_: self.set()) for s in STOP_SIGNALS}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            signal.set_wakeup_fd(previous_fd)
            os.close(self._read)
            os.close(self._write)


def _first_frame(source: FrameSource, stop: SignalStop) -> np.ndarray | None:
    while not stop.is_set():
        try:
            frame = source.read()
        except NoFrameYet:
            continue
        if frame is None:
            raise SourceError(f"{source} ended before its first frame")
        return frame
    return None


def serve(
    source: FrameSource,
    name: str,
    *,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
    letterbox: bool = False,
    slots: int = 3,
    fps: float | None = None,
    frames: int | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Publish ``source`` as stream ``name`` until it ends, ``frames`` are written, or
    SIGINT / SIGTERM / SIGHUP arrives; print one ready line; return the frames written.

    The stream takes the first frame's size and colour (grey or BGR) unless ``size``
    (width, height) or ``channels`` (1 or 3) say otherwise; other frames are made to fit.
    ``fps`` None paces at the source's own rate (a video file's), else 30; 0 does not pace.
    """
    with SignalStop().installed() as stop, source:
        first = _first_frame(source, stop)
        if first is None:
            return 0
        fit = Conformer.for_first(first, size, channels, colour_order=source.colour_order, letterbox=letterbox)
        source.prepare = fit
        with FrameWriter(name, fit.shape, "uint8", pixel_format=fit.pixel_format, slots=slots) as writer:
            lay = writer.layout
            print(
                f"stream {name} ready: block {writer.block_name}, "
                f"{'x'.join(map(str, lay.shape))} {lay.dtype.name} {lay.pixel_format}, {lay.slot_count} slots",
                file=out,
                flush=True,
            )
            rate = fps if fps is not None else source.fps or 30.0
            return run(source, writer, fps=rate, frames=frames, stop=stop, convert=fit, first=first)
