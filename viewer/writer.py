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
from types import TracebackType

import numpy as np

from viewer import protocol as P
from viewer.errors import FrameMismatchError, ShmviewError
from viewer.frames import _Closing, _Views
from viewer.registry import Claim, reap, validate_name
from viewer.shm import OwnedBlock, forget_block

log = logging.getLogger(__name__)


_REAP_PATIENCE_S = 2.0  # viewers probing the dead stream's lock hold it for microseconds


class _CleanUpAfter:
    """What the SharedMemoryManager server does when the producer dies without closing:
    remove the stream's record and block, and tell the resource tracker (which it shares
    with the producer) that the block is gone, so it has nothing to warn about."""

    def __init__(self, record: Path) -> None:
        self.record = record

    def __call__(self) -> None:
        rec = reap(self.record, patience_s=_REAP_PATIENCE_S)
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
        self._loaned = False
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
        self._loaned = False
        _open_writers.add(self)
        log.info("stream %s ready in block %s", name, self.block_name)

    @property
    def block_name(self) -> str:
        if self._block is None:
            raise ShmviewError("the writer is closed")
        return self._block.name

    def loan(self, *, timestamp_ns: int | None = None) -> Loan:
        """The next slot's pixels to fill in place, as a context manager:

        >>> with writer.loan() as pixels:   # doctest: +SKIP
        ...     camera.read(image=pixels)

        Readers keep off the slot while the block runs. Leaving it normally publishes the
        frame (``loan.index`` then holds its index); an exception publishes nothing, the
        previous frame stays the newest, and the next frame takes the same index. The
        array is read-only once the block ends: it is the stream's memory.
        """
        return Loan(self, timestamp_ns)

    def write(self, frame: np.ndarray, *, timestamp_ns: int | None = None) -> int:
        """Copy ``frame`` into the next slot, publish it, and return its index."""
        lay = self.layout
        if getattr(frame, "shape", None) != lay.shape or getattr(frame, "dtype", None) != lay.dtype:
            raise FrameMismatchError(
                f"stream {self.name!r} takes {_describe(lay)} frames, got "
                f"{getattr(frame, 'shape', type(frame).__name__)} "
                f"{getattr(getattr(frame, 'dtype', None), 'name', '')}".rstrip(),
                expected=(lay.shape, lay.dtype.name),
            )
        k, slot = self._begin()
        np.copyto(self._v.pixels[slot], frame)
        self._publish(k, slot, timestamp_ns)
        return k

    def _begin(self) -> tuple[int, int]:
        """Mark the next slot busy (odd seq); return (index, slot)."""
        if self._block is None:
            raise ShmviewError(f"stream {self.name!r} is closed")
        if self._loaned:
            raise ShmviewError(f"stream {self.name!r} has a loan open: finish it before the next frame")
        k = self.frames_written
        lap, slot = divmod(k, self.layout.slot_count)
        self._v.meta[slot][0] = 2 * lap + 1  # odd: readers keep off this slot
        return k, slot

    def _publish(self, k: int, slot: int, timestamp_ns: int | None) -> None:
        meta = self._v.meta[slot]
        meta[1] = k
        meta[2] = time.time_ns() if timestamp_ns is None else timestamp_ns
        meta[0] = 2 * (k // self.layout.slot_count) + 2
        self._v.published[0] = k + 1  # only now may readers pick this slot
        self.frames_written = k + 1

    def _discard(self, k: int, slot: int) -> None:
        """Leave a half-filled slot so no reader takes it: its index says no frame, its seq
        goes back to the even value it had. frames_written stays, so index k is reused."""
        meta = self._v.meta[slot]
        meta[1] = P.NO_FRAME
        meta[0] = 2 * (k // self.layout.slot_count)

    def close(self) -> None:
        """Mark the stream closed, remove its name and unlink the block. Idempotent."""
        if self._block is not None:
            if hasattr(self, "_v"):
                self._v.state[0] = P.STATE_CLOSED
                del self._v
            self._block.close()
            self._block = None
        self._claim.release()


class Loan:
    """``FrameWriter.loan()``: the next slot, to fill in place. One open loan at a time."""

    def __init__(self, writer: FrameWriter, timestamp_ns: int | None) -> None:
        self._writer, self._timestamp_ns = writer, timestamp_ns
        self.index: int | None = None  # the published frame's index, once the block ended well
        self._pixels: np.ndarray | None = None

    def __enter__(self) -> np.ndarray:
        w = self._writer
        self._k, self._slot = w._begin()
        w._loaned = True
        self._pixels = w._v.pixels[self._slot][...]  # our own view object, to lock afterwards
        return self._pixels

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        w = self._writer
        assert self._pixels is not None
        self._pixels.flags.writeable = False
        w._loaned = False
        if w._block is None:
            return  # closed inside the block: nothing to publish into
        if t is None:
            w._publish(self._k, self._slot, self._timestamp_ns)
            self.index = self._k
        else:
            w._discard(self._k, self._slot)


def _describe(lay: P.Layout) -> str:
    return f"{lay.shape} {lay.dtype.name}"
