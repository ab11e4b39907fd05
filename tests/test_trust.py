"""Trust at the edges (issue 9): hostile neighbours in /dev/shm, reads racing close(),
hostile headers, lifetimes decided by the kernel, restarts under the same block name."""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from tests.support.blocks import SHM, headered_block, plant_file
from tests.support.helpers import CLI, cli, json_lines, producer, read_line, start, stop, wait_for
from tests.support.users import NOBODY, as_root, as_user
from viewer import FrameReader, FrameWriter, ProtocolError, ShmviewError, StreamNotFoundError
from viewer.stream import protocol as P
from viewer.stream.registry import live_records, registry_dir
from viewer.view.monitor import ERROR, LIVE, STALE, RawSpec, StreamMonitor

SMALL = ["--size", "64x48"]
# 1. A name means the user's own stream, nothing else.

@as_root
def test_a_strangers_block_under_a_stream_name_is_never_shown(planted):
    path = SHM / "cam0"
    planted.append(path)
    as_user(NOBODY, lambda: plant_file(path, headered_block(value=66)))
    with pytest.raises(StreamNotFoundError):
        FrameReader("cam0")
    done = cli("view", "cam0", "--headless", "--json", "--timeout", "0.5")
    assert done.returncode == 3 and "66" not in done.stdout


@as_root
@pytest.mark.parametrize("kind", ["stranger", "fifo", "symlink", "folder", "unreadable"])
def test_opening_a_block_by_name_is_safe_whatever_is_there(planted, kind):
    name = f"psm_trust_{kind}"
    path = SHM / name
    planted.append(path)
    if kind == "stranger":
        as_user(NOBODY, lambda: plant_file(path, headered_block()))
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        target = SHM / "psm_trust_target"
        planted.append(target)
        plant_file(target, headered_block(), 0o600)
        path.symlink_to(target)
    elif kind == "folder":
        path.mkdir()
    else:
        as_user(NOBODY, lambda: plant_file(path, headered_block(), 0o000))
    with pytest.raises(ProtocolError, match=name):
        FrameReader.from_block(name)
    with pytest.raises(ProtocolError):
        FrameReader.from_block(name).close()
    monitor = StreamMonitor(name, block=True)
    status = monitor.poll()
    monitor.close()
    assert status.state == ERROR and name in status.error  # shown, not raised: never a crash


@as_root
def test_a_follower_never_switches_to_a_block_the_registry_did_not_name(planted):
    with producer("followed", *SMALL) as (proc, block):
        monitor = StreamMonitor("followed")
        try:
            wait_for(lambda: monitor.poll().state == LIVE, what="live")
            before = monitor.poll().frame.index
            proc.kill()
            proc.wait()
            wait_for(lambda: not (SHM / block).exists(), timeout=5, what="the block unlinked")
            # A neighbour re-creates the block name with a valid header and its own pixels.
            planted.append(SHM / block)
            as_user(NOBODY, lambda: plant_file(SHM / block, headered_block((48, 64, 3), value=99, frames=500)))
            for _ in range(5):
                status = monitor.poll()
                assert status.state == STALE and status.frame.index == before
        finally:
            monitor.close()


# 2. close() never unmaps under a running read.

RACE = """
import sys, threading
import numpy as np
from viewer import FrameReader, FrameWriter, ShmviewError
shape = (2048, 2048, 3)
with FrameWriter("race", shape) as w:
    w.write(np.full(shape, 3, np.uint8))
    for _ in range(int(sys.argv[1])):
        r = FrameReader("race")
        closed = threading.Event()
        def spin():
            while True:
                try:
                    f = r.read()
                except ShmviewError:
                    return  # closed under us: an error, never a fault
                assert f.image[-1, -1, -1] == 3

        t = threading.Thread(target=spin)
        t.start()
        r.close()
        t.join()
print("ok")
"""

SIGNAL_CLOSE = """
import signal, sys
import numpy as np
from viewer import FrameReader, FrameWriter, ShmviewError
shape = (2048, 2048, 3)
with FrameWriter("sigclose", shape) as w:
    w.write(np.full(shape, 5, np.uint8))
    for _ in range(int(sys.argv[1])):
        r = FrameReader("sigclose")
        signal.signal(signal.SIGALRM, lambda *_: r.close())
        signal.setitimer(signal.ITIMER_REAL, 0.0005)
        try:
            while True:
                f = r.read()
                assert f.image[-1, -1, -1] == 5
        except ShmviewError:
            pass
        signal.setitimer(signal.ITIMER_REAL, 0)
print("ok")
"""


@pytest.mark.parametrize("script", [RACE, SIGNAL_CLOSE], ids=["other-thread", "signal-handler"])
def test_close_during_a_read_never_crashes(script):
    done = subprocess.run([sys.executable, "-c", script, "60"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# 3. One bad stream never takes the viewer down; every header field is range-checked.

def test_a_pid_out_of_range_is_a_protocol_error_not_a_crash(planted):
    name = "psm_trust_bigpid"
    planted.append(SHM / name)
    data = bytearray(headered_block())
    data[56:64] = struct.pack("<Q", 2**31)
    plant_file(SHM / name, bytes(data), 0o600)
    with pytest.raises(ProtocolError, match="producer pid"):
        FrameReader.from_block(name)
    monitor = StreamMonitor(name, block=True)
    try:
        assert monitor.poll().state == ERROR
    finally:
        monitor.close()


@pytest.mark.parametrize(
    "content", [b"{not json", b"\xff\xfe\x00", b'{"name": "x", "block": "../etc", "pid": 1, "created_ns": 1}',
                b'{"name": "x", "block": "psm_1", "pid": 99999999999, "created_ns": 1}', b"[1, 2]", b"x" * 100_000]
)
def test_a_corrupt_registry_record_is_skipped_by_list(content):
    bad = registry_dir() / "bogus.json"
    bad.write_bytes(content)
    try:
        done = cli("list", "--json")
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert json_lines(done.stdout) == [[]]
    finally:
        bad.unlink(missing_ok=True)


def test_odd_files_in_the_registry_never_hang_or_crash_list(tmp_path):
    reg = registry_dir()
    os.mkfifo(reg / "fifo.json")
    (reg / "folder.json").mkdir()
    (reg / "link.json").symlink_to(tmp_path / "nowhere")
    try:
        done = cli("list", timeout=30)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    finally:
        for leftover in ("fifo.json", "link.json"):
            (reg / leftover).unlink(missing_ok=True)
        (reg / "folder.json").rmdir()


# 4. Bounded cost against a hostile or broken block.

def test_a_slot_that_never_holds_its_frame_is_not_copied_at_all():
    with FrameWriter("nocopy", (480, 640, 3)) as w:
        w.write(np.zeros((480, 640, 3), np.uint8))
        with open(SHM / w.block_name, "r+b") as f:  # frames_written says 5: slot 1 should hold frame 4
            f.seek(P.FRAMES_WRITTEN_OFFSET)
            f.write(struct.pack("<Q", 5))
        with FrameReader("nocopy") as r, mock.patch("viewer.stream.reader.np.copyto", wraps=np.copyto) as copy:
            with pytest.raises(ShmviewError):
                r.read()
            assert copy.call_count == 0


def test_a_frame_over_the_size_limit_is_refused_unless_raised(planted, monkeypatch):
    name = "psm_trust_huge"
    planted.append(SHM / name)
    plant_file(SHM / name, headered_block((100, 100, 3)), 0o600)
    monkeypatch.setenv(P.MAX_FRAME_ENV, "1000")
    with pytest.raises(ShmviewError, match="limit"):
        FrameWriter("huge", (100, 100, 3))
    with pytest.raises(ProtocolError, match=P.MAX_FRAME_ENV):
        FrameReader.from_block(name)
    monkeypatch.setenv(P.MAX_FRAME_ENV, str(100 * 100 * 3))
    with FrameReader.from_block(name) as r:
        assert r.read().image.max() == 7


SHRINK = """
import os, sys
import numpy as np
from viewer import FrameReader, FrameWriter, ProtocolError
with FrameWriter("shrink", (480, 640, 3)) as w, FrameReader("shrink") as r:
    w.write(np.ones((480, 640, 3), np.uint8))
    fd = os.open("/dev/shm/" + w.block_name, os.O_RDWR)
    os.ftruncate(fd, 4096)  # the owner shrinks its block under the reader
    try:
        r.read()
    except ProtocolError as exc:
        print("refused:", exc)
    os.ftruncate(fd, w.layout.block_size)
    os.close(fd)
"""


def test_a_block_shrunk_under_a_reader_is_an_error_not_sigbus():
    done = subprocess.run([sys.executable, "-c", SHRINK], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "refused:" in done.stdout and "shrank" in done.stdout, done.stderr


# 5. Lifetimes decided by the kernel, not by pids.

def write_dead_record(name: str, block: str, pid: int, created_ns: int) -> Path:
    path = registry_dir() / f"{name}.json"
    path.write_text(f'{{"name": "{name}", "block": "{block}", "pid": {pid}, "created_ns": {created_ns}}}')
    path.chmod(0o600)
    return path


def test_a_dead_record_whose_pid_was_reused_is_not_live_and_is_reaped(planted):
    block, created = "psm_trust_reused", time.time_ns()
    planted.append(SHM / block)
    plant_file(SHM / block, headered_block(created_ns=created), 0o600)
    path = write_dead_record("reused", block, os.getpid(), created)  # a live pid, but no lock
    assert [r.name for r in live_records()] == []
    assert not path.exists() and not (SHM / block).exists()


@pytest.mark.parametrize("way", ["list", "view", "produce"])
def test_a_producer_killed_with_its_whole_group_is_cleaned_up_by_the_next_command(way):
    proc = subprocess.Popen(
        [*CLI, "produce", "synthetic", "--name", "grouped", *SMALL], stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    block = read_line(proc).split("block ", 1)[1].split(",", 1)[0]
    os.killpg(proc.pid, signal.SIGKILL)  # producer, manager and resource tracker at once
    proc.wait()
    proc.stdout.close()
    wait_for(lambda: not _group_alive(proc.pid), timeout=10, what="the whole group gone")
    assert (SHM / block).exists() and (registry_dir() / "grouped.json").exists()
    if way == "list":
        assert "grouped" not in cli("list").stdout
    elif way == "view":
        assert cli("view", "grouped", "--headless", "--timeout", "0").returncode == 3
    else:
        again = subprocess.Popen([*CLI, "produce", "synthetic", "--name", "grouped", "--frames", "3", *SMALL],
                                 stdout=subprocess.PIPE, text=True)
        assert again.wait(60) == 0
        again.stdout.close()
    assert not (SHM / block).exists()
    assert not (registry_dir() / "grouped.json").exists()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


FORKS_A_CHILD = """
import multiprocessing as mp, subprocess, sys, time
import numpy as np
from viewer import FrameWriter
with FrameWriter("parent", (4, 4)) as w:
    w.write(np.ones((4, 4), np.uint8))
    child = mp.get_context("fork").Process(target=time.sleep, args=(600,))
    child.start()
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(w.block_name, child.pid, grandchild.pid, flush=True)
    time.sleep(600)
"""


def test_kill_9_of_a_producer_that_forked_children_frees_name_and_block():
    proc = subprocess.Popen([sys.executable, "-c", FORKS_A_CHILD], stdout=subprocess.PIPE, text=True)
    block, *kids = read_line(proc).split()
    try:
        proc.kill()
        proc.wait()
        wait_for(lambda: not (SHM / block).exists(), timeout=5, what="the block unlinked")
        wait_for(lambda: not (registry_dir() / "parent.json").exists(), timeout=5, what="the record removed")
        with FrameWriter("parent", (2, 2)):  # the name is free at once
            pass
    finally:
        proc.stdout.close()
        for pid in map(int, kids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


LEFT_OPEN = """
import numpy as np
from viewer import FrameWriter
w = FrameWriter("leftopen", (4, 4))
w.write(np.ones((4, 4), np.uint8))
print(w.block_name, flush=True)
"""


def test_a_writer_left_open_at_exit_removes_its_record_and_block():
    done = subprocess.run([sys.executable, "-c", LEFT_OPEN], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert not (SHM / done.stdout.strip()).exists()
    assert not (registry_dir() / "leftopen.json").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_to_the_whole_group_is_a_clean_stop(sig):
    proc = subprocess.Popen([*CLI, "produce", "synthetic", "--name", "pgroup", *SMALL],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    block = read_line(proc).split("block ", 1)[1].split(",", 1)[0]
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "leaked" not in err and "Traceback" not in err, err
    wait_for(lambda: not _group_alive(proc.pid), timeout=10, what="the whole group gone")
    assert not (SHM / block).exists()


# 6. Restarts under the same block name are followed, by identity.

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


# 7. A frame is reported new once, even when a newer one lands during the read.

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


def test_a_viewer_shows_a_bad_stream_and_goes_on_with_the_good_one():
    with FrameWriter("good", (4, 4)) as good, FrameWriter("bad", (4, 4)) as bad:
        good.write(np.ones((4, 4), np.uint8))
        with open(SHM / bad.block_name, "r+b") as f:
            f.write(b"garbage!")  # its header is no longer a shmview header
        viewer = start(["view", "good", "bad", "--headless", "--json", "--interval-ms", "50"])
        try:
            lines = [json_lines(read_line(viewer))[0] for _ in range(6)]
        finally:
            stop(viewer)
    by_stream = {line["stream"]: line for line in lines}
    assert by_stream["good"]["state"] == "live" and by_stream["good"]["sum"] == 16
    assert by_stream["bad"]["state"] == "error" and "no shmview header" in by_stream["bad"]["error"]


TRUNCATED_STATE = """
import os, sys
import numpy as np
from viewer import FrameReader, FrameWriter, ProtocolError
with FrameWriter("shrunk", (48, 64, 3)) as w, FrameReader("shrunk") as r:
    w.write(np.ones((48, 64, 3), np.uint8))
    os.truncate("/dev/shm/" + w.block_name, int(sys.argv[1]))
    for ask in (lambda: r.state, lambda: r.frames_written, r.read, lambda: r.apply(len)):
        try:
            ask()
        except ProtocolError as exc:
            assert "shrank" in str(exc), exc
        else:
            raise AssertionError("a shrunk block went unnoticed")
    os.truncate("/dev/shm/" + w.block_name, w.layout.block_size)
print("ok")
"""


@pytest.mark.parametrize("size", [0, 64, 200])
def test_every_look_at_a_shrunk_block_is_an_error_not_sigbus(size):
    done = subprocess.run([sys.executable, "-c", TRUNCATED_STATE, str(size)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("size", [0, 64])
def test_a_producer_whose_block_its_owner_truncated_leaves_nothing(size):
    with producer("truncated", *SMALL) as (proc, block):
        os.truncate(SHM / block, size)  # the producer dies of SIGBUS at its next frame
        proc.wait(30)
        wait_for(lambda: not (SHM / block).exists(), timeout=5, what="the block unlinked")
        wait_for(lambda: not (registry_dir() / "truncated.json").exists(), timeout=5, what="the record removed")
