"""Crashes, restarts, many readers and hostile memory: the stream survives and nothing leaks."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.support import workers
from tests.support.blocks import writable
from tests.support.helpers import CLI, cli, json_lines, producer, read_line, start, stop, wait_for
from viewer import BusyError, FrameReader, FrameWriter, ShmviewError, StreamExistsError
from viewer.stream import protocol as P
from viewer.stream.registry import registry_dir
from viewer.view.monitor import LIVE, STALE, StreamMonitor

SMALL = ["--size", "64x48"]
SPAWN = mp.get_context("spawn")


def family(proc: subprocess.Popen) -> list[psutil.Process]:
    """A process and everything it started (its SharedMemoryManager server, its tracker)."""
    parent = psutil.Process(proc.pid)
    return [parent, *parent.children(recursive=True)]


def all_gone(procs: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)


def test_kill_9_of_a_producer_leaves_nothing_and_viewers_see_stale():
    with producer("doomed", *SMALL) as (proc, block):
        procs = family(proc)
        assert len(procs) >= 3  # producer, manager server, resource tracker
        viewer = start(["view", "doomed", "--headless", "--json", "--interval-ms", "50"])
        try:
            wait_for(lambda: '"live"' in read_line(viewer), what="viewer live")
            proc.kill()
            proc.wait()
            wait_for(lambda: not Path("/dev/shm", block).exists(), timeout=5, what="block unlinked")
            wait_for(lambda: all_gone(procs), timeout=5, what="manager and tracker to exit")
            assert "doomed" not in cli("list").stdout
            assert not (registry_dir() / "doomed.json").exists()
            wait_for(lambda: '"stale"' in read_line(viewer), what="viewer stale")
            assert viewer.poll() is None  # the viewer is still up
        finally:
            stop(viewer)


def test_kill_9_of_a_reader_does_not_disturb_producer_or_other_readers():
    with producer("sturdy", *SMALL) as (proc, block):
        victim = start(["view", "sturdy", "--headless", "--json", "--interval-ms", "20"])
        other = start(["view", "sturdy", "--headless", "--json", "--interval-ms", "20"])
        try:
            for v in (victim, other):
                wait_for(lambda v=v: '"live"' in read_line(v), what="viewers live")
            victim.kill()
            victim.wait()
            seen = [json_lines(read_line(other))[0]["frame"] for _ in range(5)]
            assert seen[-1] > seen[0]  # still following new frames
            assert proc.poll() is None and Path("/dev/shm", block).exists()
        finally:
            stop(victim)
            stop(other)


def test_restarted_producer_is_followed_live_stale_live():
    viewer = start(["view", "phoenix", "--headless", "--json", "--interval-ms", "50", "--timeout", "60"])
    try:
        states: list[tuple[str, int | None]] = []

        def record_until(state: str) -> bool:
            line = json_lines(read_line(viewer))[0]
            states.append((line["state"], line["frame"]))
            return line["state"] == state and line["frame"] is not None

        with producer("phoenix", *SMALL) as (proc, first_block):
            wait_for(lambda: record_until(LIVE), what="live")
            wait_for(lambda: record_until(LIVE) and states[-1][1] > 20, what="some frames")
            before = states[-1][1]
            proc.kill()  # the harshest stop; SIGTERM is the polite one
        wait_for(lambda: record_until(STALE), what="stale")
        with producer("phoenix", *SMALL) as (_, second_block):
            assert second_block != first_block
            wait_for(lambda: record_until(LIVE) and states[-1][1] < before, what="live again, counting anew")
    finally:
        stop(viewer)
    order = [s for i, (s, _) in enumerate(states) if i == 0 or states[i - 1][0] != s]
    assert order[-3:] == [LIVE, STALE, LIVE], order


def test_a_dead_producers_name_is_taken_over_at_once():
    with producer("reborn", *SMALL) as (proc, _):
        proc.kill()
        proc.wait()
        with producer("reborn", *SMALL) as (_, block):  # no waiting for any clean-up
            assert json_lines(cli("list", "--json").stdout)[0][0]["block"] == block


def test_second_producer_never_damages_the_first():
    with FrameWriter("mine", (4, 4)) as w:
        w.write(np.full((4, 4), 3, np.uint8))
        for _ in range(3):
            with pytest.raises(StreamExistsError):
                FrameWriter("mine", (8, 8))
        with FrameReader("mine") as r:
            assert r.read().image.sum() == 3 * 16 and r.info.shape == (4, 4)


def test_writer_killed_mid_frame_never_yields_its_half_frame():
    with FrameWriter("midframe", (4, 4), slots=3) as w:
        w.write(np.full((4, 4), 1, np.uint8))
        lay, shm = w.layout, writable(w.block_name)
        try:
            # What a writer killed inside write() of frame 1 leaves: slot 1's seq odd,
            # half of its pixels new, frames_written still 1.
            seq = np.ndarray(1, np.uint64, buffer=shm.buf, offset=lay.slot_offset(1))
            seq[0] = 1
            shm.buf[lay.pixels_offset(1) : lay.pixels_offset(1) + 8] = b"\xff" * 8
            with FrameReader("midframe") as r:
                for _ in range(100):
                    frame = r.read()
                    assert frame.index == 0 and frame.image.max() == 1
            del seq
        finally:
            shm.close()


def test_a_stuck_single_slot_is_reported_busy_not_spun_on():
    with FrameWriter("stuck", (4, 4), slots=1) as w:
        w.write(np.full((4, 4), 1, np.uint8))
        shm = writable(w.block_name)
        try:
            seq = np.ndarray(1, np.uint64, buffer=shm.buf, offset=w.layout.slot_offset(0))
            seq[0] = 3  # odd forever: the writer died inside frame 1
            with FrameReader("stuck") as r, pytest.raises(BusyError, match="stuck in the middle"):
                r.read()
            del seq
        finally:
            shm.close()


def test_eight_readers_at_full_speed_see_no_torn_frame():
    ready, stop_writer, results = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    writer = SPAWN.Process(target=workers.flood, args=("crowd", (480, 640, 3), ready, stop_writer))
    writer.start()
    readers = []
    try:
        assert ready.wait(30)
        readers = [SPAWN.Process(target=workers.read_many, args=("crowd", 3000, results)) for _ in range(8)]
        for r in readers:
            r.start()
        stats = [results.get(timeout=180) for _ in readers]
    finally:
        stop_writer.set()
        for p in [*readers, writer]:
            p.join(30)
    assert all(s["torn"] == 0 and s["reads"] == 3000 for s in stats), stats
    assert all(s["distinct"] > 10 for s in stats), stats  # each kept seeing new frames
    assert writer.exitcode == 0


def test_no_room_in_dev_shm_is_one_clear_error_and_nothing_half_made():
    vfs = os.statvfs("/dev/shm")
    total = vfs.f_blocks * vfs.f_frsize
    shape = (16384, 16384, 4)  # 1 GiB a frame: the default frame-size limit
    if np.prod(shape) * 64 <= total:
        pytest.skip("/dev/shm is larger than 64 of the largest frames")
    with pytest.raises(ShmviewError, match="cannot allocate"):
        FrameWriter("huge", shape, "uint8", slots=64)
    assert not (registry_dir() / "huge.json").exists()
    with FrameWriter("huge", (2, 2)):  # the name is free again
        pass


def test_no_room_at_the_command_line_too():
    done = cli("produce", "synthetic", "--name", "huge", "--size", "16384x16384", "--slots", "64")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "cannot allocate" in done.stderr


def test_a_registry_folder_others_can_write_is_refused(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o777)
    open_dir.chmod(0o777)
    env = {**os.environ, "SHMVIEW_REGISTRY": str(open_dir)}
    done = subprocess.run([*CLI, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "must be a directory owned by you, mode 0700" in done.stderr


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


def test_producer_exit_with_signals_in_a_tight_loop_leaks_nothing():
    """Start and stop a producer quickly many times: every block and record goes."""
    for sig in [signal.SIGTERM, signal.SIGINT, signal.SIGHUP] * 3:
        with producer("churn", *SMALL) as (proc, block):
            code, err = stop(proc, sig)
            assert code == 0, err
        assert not Path("/dev/shm", block).exists()
    assert not (registry_dir() / "churn.json").exists()


def test_readers_never_write_even_when_asked_to():
    with FrameWriter("ro", (4, 4)) as w, FrameReader("ro") as r:
        w.write(np.full((4, 4), 5, np.uint8))
        with pytest.raises((TypeError, ValueError)):
            r._att.mapping.held("ro")[1].pixels[0][:] = 0  # the mapping is read-only: numpy refuses the write
        with FrameReader("ro") as again:
            assert again.read().image.max() == 5


def test_header_is_validated_field_by_field():
    lay = P.make_layout((4, 4, 3), "uint8", None, 3)
    good = P.pack_header(lay, 1, 2)
    assert P.parse_header(good, lay.block_size).layout == lay
    with pytest.raises(P.ProtocolError, match="describes"):
        P.parse_header(good, lay.block_size - 1)


if sys.platform != "linux":  # pragma: no cover
    pytest.skip("Linux only", allow_module_level=True)


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
