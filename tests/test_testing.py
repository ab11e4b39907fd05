"""viewer.testing.no_litter: it catches real leaks and never blames other programs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest

from tests.support.helpers import read_line, start, stop, wait_for
from viewer import FrameReader, FrameWriter
from viewer.stream import protocol as P
from viewer.testing import LitterCheck, no_litter

LAYOUT = P.make_layout((4, 4), "uint8", None, 3)


def shmview_block(pid: int) -> shared_memory.SharedMemory:
    """A block with a valid shmview header claiming ``pid`` as its producer."""
    shm = shared_memory.SharedMemory(create=True, size=LAYOUT.block_size)
    shm.buf[: P.STATE_OFFSET] = P.pack_header(LAYOUT, pid, 1)
    return shm


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_writer_left_open_is_named_block_record_process_and_mapping():
    with pytest.raises(AssertionError) as caught, no_litter(timeout=0.2):
        w = FrameWriter("leaky", (4, 4))
    try:
        message = str(caught.value)
        assert f"/dev/shm/{w.block_name} (producer pid {os.getpid()}, this process)" in message
        assert "leaky.json" in message
        assert "processes: pid " in message  # its SharedMemoryManager server
        assert f"mappings still open: /dev/shm/{w.block_name}" in message
    finally:
        w.close()


@pytest.mark.parametrize("owner", ["me", "dead"])
def test_a_block_with_a_header_made_here_is_blamed(owner):
    pid = os.getpid() if owner == "me" else dead_pid()
    with pytest.raises(AssertionError, match="blocks: /dev/shm/psm_") as caught, no_litter(timeout=0.2):
        shm = shmview_block(pid)
        shm.close()  # the mapping goes; the block stays
    try:
        assert f"/dev/shm/{shm.name} (producer pid {pid}, " in str(caught.value)
        assert "mappings" not in str(caught.value)
    finally:
        shm.unlink()


def test_other_programs_blocks_and_records_are_never_blamed(private_registry):
    foreign = shared_memory.SharedMemory(create=True, size=4096)  # no header: not a stream
    pid_1 = shmview_block(1)  # a stream whose producer is alive and not ours
    try:
        with no_litter(timeout=0.2):
            late = shared_memory.SharedMemory(create=True, size=4096)
            late_stream = shmview_block(1)
            (private_registry / "theirs.json").write_text(json.dumps({"name": "theirs", "pid": 1}))
            os.mkfifo(f"/dev/shm/fifo-{os.getpid()}")  # must not hang the check
            os.symlink(f"/dev/shm/{foreign.name}", f"/dev/shm/link-{os.getpid()}")
            late.close()
            late_stream.close()
    finally:
        for shm in (foreign, pid_1, late, late_stream):
            shm.close()
            shm.unlink()
        (private_registry / "theirs.json").unlink()
        os.unlink(f"/dev/shm/fifo-{os.getpid()}")
        os.unlink(f"/dev/shm/link-{os.getpid()}")


STRANGER = """
import subprocess, sys
print(subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"]).pid)
"""


def gone(pid: int) -> bool:
    try:
        return b") Z" in Path(f"/proc/{pid}/stat").read_bytes()  # a zombie nobody reaped yet
    except FileNotFoundError:
        return True


def test_a_strangers_block_stays_theirs_when_the_stranger_dies():
    """A producer seen alive and not ours owns its block, even once it has died."""
    middle = subprocess.Popen([sys.executable, "-c", STRANGER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    stranger = int(middle.stdout.readline())  # its child, orphaned: not our descendant
    middle.stdout.close()
    middle.wait()
    check = LitterCheck(mappings=False)
    shm = shmview_block(stranger)
    try:
        shm.close()
        assert not check.leftovers().blocks
        middle.stdin.close()  # the stranger reads our pipe: now it ends
        wait_for(lambda: gone(stranger), timeout=20, what="the stranger to exit")
        assert not check.leftovers().blocks
    finally:
        shm.unlink()


def test_what_existed_before_the_block_is_not_judged():
    with FrameWriter("before", (4, 4)) as w:
        w.write(np.zeros((4, 4), np.uint8))
        with no_litter(timeout=0.2):
            w.write(np.ones((4, 4), np.uint8))


def test_a_child_process_left_running_is_named():
    with pytest.raises(AssertionError) as caught, no_litter(timeout=0.2):
        child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert re.search(rf"processes: pid {child.pid}: \S*python\S* -c import sys", str(caught.value))
    finally:
        child.communicate()


def test_an_open_reader_is_named_by_its_mapping():
    with FrameWriter("readme", (4, 4)) as w:
        with pytest.raises(AssertionError, match=f"mappings still open: /dev/shm/{w.block_name}"), no_litter(0.2):
            reader = FrameReader("readme")
        reader.close()
        with no_litter(timeout=0.2):  # closed, or merely dropped, it is no leak
            FrameReader("readme").close()
            FrameReader("readme")


def test_a_killed_producer_is_waited_for_not_blamed():
    """kill -9 leaves the block and record for a moment, until the manager notices: polled."""
    with no_litter(timeout=10):
        proc = start(["produce", "synthetic", "--name", "killed", "--size", "8x8"])
        assert "ready" in read_line(proc)
        proc.kill()
        stop(proc)
    assert not (Path(os.environ["SHMVIEW_REGISTRY"]) / "killed.json").exists()


def test_an_error_in_the_block_is_not_masked():
    with pytest.raises(ZeroDivisionError), no_litter(timeout=0.2):
        1 / 0  # noqa: B018


def test_importing_the_kit_pulls_in_no_qt_opencv_or_pytest():
    code = (
        "import sys, viewer.testing; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'PyQt6', 'cv2', 'pytest'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
