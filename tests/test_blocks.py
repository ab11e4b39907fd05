"""Blocks in /dev/shm that are not what they seem (issue 9): a stranger's block under a stream's
name, hostile files where a block should be, a frame over the size limit, blocks shrunk or
truncated under a reader or by their owner. Each is refused or an error, never shown, never a
crash."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from tests.support.blocks import SHM, headered_block, plant_file
from tests.support.helpers import cli, producer, wait_for
from tests.support.users import NOBODY, as_root, as_user
from viewer import FrameReader, FrameWriter, ProtocolError, ShmviewError, StreamNotFoundError
from viewer.stream import protocol as P
from viewer.stream.frames import ERROR, LIVE, STALE
from viewer.stream.registry import registry_dir
from viewer.view.monitor import StreamMonitor

SMALL = ["--size", "64x48"]


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
            proc.kill()
            proc.wait()
            wait_for(lambda: not (SHM / block).exists(), timeout=5, what="the block unlinked")
            # frames written between a poll and the kill may still arrive on the next poll
            wait_for(lambda: monitor.poll().state == STALE, what="stale")
            before = monitor.poll().frame.index
            # A neighbour re-creates the block name with a valid header and its own pixels.
            planted.append(SHM / block)
            as_user(NOBODY, lambda: plant_file(SHM / block, headered_block((48, 64, 3), value=99, frames=500)))
            for _ in range(5):
                status = monitor.poll()
                assert status.state == STALE and status.frame.index == before
        finally:
            monitor.close()


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
    done = subprocess.run(
        [sys.executable, "-c", TRUNCATED_STATE, str(size)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("size", [0, 64])
def test_a_producer_whose_block_its_owner_truncated_leaves_nothing(size):
    with producer("truncated", *SMALL) as (proc, block):
        os.truncate(SHM / block, size)  # the producer dies of SIGBUS at its next frame
        proc.wait(30)
        wait_for(lambda: not (SHM / block).exists(), timeout=5, what="the block unlinked")
        wait_for(lambda: not (registry_dir() / "truncated.json").exists(), timeout=5, what="the record removed")
