"""Producers that draw or decode straight into the stream's slot (issue 12): no copy on
the writer's side, and the very same pixels as the copying path."""

from __future__ import annotations

from unittest import mock

import cv2
import numpy as np
import pytest

from producers.base import run
from producers.synthetic import PATTERNS, SyntheticSource
from producers.video import VideoSource
from viewer import FrameReader, FrameWriter


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_pattern_draws_in_place_what_it_would_hand_out(pattern, channels):
    handed, drawn = SyntheticSource(pattern, 64, 48, channels), SyntheticSource(pattern, 64, 48, channels)
    out = np.empty(handed.shape, np.uint8)
    for _ in range(5):
        assert drawn.read_into(out)
        np.testing.assert_array_equal(out, handed.read())


def _record(writer: FrameWriter, reader: FrameReader, produce) -> list[np.ndarray]:
    seen = []
    original = writer._publish

    def publish_and_look(*args, **kwargs):
        original(*args, **kwargs)
        seen.append(reader.read().image)

    with (
        mock.patch.object(writer, "_publish", side_effect=publish_and_look),
        mock.patch.object(writer, "write", side_effect=AssertionError("copied, not filled in place")),
    ):
        produce()
    return seen


def test_the_synthetic_producer_fills_the_slot_itself():
    source = SyntheticSource("solid", 64, 48, 3)
    with FrameWriter("inplace", source.shape) as w, FrameReader("inplace") as r:
        frames = _record(w, r, lambda: run(source, w, fps=0, frames=5))
    assert [int(f.sum()) for f in frames] == [k * 64 * 48 * 3 for k in range(5)]


def test_a_video_decodes_straight_into_the_slot(tmp_path):
    path = tmp_path / "clip.avi"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for k in range(6):
        out.write(np.full((48, 64, 3), 40 * k, np.uint8))
    out.release()
    expected = VideoSource(path)
    with expected:
        decoded = [expected.read() for _ in range(6)]
    source = VideoSource(path)
    with source, FrameWriter("clip", (48, 64, 3)) as w, FrameReader("clip") as r:
        first = source.read()  # as serve() does: the first frame tells the stream's format
        assert source.fills(w.layout.shape, w.layout.dtype)
        w.write(first)
        frames = _record(w, r, lambda: run(source, w, fps=0))
    assert len(frames) == 5
    for got, want in zip(frames, decoded[1:], strict=True):
        np.testing.assert_array_equal(got, want)
