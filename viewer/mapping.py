"""A reader's mapping of a block, and the numpy views over it, closed safely.

Numpy views do not pin an mmap: unmapping under a running copy is a segfault. So the
unmap waits for reads in other threads, and one interrupted by a signal handler in its
own thread is finished by that read.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from viewer.errors import ShmviewError
from viewer.shm import ReadOnlyBlock


class Mapping:
    """A reader's mapping and the views over it, safe to close while reads run in other
    threads: close() waits for them, and a read after close raises. A close() from a
    signal handler that interrupted a read in the same thread is finished by that read
    when it leaves. (Numpy views do not pin an mmap: unmapping under one is a segfault.)"""

    def __init__(self, block: ReadOnlyBlock, views: Any, needed: int) -> None:
        self.block: ReadOnlyBlock | None = block
        self.views = views
        self.needed = needed  # bytes every access touches at most: checked before each
        self._cond = threading.Condition(threading.RLock())
        self._inside: Counter[int] = Counter()  # thread id -> reads in progress
        self._closing = False

    @contextmanager
    def reading(self, what: str) -> Iterator[tuple[ReadOnlyBlock, Any]]:
        me = threading.get_ident()
        with self._cond:
            if self.block is None or self._closing:
                raise ShmviewError(f"{what} is closed")
            self._inside[me] += 1
            held = self.block, self.views
        try:
            held[0].check_size(self.needed)  # an owner that shrank the block: an error, not SIGBUS
            yield held
        finally:
            with self._cond:
                self._inside[me] -= 1
                if not self._inside[me]:
                    del self._inside[me]
                self._cond.notify_all()
                last_out = self._closing and not self._inside
            if last_out:
                self._unmap()

    def close(self) -> None:
        with self._cond:
            if self.block is None or self._closing:
                return
            self._closing = True
            if self._inside.get(threading.get_ident()):
                return  # a read of this very thread is under us: it unmaps when it leaves
            self._cond.wait_for(lambda: not self._inside)
        self._unmap()

    def _unmap(self) -> None:
        with self._cond:
            block, self.block, self.views = self.block, None, None
        if block is not None:
            block.close()
