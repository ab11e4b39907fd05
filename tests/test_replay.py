"""`shmview produce replay` and `shmview info` on recordings made here: every frame back in
order, every stream under its own name, gaps and restarts counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.helpers import cli, producer, read_line, start, stop
from viewer import FrameReader
from viewer.recording.reading import Recording

H, W = 24, 32
SMALL = ["--size", f"{W}x{H}"]


def test_a_solid_stream_records_every_frame_and_replays_in_order(tmp_path: Path):
    out = tmp_path / "solid.mcap"
    with producer("rec0", *SMALL, "--fps", "50", "--slots", "16"):
        done = cli("record", "rec0", "--out", str(out), "--frames", "30")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "recorded 30 frames of rec0, skipped 0"
    assert done.stderr == ""  # not a terminal: no progress
    frames = [r.frame for r in Recording(out).frames()]
    indices = [f.index for f in frames]
    assert indices == list(range(indices[0], indices[0] + 30))  # contiguous
    assert all(f.image.sum() == (f.index % 256) * H * W * 3 for f in frames)
    stamps = [f.timestamp_ns for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == 30

    replay = start(["produce", "replay", "--path", str(out), "--name", "back"])
    try:
        assert read_line(replay).startswith("stream back ready")
        with FrameReader("back", follow=True) as reader:
            seen = [(f.index, int(f.image.sum())) for f in _until_end(reader)]
        text, err = replay.communicate(timeout=30)  # it ends by itself at the end of the recording
    finally:
        stop(replay)
    assert replay.returncode == 0, err
    assert text.strip() == "stream back stopped after 30 frames: end of recording"
    assert seen and seen[-1][0] == 29 and [k for k, _ in seen] == sorted(k for k, _ in seen)
    assert all(total == int(frames[k].image.sum()) for k, total in seen)  # replayed frame k is recorded frame k


def _until_end(reader: FrameReader) -> Iterator:
    for frame in reader.frames(timeout=20):
        yield frame
        if frame.index == 29:
            return


def test_every_recorded_stream_replays_under_its_own_name(tmp_path: Path):
    out = tmp_path / "two.mcap"
    with producer("left", *SMALL, "--fps", "50"), producer("right", "--size", "16x8", "--channels", "1", "--fps", "50"):
        done = cli("record", "left", "right", "--out", str(out), "--frames", "5")
    assert done.returncode == 0, done.stderr
    replay = start(["produce", "replay", "--path", str(out), "--loop", "--speed", "0"])
    try:
        ready = {read_line(replay).split()[1] for _ in range(2)}
        assert ready == {"left", "right"}
        with FrameReader("left") as left, FrameReader("right") as right:
            a, b = left.wait(10), right.wait(10)
    finally:
        code, err = stop(replay)
    assert code == 0, err
    assert a.image.shape == (H, W, 3) and b.image.shape == (8, 16) and right.info.pixel_format == "GRAY"


def test_info_counts_gaps_and_restarts():
    from viewer.recording.info import StreamSummary
    from viewer.recording.messages import Description

    summary = StreamSummary(Description("s", (2, 2), "uint8", "GRAY", 0))
    for index, stamp in [(5, 0), (6, 10**8), (9, 2 * 10**8), (10, 3 * 10**8), (0, 4 * 10**8), (1, 5 * 10**8)]:
        summary.add(index, stamp)
    assert (summary.frames, summary.gaps, summary.missing, summary.restarts) == (6, [(7, 8)], 2, 1)
    assert summary.fps == pytest.approx(10.0)
    assert "1 gap (2 frames missing: 7-8), 1 restart" in summary.line()
