"""``shmview record``: streams in, a file out, one summary line per stream.

The output's format is decided from its name before anything waits (sinks.output_kind).
A stream asked for that is not there is never lost without a word, and never costs the
others their frames: ``missing="skip"`` (the default) records the streams that are there
at once and takes a late one in when it appears within ``timeout``, or leaves it out and
says so; ``missing="wait"`` records nothing until every stream is there, and gives up
(StreamNotFoundError, nothing written) after ``timeout``. Either way, a wait says what it
waits for and which streams are live instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from viewer.durations import duration
from viewer.errors import StreamNotFoundError
from viewer.recording.progress import for_terminal
from viewer.recording.recorder import Recorder, Tally
from viewer.recording.sinks import open_sink, output_kind
from viewer.signals import Stop
from viewer.stream.reader import FrameReader
from viewer.stream.registry import live_records, validate_name

log = logging.getLogger(__name__)

MISSING = ("skip", "wait")
_LOOK_EVERY_S = 0.1  # how often a stream not there yet is looked for


def record(
    names: list[str],
    out: str | Path,
    *,
    frames: int | None = None,
    seconds: float | None = None,
    compression: str = "zstd",
    timeout: float = 5.0,
    missing: str = "skip",
    stop: Stop | None = None,
) -> list[Tally]:
    """Record streams ``names`` into ``out`` (FILE.mcap, a video FILE.mp4/.avi/.mkv, or
    "DIR/" of images; anything else is a ConfigError) until each has given ``frames``
    frames or ended, ``seconds`` passed, or ``stop`` is set. Streams not there are waited
    for up to ``timeout`` s as ``missing`` says (see the module); with none of them there,
    StreamNotFoundError and nothing is written. The file is finished on every path out, an
    exception included. One Tally per name, in the order of ``names``."""
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {', '.join(MISSING)}, got {missing!r}")
    output_kind(str(out))
    for name in names:
        validate_name(name)
    stop = stop or threading.Event()
    with ExitStack() as stack:
        looking = _Looking(names, timeout, stack)
        looking.wait(stop, every=missing == "wait")
        if stop.is_set():  # while waiting: no file
            return [Tally(n, absent="stopped before the recording began") for n in names]
        if not looking.readers or (missing == "wait" and looking.waiting):
            raise looking.not_found()
        sink = open_sink(str(out), list(names), compression)
        stack.callback(sink.close)
        label = Path(out).name + ("/" if str(out).endswith("/") else "")  # short: the columns are shared
        progress = for_terminal(list(names), written=sink.written, out=label)
        if progress is not None:
            stack.callback(progress.close)
            looking.notify = progress.note
        recorder = Recorder(
            looking.arrived(), sink, frames=frames, seconds=seconds, stop=stop, progress=progress, latecomers=looking
        )
        tallies = {t.name: t for t in recorder.run()}
        return [tallies.get(n) or Tally(n, absent=looking.why(n)) for n in names]


class _Looking:
    """The streams asked for, attached as they appear, until ``timeout`` s from now; the
    Latecomers a Recorder takes in while it records the others."""

    def __init__(self, names: list[str], timeout: float, stack: ExitStack) -> None:
        self.readers: list[FrameReader] = []
        self._absent = list(dict.fromkeys(names))  # in order, once each
        self._timeout, self._stack = timeout, stack
        self._deadline = time.monotonic() + timeout
        self._fresh: list[FrameReader] = []
        self._next_look = 0.0
        self._gone: dict[str, str] = {}  # given up on: why
        self._said_waiting = False
        self.notify: Callable[[str, str], None] | None = None  # (name, what became of it): the progress
        self._look()
        if self._absent:
            log.warning(
                "waiting up to %s for %s (live streams: %s)", duration(timeout), _quoted(self._absent), live_names()
            )
        self._said_waiting = bool(self._absent)

    @property
    def waiting(self) -> bool:
        return bool(self._absent)

    def wait(self, stop: Stop, *, every: bool) -> None:
        """Until every stream is there (``every``) or at least one, the deadline, or ``stop``."""
        while self._absent and not (self.readers and not every) and not stop.is_set():
            if time.monotonic() >= self._deadline:
                return
            stop.wait(_LOOK_EVERY_S)
            self._look()

    def arrived(self) -> list[FrameReader]:
        self._look()
        if self._absent and time.monotonic() >= self._deadline:
            self._give_up()
        fresh, self._fresh = self._fresh, []
        return fresh

    def give_up(self) -> None:
        if self._absent:
            self._give_up("not there when the recording ended")

    def why(self, name: str) -> str:
        return self._gone.get(name, "never appeared")

    def not_found(self) -> StreamNotFoundError:
        return StreamNotFoundError(
            f"no stream {_quoted(self._absent)} after {duration(self._timeout)}; live streams: {live_names()}",
            names=list(self._absent),
        )

    def _look(self) -> None:
        now = time.monotonic()
        if now < self._next_look:
            return
        self._next_look = now + _LOOK_EVERY_S
        for name in list(self._absent):
            try:
                reader = FrameReader.open(name, timeout=0, follow=True)
            except StreamNotFoundError:
                continue
            self._stack.enter_context(reader)
            self._absent.remove(name)
            self.readers.append(reader)
            self._fresh.append(reader)
            if self._said_waiting:
                log.warning("stream %r appeared", name)

    def _give_up(self, why: str | None = None) -> None:
        why = f"{why or f'no such stream after {duration(self._timeout)}'} (live streams: {live_names()})"
        for name in self._absent:
            self._gone[name] = why
            log.warning("not recording %r: %s", name, why)
            if self.notify is not None:
                self.notify(name, "not recorded")
        self._absent.clear()


def live_names() -> str:
    return ", ".join(r.name for r in live_records()) or "none"


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)
