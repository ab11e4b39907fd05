"""Issue 18, item 7: no use of the Python API crashes the interpreter.

Closing a writer with a loan open, touching a loaned array after close, keeping a view()
or apply() array past reader.close(), closing from another thread or from a signal
handler in the middle of write(), read(), view() or a loan: the block stays mapped while an
array refers to it, and every later use of the closed object raises ShmviewError. Each
misuse runs in its own interpreter, which must exit 0, never die of a signal; the races
run many rounds with 2048x2048x3 frames, whose copies are long enough for a close to land
inside them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from multiprocessing import shared_memory

import numpy as np
import pytest

from viewer import FrameReader, FrameWriter, RawReader, ShmviewError

PRELUDE = """
import os, signal, sys, threading
import numpy as np
from viewer import FrameReader, FrameWriter, ShmviewError
from viewer.testing import shm_mappings
SHAPE = (2048, 2048, 3)
ROUNDS = int(sys.argv[1])
"""


def run(script: str, *args: str, timeout: float = 240) -> None:
    """Run ``script`` in a fresh interpreter: it must print ok and exit 0, not die of a signal."""
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + script, *args], capture_output=True, text=True, timeout=timeout
    )
    died = f"killed by {signal.Signals(-done.returncode).name}" if done.returncode < 0 else ""
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), f"{died} {done.stderr[-3000:]}"


KEPT_PAST_CLOSE = """
frame = np.full(SHAPE, 5, np.uint8)
w = FrameWriter("kept", SHAPE)
r = FrameReader("kept")
block = "/dev/shm/" + w.block_name
w.write(frame)
with r.view() as f:
    viewed = f.image  # misuse: a view kept past the block
applied = r.apply(lambda f: f.image)  # misuse: fn keeps its view
with w.loan() as pixels:
    w.close()  # a loan open
    pixels[:] = 7  # the loaned array, touched after close
r.close()
assert not os.path.exists(block)  # unlinked by close(), mapped while arrays refer to it
assert block in shm_mappings()
assert viewed[-1, -1, -1] == 5 and applied.max() == 5 and pixels.min() == 7
for use in (lambda: w.write(frame), lambda: w.loan().__enter__(), r.read, lambda: r.view().__enter__(),
            lambda: r.apply(len), lambda: r.frames_written, lambda: r.state):
    try:
        use()
    except ShmviewError:
        pass
    else:
        raise AssertionError("a closed stream was usable")
del viewed, applied, pixels, f
assert block not in shm_mappings()  # the last array gone: unmapped
print("ok")
"""


def test_arrays_kept_past_close_stay_valid_and_the_last_one_unmaps():
    run(KEPT_PAST_CLOSE, "1")


WRITER_CLOSED_BY_A_THREAD = """
frame = np.full(SHAPE, 9, np.uint8)
mode = sys.argv[2]
for k in range(ROUNDS):
    w = FrameWriter(f"wthread{k}", SHAPE)
    go = threading.Event()
    closer = threading.Thread(target=lambda: (go.wait(), w.close()))
    closer.start()
    pixels = None
    try:
        while True:
            if mode == "write":
                go.set()
                w.write(frame)  # the copy releases the GIL: the close lands inside it
            else:
                with w.loan() as pixels:
                    go.set()
                    pixels[:] = 9
    except ShmviewError:
        pass
    closer.join()
    if pixels is not None:
        assert pixels[-1, -1, -1] == 9 and pixels[0, 0, 0] == 9
print("ok")
"""


WRITER_CLOSED_BY_A_SIGNAL = """
frame = np.full(SHAPE, 9, np.uint8)
mode = sys.argv[2]
for k in range(ROUNDS):
    w = FrameWriter(f"wsignal{k}", SHAPE)
    signal.signal(signal.SIGALRM, lambda *_: w.close())
    signal.setitimer(signal.ITIMER_REAL, 0.0005 * (1 + k % 10))  # lands anywhere in a frame
    pixels = None
    try:
        while True:
            if mode == "write":
                w.write(frame)
            else:
                with w.loan() as pixels:
                    pixels[:] = 9
                    pixels[0, 0, 0] = 8
    except ShmviewError:
        pass
    signal.setitimer(signal.ITIMER_REAL, 0)
    if pixels is not None:
        assert pixels[-1, -1, -1] == 9
print("ok")
"""


@pytest.mark.parametrize("mode", ["write", "loan"])
@pytest.mark.parametrize("script", [WRITER_CLOSED_BY_A_THREAD, WRITER_CLOSED_BY_A_SIGNAL], ids=["thread", "signal"])
def test_a_writer_closed_in_the_middle_of_a_frame_never_crashes(script, mode):
    run(script, "30", mode)


READER_CLOSED_BY_A_THREAD = """
mode = sys.argv[2]
out = np.empty(SHAPE, np.uint8)
with FrameWriter("rthread", SHAPE) as w:
    w.write(np.full(SHAPE, 5, np.uint8))
    for _ in range(ROUNDS):
        r = FrameReader("rthread")
        go = threading.Event()
        closer = threading.Thread(target=lambda: (go.wait(), r.close()))
        closer.start()
        kept = None
        try:
            while True:
                go.set()
                if mode == "read":
                    kept = r.read(out=out).image
                elif mode == "view":
                    with r.view() as f:
                        np.copyto(out, f.image)  # releases the GIL: the close lands inside it
                        kept = f.image
                else:
                    kept = r.apply(lambda f: np.copyto(out, f.image) or f.image)
        except ShmviewError:
            pass
        closer.join()
        assert kept is None or kept[-1, -1, -1] == 5  # None: closed before the first read
print("ok")
"""


READER_CLOSED_BY_A_SIGNAL = """
mode = sys.argv[2]
out = np.empty(SHAPE, np.uint8)
with FrameWriter("rsignal", SHAPE) as w:
    w.write(np.full(SHAPE, 5, np.uint8))
    for k in range(ROUNDS):
        r = FrameReader("rsignal")
        signal.signal(signal.SIGALRM, lambda *_: r.close())
        signal.setitimer(signal.ITIMER_REAL, 0.0005 * (1 + k % 10))
        kept = None
        try:
            while True:
                if mode == "read":
                    kept = r.read().image
                elif mode == "view":
                    with r.view() as f:
                        np.copyto(out, f.image)
                        kept = f.image
                else:
                    kept = r.apply(lambda f: np.copyto(out, f.image) or f.image)
        except ShmviewError:
            pass
        signal.setitimer(signal.ITIMER_REAL, 0)
        assert kept is None or kept[-1, -1, -1] == 5  # None: closed before the first read
print("ok")
"""


@pytest.mark.parametrize("mode", ["read", "view", "apply"])
@pytest.mark.parametrize("script", [READER_CLOSED_BY_A_THREAD, READER_CLOSED_BY_A_SIGNAL], ids=["thread", "signal"])
def test_a_reader_closed_in_the_middle_of_a_read_never_crashes(script, mode):
    run(script, "60", mode)


@pytest.fixture
def bare_block() -> Iterator[str]:
    """A block holding a bare array, made by someone else's program."""
    shm = shared_memory.SharedMemory(create=True, size=4096)
    yield shm.name
    shm.close()
    shm.unlink()


def test_every_use_of_a_closed_stream_is_a_shmview_error(bare_block):
    with FrameWriter("closed", (4, 4)) as w, FrameReader("closed") as r:
        w.write(np.ones((4, 4), np.uint8))
        raw = RawReader(bare_block, (32, 32, 4), "uint8")
        for closable in (r, raw, w):
            closable.close()
            closable.close()  # twice: nothing happens
        uses = [
            lambda: w.write(np.ones((4, 4), np.uint8)),
            lambda: w.loan().__enter__(),
            lambda: w.block_name,
            r.read,
            lambda: r.read(index=0),
            lambda: r.view().__enter__(),
            lambda: r.apply(len),
            lambda: r.frames_written,
            lambda: r.closed_by_producer,
            lambda: r.state,
            lambda: r.wait(0),
            lambda: next(r.frames(0)),
            r.check_header,
            lambda: r.held_after(0),
            raw.read,
            raw.replaced,
        ]
        for use in uses:
            with pytest.raises(ShmviewError, match="closed"):
                use()


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
