"""Run a source as a named stream until it ends or a signal stops it (the CLI's producer)."""

from __future__ import annotations

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


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP set ``stop`` instead of killing the process, so the
    block is unlinked on the way out (FACTS 3-4: a process started with ``&`` ignores
    SIGINT, and an unhandled SIGTERM would skip every exit handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


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
    stop = threading.Event()
    with stop_on_signals(stop), source, FrameWriter(
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
