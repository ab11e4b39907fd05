"""Readers that sleep in the kernel until a frame is published: a futex on the block's
``frames_written`` word, and the bell file that tells the writer someone sleeps on it.

docs/PROTOCOL.md ("Waiting for a frame") is the specification. In short:

- A reader waits with ``FUTEX_WAIT`` on the low 32 bits of ``frames_written`` (offset 80),
  through its read-only mapping: a shared futex (no FUTEX_PRIVATE_FLAG), keyed by the
  file and offset, so it meets the writer's ``FUTEX_WAKE`` on its own mapping.
- Readers cannot write the block, so "somebody waits" lives in a bell file the writer
  creates next to the stream's record: ``<registry>/<block>.bell``, 64 bytes, mode 0600
  in the user's 0700 registry folder, removed with the record. Readers map it read-write.

      off  size  type  field
        0     4  u32   ringing       1: a reader is (about to be) asleep on frames_written
        4     4  -     reserved, zero
        8     8  u64   created_ns    the block's created_ns: which block this bell is for
       16    48  -     reserved, zero

- Reader: ``ringing = 1``; full fence; load ``frames_written``; if it is still the value
  the reader found nothing new in, ``FUTEX_WAIT(expected = its low 32 bits)`` for at most
  WAIT_BOUND_S. Writer, after storing ``frames_written``: full fence; if ``ringing``:
  ``ringing = 0``, ``FUTEX_WAKE(all)``. The two fences make it a Dekker pair: either the
  writer sees the reader's 1, or the reader sees the new count; and a reader whose
  FUTEX_WAIT comes after the wake finds the word changed, which the kernel checks under
  its own lock, and returns at once. A locked instruction is a full fence on x86-64;
  CPython's threading.Lock is a POSIX semaphore (glibc: ``lock cmpxchg``), so an
  uncontended acquire and release of one is ours, for about 0.13 us.
- Each wait is bounded (WAIT_BOUND_S, or the caller's time left if shorter): a writer that
  never rings (another implementation, a crash) costs latency, never a hang, and the
  caller looks at close(), signals and a dead producer at least that often. A signal
  ends FUTEX_WAIT with EINTR; Python runs its handler when the call returns.

x86-64 only as far as the fences go (FACTS 8 and 21): on another CPU with a futex call
(aarch64), the writer wakes on every frame instead of asking the bell. Without a futex,
waiting falls back to sleeping in steps.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import platform
import stat
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from viewer.errors import ShmviewError
from viewer.stream import protocol as P
from viewer.stream.blocks import open_block, release
from viewer.stream.registry import bell_path

BELL_BYTES = 64
_BELL = struct.Struct("<IIQ")  # ringing, reserved, created_ns
WAIT_BOUND_S = 1.0  # longest single sleep in the kernel; a module value, so tests can raise it
_BACKOFF_S = (0.0001, 0.01)  # no bell (a writer that does not ring): sleep in steps as before
_RETRY_BELL_S = 1.0  # how often a reader without a bell looks for one again

_FUTEX_WAIT, _FUTEX_WAKE = 0, 1
_WAKE_ALL = 0x7FFFFFFF
_SYS_FUTEX = {"x86_64": 202, "AMD64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine())
# Whether a load after a locked instruction is ordered after the stores before it (TSO).
_FENCED = platform.machine() in ("x86_64", "AMD64")

_fence_lock = threading.Lock()
_acquire, _release = _fence_lock.acquire, _fence_lock.release


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _libc_syscall() -> Any:
    if _SYS_FUTEX is None:
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syscall  # CDLL releases the GIL during the call
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_long
    return fn


_syscall = _libc_syscall()


def fence() -> None:
    """A full memory fence on x86-64: an uncontended lock taken and given back."""
    _acquire()
    _release()


def address_of(word: np.ndarray) -> int:
    return int(word.__array_interface__["data"][0])


def futex_wait(addr: int, expected: int, timeout_s: float) -> bool:
    """Sleep until a FUTEX_WAKE on ``addr``, ``timeout_s``, or a signal; at once if the
    32-bit word there is not ``expected``. False if there is no futex call to make."""
    if _syscall is None:
        return False
    ts = _Timespec(int(timeout_s), int((timeout_s % 1) * 1e9))
    r = _syscall(
        _SYS_FUTEX,
        ctypes.c_void_p(addr),
        _FUTEX_WAIT,
        ctypes.c_uint32(expected & 0xFFFFFFFF),
        ctypes.byref(ts),
        None,
        0,
    )
    # EINTR: a signal; its Python handler runs as soon as we return. ETIMEDOUT, EAGAIN: fine.
    return r == 0 or ctypes.get_errno() in (errno.EINTR, errno.ETIMEDOUT, errno.EAGAIN)


def futex_wake(addr: int) -> None:
    """Wake every thread asleep on ``addr``'s word, in any process (about 2 us)."""
    if _syscall is not None:
        _syscall(_SYS_FUTEX, ctypes.c_void_p(addr), _FUTEX_WAKE, _WAKE_ALL, None, None, 0)


def _open_bell(path: str, flags: int) -> mmap.mmap:
    """Map a bell file read-write: a regular file of ours, never followed through a link
    nor blocked on as a FIFO, and big enough."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            raise PermissionError(errno.EPERM, "not a regular file of ours", path)
        if flags & os.O_CREAT:
            os.write(fd, _BELL.pack(0, 0, 0).ljust(BELL_BYTES, b"\0"))
        elif st.st_size < BELL_BYTES:
            raise ValueError(f"bell file {path} has {st.st_size} bytes")
        return mmap.mmap(fd, BELL_BYTES)
    finally:
        os.close(fd)


class WriterBell:
    """The writer's side: creates the bell file, rings it after each frame, removes it."""

    def __init__(self, block: str, created_ns: int, published: np.ndarray) -> None:
        self.path = str(bell_path(block))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a dead producer's, of a block of the same name
        mm = _open_bell(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        mm[8:16] = created_ns.to_bytes(8, "little")
        self._mm = mm
        self._word: memoryview | None = memoryview(mm).cast("I")  # 3x cheaper than numpy here
        self._addr = address_of(published)  # our mapping of frames_written: any mapping will do

    def ring(self) -> None:
        """After storing frames_written: wake the readers asleep on it, if any said so.
        Costs about 0.3 us when nobody waits."""
        word = self._word
        if word is None:
            return
        if _FENCED:
            _acquire()  # the fence: frames_written is visible before we look at the bell
            _release()
            if not word[0]:
                return
            word[0] = 0
        futex_wake(self._addr)

    def close(self) -> None:
        """Wake everyone (the stream is closing), then remove the file. Safe to call twice
        and from another thread: a ring() under way keeps the memory it uses."""
        word, self._word = self._word, None
        if word is None:
            return
        word[0] = 0
        futex_wake(self._addr)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        del word
        release(self._mm)


class _NoBell(WriterBell):
    """A writer's bell before it has one (and after a failed start): rings nobody."""

    def __init__(self) -> None:
        self._word = None


NO_BELL: WriterBell = _NoBell()


class ReaderBell:
    """A reader's side for one attached block: sleep until frames_written moves.

    The bell file is opened at the first wait, not at attach (a reader that never waits
    never touches it), and must name the block's ``created_ns``; a stream without one
    (a writer of another implementation) is waited for in steps, 0.1 ms doubling to 10 ms.
    """

    def __init__(self, block: str, created_ns: int | None) -> None:
        self._block, self._created_ns = block, created_ns
        self._mm: mmap.mmap | None = None
        self._word: memoryview | None = None
        self._next_try = 0.0
        self._delay, self._seen = _BACKOFF_S[0], -1
        self._asleep: np.ndarray | None = None  # frames_written's view while a thread sleeps on it
        self._closed = False

    def _ring_word(self) -> memoryview | None:
        if self._word is not None or self._created_ns is None:
            return self._word
        now = time.monotonic()
        if now < self._next_try:
            return None
        self._next_try = now + _RETRY_BELL_S
        try:
            mm = _open_bell(str(bell_path(self._block)), os.O_RDWR)
        except (OSError, ValueError):
            return None
        if int.from_bytes(mm[8:16], "little") != self._created_ns:
            release(mm)  # another block's: a stale name
            return None
        self._mm, self._word = mm, memoryview(mm).cast("I")
        return self._word

    def sleep(self, published: np.ndarray, seen: int, timeout_s: float) -> bool:
        """Sleep until ``published`` (the reader's view of frames_written) is no longer
        ``seen``, for at most ``timeout_s`` and WAIT_BOUND_S. True if it slept on a bell
        (so whatever woke it may be worth a look: a close, a producer's death)."""
        word = self._ring_word()
        if word is not None:
            word[0] = 1  # before the load below: the writer then either sees it or we see its count
            fence()
            bound = min(timeout_s, WAIT_BOUND_S)
        else:
            if seen != self._seen:
                self._delay, self._seen = _BACKOFF_S[0], seen
            bound = min(timeout_s, self._delay)
            self._delay = min(self._delay * 2, _BACKOFF_S[1])
        if int(published[0]) != seen:
            return word is not None
        self._asleep = published
        if self._closed:  # closed meanwhile (another thread, a signal handler): no sleep
            self._asleep = None
            return True
        try:
            if not futex_wait(address_of(published), seen, bound):
                time.sleep(bound)
        finally:
            self._asleep = None
        return word is not None

    def close(self) -> None:
        """Drop the bell; a thread of ours asleep on the block is woken, so the reader's
        close() from another thread or a signal handler ends its wait now (unless it lands in
        the microsecond between that thread's last look and its sleep: then at the bound)."""
        self._closed = True
        mm, self._mm, self._word = self._mm, None, None
        if (asleep := self._asleep) is not None:
            futex_wake(address_of(asleep))  # wakes every sleeper on the block: each looks again
        if mm is not None:
            release(mm)


@contextlib.contextmanager
def waking(block: str | None) -> Iterator[None]:
    """Wake every reader asleep on block ``block`` (its /dev/shm name) when the ``with``
    ends: what a dead producer's cleaner wraps its clean-up in, so that the readers it wakes
    find the record gone, not locked by the cleaner. The block is mapped on entry, so it
    may be unlinked inside. Best effort: nothing happens for a block it cannot open."""
    word = _frames_written_of(block) if block is not None else None
    try:
        yield
    finally:
        if word is not None:
            futex_wake(address_of(word))


def _frames_written_of(block: str) -> np.ndarray | None:
    try:
        fd = open_block(block)
    except (ShmviewError, OSError):
        return None
    try:
        mm = mmap.mmap(fd, P.FRAMES_WRITTEN_OFFSET + 8, prot=mmap.PROT_READ)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return np.frombuffer(mm, np.uint64, 1, P.FRAMES_WRITTEN_OFFSET)  # pins mm until it goes
