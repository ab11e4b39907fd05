"""Replay a recording (``shmview record`` MCAP) as live streams, exactly as recorded.

Not a FrameSource under serve(): serve() makes frames fit a stream (channel order, dtype
rules), and replay must give back each stream's recorded shape, dtype, pixel format and
pixels bit for bit, floats included. So it owns one FrameWriter per recorded stream and
paces them on the recording's own clock (all streams on one timeline).

Nothing in the file is trusted (viewer/recording/reading.py checks it): choosing the streams
reads the whole file, so a recording that does not hold up is refused (RecordingError,
exit 1) before any stream is published.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from viewer.errors import ReplayArgumentError, SourceNotFoundError
from viewer.recording.messages import Description
from viewer.recording.reading import Recording, open_recording
from viewer.signals import Stop, stop_flag, stop_reason
from viewer.stream import FrameWriter
from viewer.stream.frames import describe
from viewer.stream.registry import validate_name


def replay(
    path: Path,
    *,
    stream: str | None = None,
    name: str | None = None,
    loop: bool = False,
    speed: float = 1.0,
    slots: int = 3,
    out: TextIO = sys.stdout,
    stop: Stop | None = None,
) -> dict[str, int]:
    """Publish the recorded streams of ``path`` (only ``stream`` if given, renamed ``name``)
    with their recorded relative timing divided by ``speed`` (0: as fast as possible), once
    or on a ``loop``, until the end or ``stop``; SIGINT, SIGTERM and SIGHUP stop it when it
    runs in the main thread without ``stop``. Prints a ready line per stream, then a
    stopped line; returns the frames written per stream name."""
    rec = open_recording(path)
    chosen = _choose(rec, path, stream, name)
    with stop_flag(stop) as stopping, ExitStack() as stack:
        writers = {}
        for desc, new_name in chosen.items():
            writer = FrameWriter(
                new_name,
                desc.shape,
                desc.dtype,
                pixel_format=desc.pixel_format,
                slots=slots,
                meta_bytes=desc.meta_bytes,
            )
            stack.callback(writer.close)
            writers[desc.name] = writer
            print(_ready_line(new_name, desc, writer, slots), file=out, flush=True)
        _play(rec, writers, loop, speed, stopping)
        for w in writers.values():
            n = w.frames_written
            print(
                f"stream {w.name} stopped after {n:,} frame{'' if n == 1 else 's'}: {_why(stopping)}",
                file=out,
                flush=True,
            )
        return {w.name: w.frames_written for w in writers.values()}


def _why(stop: Stop) -> str:
    if not stop.is_set():
        return "end of recording"
    return stop_reason(stop)


def _choose(rec: Recording, path: Path, stream: str | None, name: str | None) -> dict[Description, str]:
    """The streams to replay, each with the name it is published under."""
    streams = rec.streams()
    if stream is not None:
        streams = [d for d in streams if d.name == stream]
        if not streams:
            have = ", ".join(d.name for d in rec.streams()) or "none"
            raise SourceNotFoundError(f"no stream {stream!r} in {path} (it has: {have})")
    if not streams:
        raise SourceNotFoundError(f"{path} holds no recorded frames")
    if name is not None and len(streams) > 1:
        raise ReplayArgumentError(f"--name needs one stream, and {path} has {len(streams)}: choose one with --stream")
    for desc in streams:
        validate_name(name or desc.name)
    return {d: name or d.name for d in streams}


def _play(rec: Recording, writers: dict[str, FrameWriter], loop: bool, speed: float, stop: Stop) -> None:
    while not stop.is_set():
        played = 0
        start, first_ns = time.monotonic(), None
        for item in rec.frames(set(writers)):
            stamp = item.frame.timestamp_ns
            if speed > 0 and stamp is not None:
                first_ns = stamp if first_ns is None else first_ns
                due = start + (stamp - first_ns) / 1e9 / speed
                if stop.wait(max(0.0, due - time.monotonic())):
                    return
            elif stop.is_set():
                return
            writers[item.desc.name].write(item.frame.image, meta=item.frame.meta)
            played += 1
        if not loop or not played:
            return


def _ready_line(name: str, desc: Description, writer: FrameWriter, slots: int) -> str:
    what = describe(desc.shape, desc.dtype, desc.pixel_format)
    return f"stream {name} ready: block {writer.block_name}, {what}, {slots} slots"
