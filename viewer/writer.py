"""FrameWriter: owns a stream, one block with a header and a ring of frame slots.

The layout and the write procedure are in viewer/protocol.py (docs/PROTOCOL.md).
"""

from __future__ import annotations

import atexit
import logging
import os
import time
import weakref
from pathlib import Path

import numpy as np

from viewer import protocol as P
from viewer.errors import FrameMismatchError, ShmviewError
from viewer.frames import _Closing, _Views
from viewer.registry import Claim, reap, validate_name
from viewer.shm import OwnedBlock, forget_block

log = logging.getLogger(__name__)


class _CleanUpAfter:
    """What the SharedMemoryManager server does when the producer dies without closing:
    remove the stream's record and block, and tell the resource tracker (which it shares
    with the producer) that the block is gone, so it has nothing to warn about."""

    def __init__(self, record: Path) -> None:
        self.record = record

    def __call__(self) -> None:
        rec = reap(self.record)
        if rec is not None:
            forget_block(rec.block)


_open_writers: weakref.WeakSet[FrameWriter] = weakref.WeakSet()


@atexit.register
def _close_open_writers() -> None:
    """A writer left open at a normal exit still removes its record and block. (atexit
    runs this before multiprocessing's own exit handler stops the manager.)"""
    for writer in list(_open_writers):
        writer.close()


class FrameWriter(_Closing):
    """Owns a stream: one block with a header and ``slots`` frame slots.

    >>> with FrameWriter("cam0", (480, 640, 3)) as w:   # doctest: +SKIP
    ...     w.write(frame)
    """

    def __init__(
        self,
        name: str,
        shape: tuple[int, ...] = (480, 640, 3),
        dtype: object = "uint8",
        *,
        pixel_format: str | None = None,
        slots: int = 3,
    ) -> None:
        self.name = validate_name(name)
        self.layout = P.make_layout(shape, dtype, pixel_format, slots)
        self._block: OwnedBlock | None = None
        self._claim = Claim(name)
        try:
            orphaned = _CleanUpAfter(self._claim.path)
            self._block = OwnedBlock(self.layout.block_size, on_orphaned=orphaned)
            created_ns = time.time_ns()
            self._block.buf[: P.STATE_OFFSET] = P.pack_header(self.layout, os.getpid(), created_ns)
            self._v = _Views.of(self._block.buf, self.layout)
            self._v.state[0] = P.STATE_LIVE
            self._claim.publish(self._block.name, created_ns)
        except BaseException:
            self.close()
            raise
        self.frames_written = 0
        _open_writers.add(self)
        log.info("stream %s ready in block %s", name, self.block_name)

    @property
    def block_name(self) -> str:
        if self._block is None:
            raise ShmviewError("the writer is closed")
        return self._block.name

    def write(self, frame: np.ndarray, *, timestamp_ns: int | None = None) -> int:
        """Copy ``frame`` into the next slot, publish it, and return its index."""
        if self._block is None:
            raise ShmviewError(f"stream {self.name!r} is closed")
        lay = self.layout
        if getattr(frame, "shape", None) != lay.shape or getattr(frame, "dtype", None) != lay.dtype:
            raise FrameMismatchError(
                f"stream {self.name!r} takes {lay.shape} {lay.dtype.name} frames, got "
                f"{getattr(frame, 'shape', type(frame).__name__)} "
                f"{getattr(getattr(frame, 'dtype', None), 'name', '')}".rstrip(),
                expected=(lay.shape, lay.dtype.name),
            )
        k = self.frames_written
        lap, slot = divmod(k, lay.slot_count)
        meta = self._v.meta[slot]
        meta[0] = 2 * lap + 1  # odd: readers keep off this slot
        np.copyto(self._v.pixels[slot], frame)
        meta[1] = k
        meta[2] = time.time_ns() if timestamp_ns is None else timestamp_ns
        meta[0] = 2 * lap + 2
        self._v.published[0] = k + 1  # only now may readers pick this slot
        self.frames_written = k + 1
        return k

    def close(self) -> None:
        """Mark the stream closed, remove its name and unlink the block. Idempotent."""
        if self._block is not None:
            if hasattr(self, "_v"):
                self._v.state[0] = P.STATE_CLOSED
                del self._v
            self._block.close()
            self._block = None
        self._claim.release()
