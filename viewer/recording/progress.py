"""Recording progress on a terminal (rich), and nothing when stderr is not one."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import IO, Any, TextIO

from viewer.recording.recorder import Tally


class TerminalProgress:
    """One live line per stream: frames recorded and their raw size, rate, skipped,
    elapsed; and one for the output: the bytes it holds on disk so far (``written()``),
    which compression makes far fewer than the raw frames. A callable for
    ``Recorder(progress=...)``; ``close()`` leaves the last state on screen."""

    def __init__(
        self,
        names: list[str],
        stream: TextIO | None = None,
        *,
        written: Callable[[], int] | None = None,
        out: str = "output",
    ) -> None:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        console = Console(file=stream or sys.stderr)
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.fields[text]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks = {n: self._bar.add_task(n, total=None, text="waiting") for n in names}
        self._written = written
        self._file = self._bar.add_task(out, total=None, text="") if written is not None else None
        self._bar.start()
        self._logs = _through(sys.stderr, console.file)

    def __call__(self, tallies: list[Tally], elapsed: float) -> None:
        for t in tallies:
            rate = f"{t.recorded / elapsed:.1f} fps" if elapsed >= 1.0 else "- fps"  # too few frames before
            text = f"{t.recorded:,} frames ({_mb(t.bytes)} raw)  {rate}  skipped {t.skipped:,}"
            self._bar.update(self._tasks[t.name], text=text)
        if self._written is not None and self._file is not None:
            self._bar.update(self._file, text=f"{_mb(self._written())} written")

    def note(self, name: str, text: str) -> None:
        """Say what became of a stream that gives no tallies (one never recorded)."""
        self._bar.update(self._tasks[name], text=text)

    def close(self) -> None:
        self._bar.stop()
        for handler, stream in self._logs:
            handler.setStream(stream)


def _through(proxy: TextIO, terminal: IO[str]) -> list[tuple[logging.StreamHandler, Any]]:
    """Point the log handlers that write to ``terminal`` at rich's ``proxy`` (sys.stderr
    while the bars are live), which prints above the bars: written to the terminal
    directly, a warning would be drawn over at the next refresh. Returns what to restore."""
    moved = []
    for handler in logging.root.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is terminal and proxy is not terminal:
            moved.append((handler, handler.setStream(proxy)))
    return moved


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def for_terminal(
    names: list[str], stream: TextIO | None = None, *, written: Callable[[], int] | None = None, out: str = "output"
) -> Any:
    """A TerminalProgress when ``stream`` (stderr) is a terminal, else None: quiet."""
    stream = stream or sys.stderr
    return TerminalProgress(names, stream, written=written, out=out) if stream.isatty() else None
