"""Shared-memory blocks: the producer's, made through SharedMemoryManager, and the
readers' read-only mappings of it.

Readers deliberately do not use ``SharedMemory(name)``. On Python < 3.13 it registers
the block with the reader's resource tracker, which unlinks the producer's block when
the reader exits (CPython gh-82300), and its constructor unlinks the block when mmap
fails, for example on EMFILE (gh-153279). A read-only ``mmap`` of ``shm_open`` has
neither problem, costs one descriptor only while attaching, and a reader can never
write into a producer's frames.
"""

from __future__ import annotations

import _posixshmem  # the shm_open() behind multiprocessing.shared_memory; POSIX only
import contextlib
import mmap
import multiprocessing
import os
import re
import signal
import threading
from collections.abc import Callable
from multiprocessing.managers import SharedMemoryManager

import numpy as np

from viewer.errors import ProtocolError, ShmviewError, StreamNotFoundError

SHM_DIR = "/dev/shm"
_BLOCK_NAME = re.compile(r"/?[^/\0]{1,250}")


def _manager_init(on_orphaned: Callable[[], None] | None) -> None:
    """Runs in the SharedMemoryManager server: tie its life to the producer's.

    ``serve_forever`` never checks its parent, so after SIGKILL of the producer the
    server would keep the block alive forever. This thread ends it instead; the
    resource tracker, whose last client it was, then unlinks the block.
    """
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the producer handles hang-up and shuts us down
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = multiprocessing.parent_process()

    def exit_with_parent() -> None:
        assert parent is not None
        parent.join()
        if on_orphaned is not None:
            on_orphaned()
        os._exit(0)

    threading.Thread(target=exit_with_parent, name="shmview-orphan-watch", daemon=True).start()


def _start_method() -> str:
    # fork: the server must not re-import the user's __main__ (spawn and forkserver do),
    # and it must inherit the registry lock so the name stays claimed while it cleans up.
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


class OwnedBlock:
    """A block this process created, with its SharedMemoryManager. close() unlinks it."""

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
            self._shm = self._manager.SharedMemory(size)
            self._reserve(size)
        except BaseException:
            self._manager.shutdown()  # unlinks whatever it tracked
            self._manager = None
            raise
        self.name: str = self._shm.name
        self.buf: memoryview = self._shm.buf

    def _reserve(self, size: int) -> None:
        """Allocate and fault in every page now, so a full /dev/shm is an error here,
        not a SIGBUS in the middle of a frame, and the first frame costs no page faults."""
        fd = getattr(self._shm, "_fd", -1)
        if fd >= 0:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                raise ShmviewError(
                    f"cannot allocate {size:,} bytes in shared memory: {exc.strerror}",
                    errno=exc.errno,
                ) from None
        np.ndarray(size, np.uint8, buffer=self._shm.buf).fill(0)

    def close(self) -> None:
        """Unmap and unlink. Safe to call twice; views over ``buf`` must be gone first."""
        if self._manager is None:
            return
        del self.buf
        with contextlib.suppress(BufferError):  # a view outlives us (interpreter exit):
            self._shm.close()  # unlinking below frees the memory all the same
        self._manager.shutdown()
        self._manager = None


def is_block_name(name: str) -> bool:
    return bool(_BLOCK_NAME.fullmatch(name))


def block_exists(name: str) -> bool:
    try:
        os.close(_posixshmem.shm_open("/" + name.lstrip("/"), os.O_RDONLY, 0))
    except OSError:
        return False
    return True


class ReadOnlyBlock:
    """A read-only mapping of an existing block. Costs no descriptor once made."""

    def __init__(self, name: str) -> None:
        if not is_block_name(name):
            raise StreamNotFoundError(f"{name!r} is not a valid shared-memory block name", name=name)
        self.name = name.lstrip("/")
        try:
            fd = _posixshmem.shm_open("/" + self.name, os.O_RDONLY, 0)
        except FileNotFoundError:
            raise StreamNotFoundError(f"no stream or block named {name!r}", name=name) from None
        try:
            self.size = os.fstat(fd).st_size
            if self.size == 0:
                raise ProtocolError(f"block {name!r} is empty", name=name)
            self._mmap: mmap.mmap | None = mmap.mmap(fd, self.size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        self.buf = memoryview(self._mmap)

    def close(self) -> None:
        """Unmap. Safe to call twice; numpy views over ``buf`` must be gone first."""
        if self._mmap is None:
            return
        self.buf.release()
        self._mmap.close()
        self._mmap = None
