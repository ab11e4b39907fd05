"""Recording progress on a terminal (rich), and nothing when stderr is not one."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from viewer.recording.recorder import Tally


class TerminalProgress:
    """One live line per stream: frames, MB, rate, skipped, elapsed. A callable for
    ``Recorder(progress=...)``; ``close()`` leaves the last state on screen."""

    def __init__(self, names: list[str], stream: TextIO | None = None) -> None:
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
        self._bar.start()

    def __call__(self, tallies: list[Tally], elapsed: float) -> None:
        for t in tallies:
            rate = f"{t.recorded / elapsed:.1f} fps" if elapsed >= 1.0 else "- fps"  # too few frames before
            text = f"{t.recorded:,} frames  {t.bytes / 1e6:,.1f} MB  {rate}  skipped {t.skipped:,}"
            self._bar.update(self._tasks[t.name], text=text)

    def close(self) -> None:
        self._bar.stop()


def for_terminal(names: list[str], stream: TextIO | None = None) -> Any:
    """A TerminalProgress when ``stream`` (stderr) is a terminal, else None: quiet."""
    stream = stream or sys.stderr
    return TerminalProgress(names, stream) if stream.isatty() else None
