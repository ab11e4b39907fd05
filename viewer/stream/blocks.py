"""Shared-memory blocks: the producer's, made through SharedMemoryManager, and the
readers' read-only mappings of it.

Readers deliberately do not use ``SharedMemory(name)``. On Python < 3.13 it registers
the block with the reader's resource tracker, which unlinks the producer's block when
the reader exits (CPython gh-82300), and its constructor unlinks the block when mmap
fails, for example on EMFILE (gh-153279). A read-only ``mmap`` of the file in /dev/shm
has neither problem, and a reader can never write into a producer's frames.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import multiprocessing
import os
import re
import select
import signal
import stat
import threading
import time
from collections.abc import Callable
from multiprocessing.managers import SharedMemoryManager

import numpy as np

from viewer.errors import ProtocolError, ShmviewError, StreamNotFoundError

SHM_DIR = "/dev/shm"
_BLOCK_NAME = re.compile(r"/?[^/\0]{1,250}")


def _watch_producer(pid: int, on_orphaned: Callable[[], None] | None) -> None:
    """Wait for process ``pid`` to end, then clean up after it and end this process.

    A pidfd says when that one process ends. ``parent_process().join()`` would wait on a
    pipe that every child the producer forks inherits, so a producer killed while its
    child runs would keep its block and name for as long as the child lives.
    """
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (Linux < 5.3): poll the parent instead
        while os.getppid() == pid:
            time.sleep(0.2)
    else:
        select.select([fd], [], [])
    if on_orphaned is not None:
        on_orphaned()
    os._exit(0)


def _manager_init(on_orphaned: Callable[[], None] | None) -> None:
    """Runs in the SharedMemoryManager server: tie its life to the producer's.

    ``serve_forever`` never checks its parent, so after SIGKILL of the producer the
    server would keep the block alive forever. A thread watches the producer instead.

    Stop signals are ignored here: a SIGTERM or Ctrl-C to the whole process group
    (``timeout``, ``kill -- -PGID``, systemd) reaches the producer too, whose handler
    shuts this server down in order; dying first would leave the block to the resource
    tracker, which unlinks it with a "leaked shared_memory objects" warning.
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    assert parent is not None and parent.pid is not None
    threading.Thread(
        target=_watch_producer, args=(parent.pid, on_orphaned), name="shmview-orphan-watch", daemon=True
    ).start()


def _start_method() -> str:
    # fork: the server must not re-import the user's __main__ (spawn and forkserver do).
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def check_room(size: int) -> None:
    """Refuse at once what cannot fit: fallocate on tmpfs would first fill memory, then fail."""
    try:
        vfs = os.statvfs(SHM_DIR)
    except OSError:
        return  # no /dev/shm to ask (not Linux): posix_fallocate below still guards
    free = vfs.f_bavail * vfs.f_frsize
    if size > free:
        raise ShmviewError(
            f"cannot allocate {size:,} bytes in shared memory: {SHM_DIR} has {free:,} bytes free",
            size=size,
            free=free,
        )


def release(mm: mmap.mmap) -> None:
    """Unmap ``mm`` now if no array refers to it; otherwise the last such array does.

    Every array over a block is made with ``np.frombuffer(mm)``, which holds a buffer
    export of the mmap object: ``mm.close()`` refuses (BufferError) while one lives, and
    the mmap object unmaps itself when the last one goes. So a closed stream can never
    leave an array pointing at unmapped memory.
    """
    with contextlib.suppress(BufferError):
        mm.close()


class OwnedBlock:
    """A block this process created, with its SharedMemoryManager. close() unlinks it.

    ``mm`` is our own read-write mapping of it; arrays over it must be made with
    ``np.frombuffer(mm)`` so that they keep it mapped (see release()).
    """

    def __init__(self, size: int, on_orphaned: Callable[[], None] | None = None) -> None:
        if multiprocessing.current_process().daemon:
            raise ShmviewError(
                "a FrameWriter cannot be made in a daemonic process: its SharedMemoryManager needs a "
                "child process (start this process with daemon=False)"
            )
        check_room(size)
        self._manager: SharedMemoryManager | None = SharedMemoryManager(
            ctx=multiprocessing.get_context(_start_method())
        )
        self._manager.start(_manager_init, (on_orphaned,))
        try:
            shm = self._manager.SharedMemory(size)
            try:
                self.mm: mmap.mmap | None = self._map(shm._fd, size)  # type: ignore[attr-defined]
            finally:
                shm.close()  # its own mapping and descriptor: ours (mm) replaces them
        except BaseException:
            self._manager.shutdown()  # unlinks whatever it tracked
            self._manager = None
            raise
        self.name: str = shm.name

    @staticmethod
    def _map(fd: int, size: int) -> mmap.mmap:
        """Allocate and fault in every page now, so a full /dev/shm is an error here,
        not a SIGBUS in the middle of a frame, and the first frame costs no page faults.
        SharedMemory's own mmap would not do: its ``buf`` memoryview does not pin it."""
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            raise ShmviewError(
                f"cannot allocate {size:,} bytes in shared memory: {exc.strerror}", errno=exc.errno
            ) from None
        mm = mmap.mmap(fd, size)
        np.frombuffer(mm, np.uint8).fill(0)
        return mm

    def close(self) -> None:
        """Unlink, and unmap once no array refers to the block any more. Safe to call twice."""
        manager, self._manager = self._manager, None
        mm, self.mm = self.mm, None
        if mm is not None:
            release(mm)
        if manager is not None:
            manager.shutdown()


def is_block_name(name: str) -> bool:
    return bool(_BLOCK_NAME.fullmatch(name)) and name.lstrip("/") not in (".", "..")


def open_block(name: str) -> int:
    """A read-only descriptor of block ``name``, which must be a regular file of ours.

    /dev/shm is writable by every user: a name there may be someone else's block, a FIFO
    (a plain open would block forever), a symlink or a folder. O_NOFOLLOW and O_NONBLOCK
    make opening any of them safe, and fstat then says what it is.
    """
    if not is_block_name(name):
        raise StreamNotFoundError(f"{name!r} is not a valid shared-memory block name", name=name)
    path = os.path.join(SHM_DIR, name.lstrip("/"))
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise StreamNotFoundError(f"no shared-memory block named {name!r}", name=name) from None
    except OSError as exc:
        why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise ProtocolError(f"cannot open block {name!r}: {why}", name=name) from None
    st = os.fstat(fd)
    problem = _not_ours(st)
    if problem:
        os.close(fd)
        raise ProtocolError(f"block {name!r} {problem}; not opening it", name=name)
    return fd


def _not_ours(st: os.stat_result) -> str | None:
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid != os.getuid():
        return f"belongs to another user (uid {st.st_uid})"
    return None


def forget_block(name: str) -> None:
    """Tell this process's resource tracker that block ``name`` needs no clean-up."""
    from multiprocessing import resource_tracker

    resource_tracker.unregister("/" + name.lstrip("/"), "shared_memory")


def block_identity(name: str) -> tuple[int, int] | None:
    """(device, inode) of the block now linked under ``name``, or None if there is none."""
    try:
        st = os.stat(os.path.join(SHM_DIR, name.lstrip("/")), follow_symlinks=False)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def unlink_block(name: str) -> None:
    """Remove a block of ours from /dev/shm (its memory lives on while mapped)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(SHM_DIR, name.lstrip("/")))


class ReadOnlyBlock:
    """A read-only mapping of an existing block of ours.

    ``mm`` is the mapping; arrays over it must be made with ``np.frombuffer(mm)``, so that
    they keep it mapped (see release()). The mmap object keeps its own duplicate of the
    descriptor (the only one left open), which ``mm.size()`` asks for the current size.
    """

    def __init__(self, name: str) -> None:
        self.name = name.lstrip("/")
        fd = open_block(name)
        try:
            st = os.fstat(fd)
            self.size, self.identity = st.st_size, (st.st_dev, st.st_ino)
            if self.size == 0:
                raise ProtocolError(f"block {name!r} is empty", name=name)
            self.mm: mmap.mmap | None = mmap.mmap(fd, self.size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)

    def unlinked(self) -> bool:
        """Whether the block is no longer reachable under its name: its owner removed it,
        or another block now has the name."""
        return block_identity(self.name) != self.identity

    def close(self) -> None:
        """Unmap once no array refers to the block any more. Safe to call twice."""
        mm, self.mm = self.mm, None
        if mm is not None:
            release(mm)
