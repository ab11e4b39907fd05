"""The testing kit without pytest (issue 11): running_producer() on its own, and
viewer.testing.no_litter, which catches real leaks and never blames other programs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest

from tests.support.helpers import read_line, start, stop, wait_for
from tests.support.plugin import LEAVES_A_PROCESS, solid_sum
from viewer import FrameReader, FrameWriter
from viewer.stream import protocol as P
from viewer.testing import LitterCheck, ProducerError, no_litter, running_producer

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


SMALL = ("--size", "64x48")


# running_producer(), without pytest ---------------------------------------------------


def test_running_producer_yields_it_ready_and_stops_it_cleanly():
    with running_producer("synthetic", "--pattern", "solid", *SMALL) as producer:
        assert re.fullmatch(r"t-[0-9a-f]{10}", producer.name) and producer.returncode is None
        assert producer.output.startswith(f"stream {producer.name} ready: block {producer.block},")
        with FrameReader(producer.name) as reader:
            frame = reader.wait(timeout=10)
            assert reader.info.producer_pid == producer.pid
        assert frame.image.sum() == solid_sum(frame.index, (48, 64, 3))
    assert producer.returncode == 0


def test_a_producer_that_cannot_start_raises_with_its_stderr():
    expected = r"exited with code 2 before it was ready; its stderr:\n.*'0x0' is out of range"
    with pytest.raises(ProducerError, match=expected), running_producer("synthetic", "--size", "0x0"):
        pytest.fail("never ready")


def test_a_users_source_that_crashes_at_start_raises_with_its_traceback(tmp_path, monkeypatch):
    (tmp_path / "broken_camera.py").write_text("def make():\n    raise OSError('no camera on /dev/video7')\n")
    monkeypatch.syspath_prepend(tmp_path)  # importable here, so in the producer too
    expected = r"(?s)exited with code 1 before.*OSError: no camera on /dev/video7"
    with pytest.raises(ProducerError, match=expected), running_producer(source="broken_camera:make"):
        pytest.fail("never ready")


def test_a_producer_that_never_gets_ready_is_killed_at_the_deadline(tmp_path, monkeypatch):
    (tmp_path / "stuck.py").write_text(
        "import sys, time\n"
        "def make():\n"
        "    print('opening the camera...', file=sys.stderr, flush=True)\n"
        "    time.sleep(600)\n"
    )
    monkeypatch.syspath_prepend(tmp_path)
    expected = r"printed no ready line in 1 s; its stderr:\nopening the camera\.\.\."
    with pytest.raises(ProducerError, match=expected), running_producer(source="stuck:make", timeout=1):
        pytest.fail("never ready")

    # killed and reaped: this suite's litter check (tests/conftest.py) would name it otherwise


CRASHES_LATER = """\
import numpy as np
from producers import FrameSource

class Unplugged(FrameSource):
    fps, k = 200.0, 0
    def read(self):
        self.k += 1
        if self.k > int(self.after):
            raise RuntimeError("camera unplugged")
        return np.full((8, 8), self.k, np.uint8)

def make(after="3"):
    source = Unplugged()
    source.after = after
    return source
"""


def test_a_producer_that_dies_meanwhile_fails_the_check_with_its_stderr(tmp_path, monkeypatch):
    (tmp_path / "unplugged.py").write_text(CRASHES_LATER)
    monkeypatch.syspath_prepend(tmp_path)
    expected = r"(?s)exited with code 1, expected 0; its stderr:.*camera unplugged"
    with pytest.raises(AssertionError, match=expected), running_producer("5", source="unplugged:make") as producer:
        assert producer.wait(timeout=20) == 1


def test_an_exit_the_test_expects_passes(tmp_path, monkeypatch):
    (tmp_path / "unplugged.py").write_text(CRASHES_LATER)
    monkeypatch.syspath_prepend(tmp_path)
    with running_producer("5", source="unplugged:make") as producer:
        producer.expect_exit(1)
        producer.wait(timeout=20)
    with running_producer("synthetic", *SMALL, "--frames", "3", "--fps", "0") as producer:
        assert producer.wait(timeout=20) == 0


def test_a_signal_the_test_sends_is_expected_and_leftovers_are_still_checked():
    with running_producer("synthetic", *SMALL) as producer:
        assert producer.stop(signal.SIGKILL) == -signal.SIGKILL

    # kill -9: the block and the record went with the producer's manager (else it raised)


def test_an_error_in_the_block_goes_on_with_the_producers_problems_as_notes(tmp_path, monkeypatch):
    (tmp_path / "unplugged.py").write_text(CRASHES_LATER)
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(ZeroDivisionError) as caught, running_producer("2", source="unplugged:make") as producer:
        producer.wait(timeout=20)
        1 / 0  # noqa: B018
    assert any("camera unplugged" in note for note in caught.value.__notes__)


def test_a_process_the_producer_leaves_behind_is_named_even_when_reparented(tmp_path, monkeypatch):
    (tmp_path / "forks.py").write_text(LEAVES_A_PROCESS)
    monkeypatch.syspath_prepend(tmp_path)
    producer = running_producer(source="forks:Forks", cleanup_timeout=0.5)
    with pytest.raises(AssertionError, match=r"left behind: process \d+: sleep 60") as caught, producer:
        pass
    os.kill(int(re.search(r"process (\d+): sleep", str(caught.value))[1]), signal.SIGKILL)


def test_arguments_are_checked_before_anything_starts():
    with pytest.raises(ValueError, match="--name a"), running_producer("synthetic", "--name", "a", name="b"):
        pass
    with pytest.raises(ValueError, match=r"package\.module:factory"), running_producer(source="no colon"):
        pass
