"""``shmview info FILE.mcap``: what a recording holds, per stream, and whether it is whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from viewer.durations import duration
from viewer.recording import messages as M
from viewer.recording.reading import open_recording
from viewer.stream.frames import describe


@dataclass
class StreamSummary:
    desc: M.Description
    frames: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    restarts: int = 0  # the index went back: the producer restarted while recording
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (first missing, last missing)
    _last_index: int | None = None

    def add(self, index: int | None, stamp: int | None) -> None:
        self.frames += 1
        if stamp is not None:
            self.first_ns = stamp if self.first_ns is None else self.first_ns
            self.last_ns = stamp
        if index is None:
            return
        last, self._last_index = self._last_index, index
        if last is not None and index <= last:
            self.restarts += 1
        elif last is not None and index > last + 1:
            self.gaps.append((last + 1, index - 1))

    @property
    def seconds(self) -> float:
        return 0.0 if self.first_ns is None or self.last_ns is None else (self.last_ns - self.first_ns) / 1e9

    @property
    def fps(self) -> float:
        return (self.frames - 1) / self.seconds if self.seconds > 0 else 0.0

    @property
    def missing(self) -> int:
        return sum(b - a + 1 for a, b in self.gaps)

    def line(self) -> str:
        what = describe(self.desc.shape, self.desc.dtype, self.desc.pixel_format)
        gaps = (
            "no gaps"
            if not self.gaps
            else (
                f"{len(self.gaps):,} gap{_s(len(self.gaps))} ({self.missing:,} frame{_s(self.missing)} missing: "
                + ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in self.gaps[:5])
                + (", ..." if len(self.gaps) > 5 else "")
                + ")"
            )
        )
        restarts = f", {self.restarts} restart{_s(self.restarts)}" if self.restarts else ""
        return (
            f"  {self.desc.name}  {what}  {self.frames:,} frames  {duration(self.seconds)}  "
            f"{self.fps:.1f} fps  {gaps}{restarts}"
        )


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def summarize(path: Path) -> tuple[list[StreamSummary], bool, str | None]:
    """(one summary per stream, whether the file is complete, why not)."""
    rec = open_recording(path)
    found: dict[str, StreamSummary] = {}
    for desc, record in rec.records():
        summary = found.setdefault(desc.name, StreamSummary(desc))
        summary.add(record.get("index"), record.get("timestamp_ns"))
    return list(found.values()), bool(rec.complete), rec.problem


def report(path: Path) -> list[str]:
    """The lines ``shmview info`` prints."""
    streams, complete, problem = summarize(path)
    size = path.stat().st_size
    state = "complete" if complete else f"{problem}; read what is there"
    lines = [f"{path}: {size / 1e6:,.1f} MB, {len(streams)} stream{'' if len(streams) == 1 else 's'}, {state}"]
    lines += [s.line() for s in streams]
    return lines
