"""Run a source as a named stream until it ends or a signal stops it (the CLI's producer)."""

from __future__ import annotations

import sys
from typing import TextIO

import numpy as np

from producers.base import FrameSource, NoFrameYet, run
from producers.convert import Conformer
from viewer.errors import SourceError
from viewer.signals import Stop, stop_flag, stop_reason
from viewer.stream import FrameWriter
from viewer.stream.blocks import check_room
from viewer.stream.frames import describe
from viewer.stream.protocol import make_layout
from viewer.stream.registry import validate_name


def _first_frame(source: FrameSource, stop: Stop) -> np.ndarray | None:
    while not stop.is_set():
        try:
            frame = source.read()
        except NoFrameYet:
            continue
        if frame is None:
            raise SourceError(f"{source} ended before its first frame")
        return frame
    return None


def _check_room_early(
    name: str, source: FrameSource, size: tuple[int, int] | None, channels: int | None, slots: int
) -> None:
    """Refuse a stream that cannot fit in /dev/shm before any frame is made: a huge first
    frame takes seconds and gigabytes to produce, and a producer busy with it cannot even
    be stopped. Uses what is known beforehand, at its smallest (uint8, 1 channel unless told)."""
    validate_name(name)
    if size is not None:
        shape: tuple[int, ...] = (size[1], size[0]) + ((3,) if channels == 3 else ())
    elif source.shape is not None:
        shape = source.shape
    else:
        return
    check_room(make_layout(shape, "uint8", None, slots).block_size)


def _ready_line(name: str, writer: FrameWriter) -> str:
    lay = writer.layout
    what = describe(lay.shape, lay.dtype.name, lay.pixel_format)
    return f"stream {name} ready: block {writer.block_name}, {what}, {lay.slot_count} slots"


def _stopped_line(name: str, stop: Stop, written: int | None, frames: int | None) -> str:
    """Why the stream ended, for the one line a producer prints when it stops."""
    if stop.is_set():
        why = stop_reason(stop)
    elif frames is not None and written is not None and written >= frames:
        why = "frame limit reached"
    else:
        why = "end of source"
    if written is None:
        return f"stream {name} stopped before its first frame: {why}"
    return f"stream {name} stopped after {written:,} frame{'' if written == 1 else 's'}: {why}"


def serve(
    source: FrameSource,
    name: str,
    *,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
    letterbox: bool = True,
    slots: int = 3,
    fps: float | None = None,
    frames: int | None = None,
    out: TextIO = sys.stdout,
    stop: Stop | None = None,
) -> int:
    """Publish ``source`` as stream ``name`` until it ends, ``frames`` are written, or it
    is stopped; print a ready line and a stopped line; return the frames written.

    The stream takes the first frame's size, colour (grey or BGR) and dtype (uint8,
    uint16, float32, float64) unless ``size`` (width, height) or ``channels`` (1 or 3)
    say otherwise; other frames are made to fit, keeping their aspect ratio with black
    bars unless ``letterbox`` is False. ``fps`` None paces at the source's own rate (a
    video file's), else 30; 0 does not pace. ``stop`` (an object with ``is_set()`` and
    ``wait(timeout)``, such as a threading.Event) ends it early; without one, SIGINT,
    SIGTERM and SIGHUP do when serve() runs in the main thread.
    """
    _check_room_early(name, source, size, channels, slots)
    with stop_flag(stop) as stopping, source:
        first = _first_frame(source, stopping)
        if first is None:
            print(_stopped_line(name, stopping, None, frames), file=out, flush=True)
            return 0
        fit = Conformer.for_first(
            first, size, channels, colour_order=source.colour_order, letterbox=letterbox, source=str(source)
        )
        source.prepare = fit
        with FrameWriter(name, fit.shape, fit.dtype, pixel_format=fit.pixel_format, slots=slots) as writer:
            print(_ready_line(name, writer), file=out, flush=True)
            rate = fps if fps is not None else source.fps or 30.0
            written = run(source, writer, fps=rate, frames=frames, stop=stopping, convert=fit, first=first)
        print(_stopped_line(name, stopping, written, frames), file=out, flush=True)
        return written
