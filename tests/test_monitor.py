"""StreamMonitor, what every viewer polls: it follows a block recreated under its name, shows
a header rewritten under it as an error, reports a frame new once, keeps the last good frame
when a copy fails its check, and stays flat over thousands of polls."""

from __future__ import annotations

import numpy as np
import psutil
import pytest

from tests.support.blocks import SHM, headered_block, plant_file, writable
from viewer import FrameWriter
from viewer.stream import protocol as P
from viewer.stream.frames import LIVE, STALE
from viewer.view.monitor import RawSpec, StreamMonitor


@pytest.mark.parametrize("polls", [10_000])
def test_refreshing_10000_times_keeps_descriptors_and_memory_flat(polls):
    me = psutil.Process()
    with FrameWriter("flat", (480, 640, 3)) as w:
        frames = [np.full((480, 640, 3), v, np.uint8) for v in (1, 2)]
        monitor = StreamMonitor("flat")
        for k in range(200):  # warm up allocator and caches
            w.write(frames[k % 2])
            monitor.poll()
        fds, rss = me.num_fds(), me.memory_info().rss
        for k in range(polls):
            w.write(frames[k % 2])
            assert monitor.poll().new
        assert me.num_fds() == fds  # one descriptor per attached block (mmap keeps a dup), no more
        assert me.memory_info().rss - rss < 8 * 2**20
        monitor.close()


def test_a_copy_that_fails_its_check_never_spoils_the_frame_on_show():
    with FrameWriter("spoil", (4, 4)) as w:
        w.write(np.full((4, 4), 7, np.uint8))
        monitor = StreamMonitor("spoil")
        assert monitor.poll().frame.image.max() == 7
        assert not monitor.poll().new  # polls with nothing new in between must not matter
        lay, shm = w.layout, writable(w.block_name)
        try:
            # frames_written says 2, but slot 1 holds garbage stamped as frame 0: every copy
            # of it fails the index check, until the reader gives up (BusyError).
            shm.buf[lay.pixels_offset(1) : lay.pixels_offset(1) + 16] = b"\xee" * 16
            published = np.ndarray(1, np.uint64, buffer=shm.buf, offset=P.FRAMES_WRITTEN_OFFSET)
            published[0] = 2
            status = monitor.poll()
            assert not status.new and (status.frame.image == 7).all()
            del published
        finally:
            monitor.close()
            shm.close()


def test_a_header_rewritten_under_a_running_viewer_is_an_error_it_shows():
    from pathlib import Path

    from viewer.stream.frames import ERROR, LIVE
    from viewer.view.monitor import StreamMonitor

    with FrameWriter("rewritten", (2, 2)) as w:
        w.write(np.zeros((2, 2), np.uint8))
        monitor = StreamMonitor("rewritten")
        try:
            assert monitor.poll().state == LIVE
            with open(Path("/dev/shm") / w.block_name, "r+b") as f:
                f.seek(16)
                f.write((3).to_bytes(4, "little"))  # the height, changed under the viewer
            status = monitor.poll()
            assert status.state == ERROR and "header changed" in status.error
        finally:
            monitor.close()


def test_a_raw_block_recreated_under_its_name_is_followed():
    from multiprocessing import shared_memory

    name = "psm_trust_rawagain"
    first = shared_memory.SharedMemory(name, create=True, size=16)
    first.buf[:16] = bytes([1]) * 16
    monitor = StreamMonitor(name, raw=RawSpec((4, 4)))
    try:
        assert monitor.poll().sum == 16
        first.close()
        first.unlink()
        second = shared_memory.SharedMemory(name, create=True, size=16)
        second.buf[:16] = bytes([2]) * 16
        try:
            status = monitor.poll()
            assert status.state == LIVE and status.sum == 32
        finally:
            second.close()
            second.unlink()
        assert monitor.poll().state == STALE
    finally:
        monitor.close()


def test_a_headered_block_recreated_under_its_name_is_followed(planted):
    name = "psm_trust_again"
    planted.append(SHM / name)
    plant_file(SHM / name, headered_block(value=1, created_ns=1), 0o600)
    monitor = StreamMonitor(name, block=True)
    try:
        assert monitor.poll().sum == 48
        (SHM / name).unlink()
        assert monitor.poll().state == STALE
        plant_file(SHM / name, headered_block(value=2, created_ns=2), 0o600)
        status = monitor.poll()
        assert status.state == LIVE and status.sum == 96
    finally:
        monitor.close()


def test_a_frame_is_new_once_even_when_the_writer_races_the_read():
    with FrameWriter("once", (4, 4)) as w:
        w.write(np.zeros((4, 4), np.uint8))
        monitor = StreamMonitor("once")
        try:
            assert monitor.poll().new
            reader = monitor._reader
            real_read = reader.read

            def read_while_a_frame_lands(out=None):
                w.write(np.ones((4, 4), np.uint8))  # published between frames_written and the copy
                reader.read = real_read
                return real_read(out)

            w.write(np.ones((4, 4), np.uint8))
            reader.read = read_while_a_frame_lands
            assert monitor.poll().frame.index == 2
            assert not monitor.poll().new
        finally:
            monitor.close()


def test_a_frame_written_just_before_its_producer_was_killed_does_not_make_it_live():
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.support.helpers import read_line

    script = Path(__file__).parent / "support" / "step_producer.py"
    with subprocess.Popen(
        [sys.executable, str(script), "dying"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        monitor = None
        try:
            assert read_line(proc).strip() == "ready"
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert read_line(proc).strip() == "wrote 1"
            monitor = StreamMonitor("dying")
            assert monitor.poll().state == LIVE
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert read_line(proc).strip() == "wrote 2"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=20)
            status = monitor.poll()  # frame 2 is new to it, and its producer is dead
            assert status.new and int(status.frame.image[0, 0]) == 2
            assert status.state == STALE and status.fps == 0.0
        finally:
            if monitor is not None:
                monitor.close()
            if proc.poll() is None:
                proc.kill()


def test_a_1_fps_stream_polled_every_300_ms_reads_1_fps_from_the_second_frame_on():
    from viewer.view.monitor import RateMeter

    meter, rates = RateMeter(), []
    for tick in range(40):  # 12 s of polls; frame k is written at k s and seen at the next poll
        t = tick * 0.3
        frames = int(t) + 1
        if not rates or frames != rates[-1][0]:
            rates.append((frames, meter.add(t, frames, stamp=float(frames - 1))))
    assert rates[0][1] is None and all(r == pytest.approx(1.0) for _, r in rates[1:])
    # without the producer's stamps, the polls' jitter shows, but never 0.0 or 0.7
    meter = RateMeter()
    unstamped = [meter.add(t, n) for n, t in ((n, 0.3 * -(-n // 0.3)) for n in range(1, 13))]
    assert all(0.8 <= r <= 1.25 for r in unstamped[1:])


def test_between_frames_the_rate_holds_it_does_not_drop_towards_0():
    with FrameWriter("holding", (4, 4)) as w:
        monitor = StreamMonitor("holding")
        try:
            for _ in range(3):
                w.write(np.zeros((4, 4), np.uint8))
                first = monitor.poll()
            assert first.fps is not None and first.fps > 0
            assert [monitor.poll().fps for _ in range(5)] == [first.fps] * 5
        finally:
            monitor.close()
