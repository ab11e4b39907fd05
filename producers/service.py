"""Run a source as a named stream until it ends or a signal stops it (the CLI's producer)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

import numpy as np

from producers.base import FrameSource, run
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


def serve(
    source: FrameSource,
    name: str,
    shape: tuple[int, ...],
    dtype: str = "uint8",
    *,
    pixel_format: str | None = None,
    slots: int = 3,
    fps: float = 30.0,
    frames: int | None = None,
    convert: Callable[[np.ndarray], np.ndarray] | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Publish ``source`` as stream ``name``; print one ready line; return frames written."""
    with SignalStop().installed() as stop, source, FrameWriter(
        name, shape, dtype, pixel_format=pixel_format, slots=slots
    ) as writer:
        lay = writer.layout
        print(
            f"stream {name} ready: block {writer.block_name}, "
            f"{'x'.join(map(str, lay.shape))} {lay.dtype.name} {lay.pixel_format}, "
            f"{lay.slot_count} slots",
            file=out,
            flush=True,
        )
        return run(source, writer, fps=fps, frames=frames, stop=stop, convert=convert)
