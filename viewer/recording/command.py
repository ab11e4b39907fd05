"""``shmview record``: streams in, a file out, one summary line per stream."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from viewer.recording.progress import for_terminal
from viewer.recording.recorder import Recorder, Tally
from viewer.recording.sinks import open_sink
from viewer.signals import Stop
from viewer.stream.reader import FrameReader


def record(
    names: list[str],
    out: str | Path,
    *,
    frames: int | None = None,
    seconds: float | None = None,
    compression: str = "zstd",
    timeout: float = 5.0,
    stop: Stop | None = None,
) -> list[Tally]:
    """Record streams ``names`` into ``out`` (MCAP, a video, or "DIR/" of images) until each
    has given ``frames`` frames or ended, ``seconds`` passed, or ``stop`` is set. Waits up to
    ``timeout`` s for each stream to appear (StreamNotFoundError). The file is finished on
    every path out, an exception included."""
    with ExitStack() as stack:
        readers = [stack.enter_context(FrameReader.open(n, timeout=timeout, follow=True)) for n in names]
        sink = open_sink(str(out), list(names), compression)
        stack.callback(sink.close)
        progress = for_terminal(list(names))
        if progress is not None:
            stack.callback(progress.close)
        recorder = Recorder(readers, sink, frames=frames, seconds=seconds, stop=stop, progress=progress)
        return recorder.run()
