"""Readers that sleep in the kernel until a frame is published (issue 20 item 2): the futex
on frames_written and the bell file (viewer/stream/bell.py, docs/PROTOCOL.md).

A reader is known to be about to sleep when it has set its bell, and asleep when it is
inside the futex call (/proc/<pid>/syscall, x86-64 number 202). The tests raise its longest
single sleep (bell.WAIT_BOUND_S) to 60 s, so an answer within the test's deadline can only
come from a ring, a wake or a signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tests.support.helpers import read_line
from viewer import FrameReader, FrameWriter, StreamTimeoutError
from viewer.recording.recorder import Recorder
from viewer.stream import bell
from viewer.stream.frames import Frame
from viewer.stream.registry import bell_path, live_records

DEADLINE_S = 20.0  # generous: the machine is shared; a missed wake-up would take 60 s


def _until(what: str, check: Callable[[], bool], timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} in {timeout} s")
        time.sleep(0.001)  # polling a condition with a deadline, not synchronising by sleep


def _in_futex(thread: threading.Thread, word: int) -> bool:
    """Whether ``thread`` is inside the futex call on ``word`` (x86-64: syscall 202)."""
    try:
        line = Path(f"/proc/self/task/{thread.native_id}/syscall").read_text()
    except OSError:
        return False
    return line.startswith(f"202 {hex(word)} ")


def _in_futex_wait(pid: int) -> bool:
    """Whether process ``pid`` (its main thread) is inside a futex call: asleep, so that a
    wake-up that does not change the word (close, a signal, a cleaner) must reach it there."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().startswith("202 ")
    except OSError:
        return False


def _ringing(w: FrameWriter) -> bool:
    """Whether a reader has said it sleeps on ``w``'s stream."""
    return bell_path(w.block_name).read_bytes()[:4] != b"\0\0\0\0"


_CHILD = textwrap.dedent("""
    import signal, sys
    from viewer import FrameReader
    from viewer.stream import bell
    bell.WAIT_BOUND_S = 60.0
    def stop(*_):
        raise SystemExit(7)
    signal.signal(signal.SIGTERM, stop)
    r = FrameReader(sys.argv[1])
    print("attached", flush=True)
    try:
        {action}
    except Exception as exc:
        print(type(exc).__name__, flush=True)
    r.close()
""")


@contextmanager
def _reader_process(name: str, action: str) -> Iterator[subprocess.Popen]:
    code = _CHILD.format(action=action)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert read_line(proc) == "attached\n", proc.communicate()[1]
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_a_reader_asleep_in_another_process_is_woken_by_a_write():
    with FrameWriter("woken", (4, 4)) as w:
        w.write(np.zeros((4, 4), np.uint8))
        action = "f = r.wait(timeout=60, after=0); print(f.index, int(f.image.max()), flush=True)"
        with _reader_process("woken", action) as proc:
            _until("reader asleep", lambda: _ringing(w))
            w.write(np.full((4, 4), 5, np.uint8))
            assert read_line(proc) == "1 5\n"
            assert proc.wait(DEADLINE_S) == 0
        assert not _ringing(w)  # the writer took the bell's word down when it rang


def test_close_wakes_a_reader_asleep_in_another_process():
    with FrameWriter("closing", (4, 4)) as w:
        w.write(np.zeros((4, 4), np.uint8))
        with _reader_process("closing", "r.wait(timeout=60, after=0)") as proc:
            _until("reader asleep", lambda: _ringing(w) and _in_futex_wait(proc.pid))
            w.close()
            assert read_line(proc) == "StreamGoneError\n"


def test_sigterm_stops_a_reader_asleep_in_wait():
    with FrameWriter("sleeper", (4, 4)) as w, _reader_process("sleeper", "r.wait(timeout=60)") as proc:
        _until("reader asleep", lambda: _ringing(w) and _in_futex_wait(proc.pid))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE_S) == 7  # its handler ran (SystemExit(7)), not the default


_PRODUCER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from viewer import FrameWriter
    w = FrameWriter(sys.argv[1], (4, 4))
    w.write(np.zeros((4, 4), np.uint8))
    print("ready", w.block_name, flush=True)
    time.sleep(600)
""")


def test_a_producer_killed_wakes_its_readers_and_leaves_no_bell(private_registry: Path):
    """SIGKILL: the producer cannot ring, its SharedMemoryManager's cleaner does."""
    prod = subprocess.Popen([sys.executable, "-c", _PRODUCER, "doomed"], stdout=subprocess.PIPE, text=True)
    try:
        block = read_line(prod).split()[1]
        with _reader_process("doomed", "r.wait(timeout=60, after=0)") as reader:
            _until(
                "reader asleep",
                lambda: bell_path(block).read_bytes()[:4] != b"\0\0\0\0" and _in_futex_wait(reader.pid),
            )
            prod.kill()
            assert read_line(reader) == "StreamGoneError\n"
        _until("bell removed", lambda: not bell_path(block).exists())
    finally:
        prod.kill()
        prod.communicate()


def test_a_whole_producer_group_killed_leaves_a_bell_the_next_lister_removes(private_registry: Path):
    prod = subprocess.Popen(
        [sys.executable, "-c", _PRODUCER, "group"], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        block = read_line(prod).split()[1]
        assert bell_path(block).exists()
        os.killpg(prod.pid, signal.SIGKILL)  # the manager too: nobody cleans up
        prod.wait(DEADLINE_S)
        # A lister reaps the dead record with its block and bell, once the kernel dropped the lock.
        _until("the dead stream reaped", lambda: live_records() == [] and not bell_path(block).exists())
        assert sorted(private_registry.iterdir()) == []
    finally:
        prod.kill()
        prod.communicate()


def test_timeouts_raise_as_documented():
    with FrameWriter("patient", (4, 4)) as w, FrameReader("patient") as r:
        with pytest.raises(StreamTimeoutError, match="waited for a frame"):
            r.wait(0.05)
        with pytest.raises(StreamTimeoutError), r.view(timeout=0.05):
            pass
        w.write(np.zeros((4, 4), np.uint8))
        assert r.wait(0).index == 0  # already there: no wait at all
        with r.view(timeout=0) as frame:
            assert frame is not None and frame.index == 0
        with pytest.raises(StreamTimeoutError, match="after index 0"), r.view(after=0, timeout=0.05):
            pass
        with pytest.raises(StreamTimeoutError, match="after index 0"):
            r.apply(lambda f: f.index, after=0, timeout=0.05)
        assert r.apply(lambda f: f.index, after=-1, timeout=0) == 0
        with pytest.raises(ValueError, match="finite number"), r.view(after=0, timeout=float("nan")):
            pass


def _write_when_asleep(w: FrameWriter, value: int) -> threading.Thread:
    def write() -> None:
        _until("reader asleep", lambda: _ringing(w))
        w.write(np.full((4, 4), value, np.uint8))

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def test_view_after_sleeps_then_gives_the_newer_frame_in_place(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(bell, "WAIT_BOUND_S", 60.0)
    with FrameWriter("inplace", (4, 4)) as w, FrameReader("inplace") as r:
        k = w.write(np.zeros((4, 4), np.uint8))
        thread = _write_when_asleep(w, 3)
        with r.view(after=k, timeout=DEADLINE_S) as frame:
            assert frame is not None and frame.index == k + 1 and frame.image.max() == 3
            assert not frame.image.flags.writeable  # the slot itself, not a copy
        thread.join()
        thread = _write_when_asleep(w, 4)
        assert r.apply(lambda f: (f.index, int(f.image.max())), after=k + 1, timeout=DEADLINE_S) == (k + 2, 4)
        thread.join()


def test_frames_sleeps_between_frames(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(bell, "WAIT_BOUND_S", 60.0)
    with FrameWriter("iterated", (4, 4)) as w, FrameReader("iterated") as r:
        w.write(np.zeros((4, 4), np.uint8))
        frames = r.frames(timeout=DEADLINE_S)
        assert next(frames).index == 0
        thread = _write_when_asleep(w, 1)
        assert next(frames).index == 1
        thread.join()


def test_a_writer_that_never_rings_is_seen_within_the_bounded_wait(monkeypatch: pytest.MonkeyPatch):
    """A writer of another implementation publishes through the byte layout alone."""
    monkeypatch.setattr(bell, "WAIT_BOUND_S", 0.05)
    with FrameWriter("silent", (4, 4)) as w, FrameReader("silent") as r:
        monkeypatch.setattr(w._bell, "ring", lambda: None)
        w.write(np.zeros((4, 4), np.uint8))
        thread = _write_when_asleep(w, 8)
        frame = r.wait(DEADLINE_S, after=0)
        assert frame.index == 1 and frame.image.max() == 8
        thread.join()


def test_a_stream_without_a_bell_is_still_waited_for(monkeypatch: pytest.MonkeyPatch):
    """No bell file (a writer that knows nothing of it): the reader sleeps in steps."""
    with FrameWriter("bell-less", (4, 4)) as w, FrameReader("bell-less") as r:
        bell_path(w.block_name).unlink()
        w.write(np.zeros((4, 4), np.uint8))
        done = threading.Event()

        def write_later() -> None:
            while not done.is_set():
                w.write(np.full((4, 4), 2, np.uint8))
                done.wait(0.01)

        thread = threading.Thread(target=write_later)
        thread.start()
        try:
            assert r.wait(DEADLINE_S, after=0).image.max() == 2
        finally:
            done.set()
            thread.join()


def test_the_bell_is_private_and_goes_with_the_stream(private_registry: Path):
    with FrameWriter("belled", (4, 4)) as w:
        path = bell_path(w.block_name)
        assert path.parent == private_registry and path.stat().st_mode & 0o777 == 0o600
        assert path.stat().st_size == bell.BELL_BYTES
        assert int.from_bytes(path.read_bytes()[8:16], "little") == FrameReader("belled").info.created_ns
    assert not path.exists()
    assert sorted(private_registry.iterdir()) == []


def test_a_reader_ignores_a_bell_that_is_a_link_or_not_its_blocks(private_registry: Path, tmp_path: Path):
    with FrameWriter("linked", (4, 4)) as w, FrameReader("linked") as r:
        path = bell_path(w.block_name)
        elsewhere = tmp_path / "bait"
        elsewhere.write_bytes(path.read_bytes())
        path.unlink()
        path.symlink_to(elsewhere)
        with pytest.raises(StreamTimeoutError):
            r.wait(0.02)
        assert elsewhere.read_bytes()[:4] == b"\0\0\0\0"  # not followed, not written
        path.unlink()
        path.write_bytes(b"\0" * 8 + (12345).to_bytes(8, "little") + b"\0" * 48)  # another block's
        r._bell._next_try = 0.0
        with pytest.raises(StreamTimeoutError):
            r.wait(0.02)
        assert path.read_bytes()[:4] == b"\0\0\0\0"


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become another user")
def test_another_user_cannot_open_a_bell():
    with FrameWriter("mine", (4, 4)) as w:
        path = str(bell_path(w.block_name))
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.setgid(65534)
                os.setuid(65534)
                try:
                    os.open(path, os.O_RDWR)
                except PermissionError:
                    os._exit(0)
                os._exit(1)
            finally:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


class _ListSink:
    """A sink that keeps what it is given (the Sink protocol: write returns bytes taken)."""

    def __init__(self) -> None:
        self.indices: list[int] = []

    def write(self, desc: object, frame: Frame) -> int:
        assert frame.index is not None
        self.indices.append(frame.index)
        return frame.image.nbytes

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_the_recorder_sleeps_until_its_stream_publishes(monkeypatch: pytest.MonkeyPatch):
    """Its follower rings the bell (so it sleeps on the futex) and takes every frame written."""
    with FrameWriter("recorded", (4, 4)) as w, FrameReader("recorded") as r:
        sink, stop = _ListSink(), threading.Event()
        recorder = Recorder([r], sink, frames=3, stop=stop)  # type: ignore[arg-type]
        thread = threading.Thread(target=recorder.run)
        thread.start()
        try:
            for value in range(3):
                _until("recorder asleep", lambda: _ringing(w))
                w.write(np.full((4, 4), value, np.uint8))
            thread.join(DEADLINE_S)
            assert not thread.is_alive() and sink.indices == [0, 1, 2]
        finally:
            stop.set()
            thread.join(DEADLINE_S)


def test_no_litter_names_a_bell_left_behind(private_registry: Path):
    from viewer.testing import LitterCheck

    check = LitterCheck(registry=private_registry, mappings=False)
    stray = private_registry / "psm_gone.bell"
    stray.write_bytes(b"\0" * bell.BELL_BYTES)
    try:
        assert "a bell whose block is gone" in str(check.leftovers())
    finally:
        stray.unlink()
    assert not check.leftovers()


def test_closing_a_reader_ends_a_wait_in_another_thread(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(bell, "WAIT_BOUND_S", 60.0)
    with FrameWriter("abandoned", (4, 4)):
        r = FrameReader("abandoned")
        errors: list[BaseException] = []

        def wait() -> None:
            try:
                r.wait(60)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=wait)
        thread.start()
        word = bell.address_of(r._att.mapping.held("test")[1].published)
        _until("reader asleep in FUTEX_WAIT", lambda: _in_futex(thread, word))
        r.close()
        thread.join(DEADLINE_S)
        assert not thread.is_alive() and len(errors) == 1 and "closed" in str(errors[0])
