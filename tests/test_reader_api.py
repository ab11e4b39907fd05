"""The reader API for tests and scripts (issue 11): wait for a stream, wait for frames,
iterate over them, follow restarts, and say where the stream stands."""

from __future__ import annotations

import signal
import threading

import numpy as np
import pytest

from tests.support.helpers import producer, start, stop, wait_for
from viewer import FrameReader, FrameWriter, StreamNotFoundError, StreamTimeoutError
from viewer.stream.reader import GONE, LIVE

SMALL = ["--size", "64x48"]


def test_wait_gives_the_first_frame_then_only_newer_ones():
    with FrameWriter("waits", (4, 4)) as w, FrameReader("waits") as r:
        with pytest.raises(StreamTimeoutError, match="'waits'") as timed_out:
            r.wait(0.05)
        assert isinstance(timed_out.value, TimeoutError)
        w.write(np.full((4, 4), 1, np.uint8))
        assert r.wait(1).index == 0
        with pytest.raises(StreamTimeoutError, match="after index 0"):
            r.wait(0.05, after=0)
        w.write(np.full((4, 4), 2, np.uint8))
        frame = r.wait(1, after=0)
        assert frame.index == 1 and frame.image.max() == 2


def test_wait_returns_a_frame_written_by_another_thread_meanwhile():
    with FrameWriter("later", (4, 4)) as w, FrameReader("later") as r:
        ready = threading.Event()

        def write_when_asked():
            ready.wait(10)
            w.write(np.full((4, 4), 9, np.uint8))

        t = threading.Thread(target=write_when_asked)
        t.start()
        ready.set()
        assert r.wait(10).image.max() == 9
        t.join()


def test_frames_yields_each_frame_once_and_ends_with_the_stream():
    with producer("iterated", *SMALL, "--frames", "60", "--fps", "200"), FrameReader("iterated") as r:
        seen = [f.index for f in r.frames(timeout=10)]
    assert seen == sorted(set(seen)), "each frame at most once, in order"
    assert seen[-1] == 59
    assert len(seen) + r.skipped == seen[-1] - seen[0] + 1  # what it missed, it counted


def test_open_waits_for_a_stream_to_appear():
    proc = start(["produce", "synthetic", "--name", "appears", *SMALL])
    try:
        with FrameReader.open("appears", timeout=30) as r:
            assert r.wait(10).image.shape == (48, 64, 3)
    finally:
        stop(proc)
    with pytest.raises(StreamNotFoundError, match=r"after 0\.05 s"):
        FrameReader.open("never", timeout=0.05)


def test_without_follow_a_reader_says_its_producer_is_gone():
    with producer("dies", *SMALL) as (proc, _), FrameReader("dies") as r:
        assert r.wait(10) is not None and r.state == LIVE
        proc.kill()
        wait_for(lambda: r.state == GONE, timeout=10, what="state gone")


def test_a_following_reader_moves_to_the_restarted_producer():
    with producer("phoenix2", *SMALL) as (proc, first):
        r = FrameReader("phoenix2", follow=True)
        try:
            r.wait(10)
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            with producer("phoenix2", *SMALL, "--channels", "1") as (_, second):
                frame = r.wait(30)  # from the new block: another shape, indices from 0
                assert r.info.block == second != first and frame.image.shape == (48, 64)
                assert r.state == LIVE
        finally:
            r.close()


def test_a_reader_that_fell_behind_catches_up_through_the_ring():
    with FrameWriter("behind", (4, 4), slots=8) as w, FrameReader("behind") as r:
        w.write(np.full((4, 4), 0, np.uint8))
        frames = r.frames(timeout=5)
        assert next(frames).index == 0
        for k in range(1, 7):  # six frames while the reader looks away: the ring holds them all
            w.write(np.full((4, 4), k, np.uint8))
        got = [next(frames) for _ in range(6)]
        assert [f.index for f in got] == [1, 2, 3, 4, 5, 6] and r.skipped == 0
        assert [int(f.image[0, 0]) for f in got] == [1, 2, 3, 4, 5, 6]
        assert r.read(index=6).index == 6 and r.read(index=7) is None
        for k in range(7, 20):  # more than the ring holds: the oldest are gone, and counted
            w.write(np.full((4, 4), k, np.uint8))
        first = next(frames)
        assert first.index > 7 and r.skipped == first.index - 7
        assert r.read(index=1) is None  # overwritten long ago
