"""FrameWriter: owns a stream, one block with a header and a ring of frame slots.

The layout and the write procedure are in viewer/stream/protocol.py (docs/PROTOCOL.md).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import orjson

from viewer.errors import FormatError, FrameMismatchError, MetadataError, ShmviewError
from viewer.stream import protocol as P
from viewer.stream.bell import NO_BELL, WriterBell, waking
from viewer.stream.blocks import OwnedBlock, forget_block
from viewer.stream.frames import INDEX, META_LEN, PUBLISHED, SEQ, STAMP, BlockViews, Closing
from viewer.stream.registry import Claim, read_record, reap, validate_name

log = logging.getLogger(__name__)


_REAP_PATIENCE_S = 2.0  # viewers probing the dead stream's lock hold it for microseconds


class _CleanUpAfter:
    """What the SharedMemoryManager server does when the producer dies without closing:
    remove the stream's record and block, and tell the resource tracker (which it shares
    with the producer) that the block is gone, so it has nothing to warn about."""

    def __init__(self, record: Path) -> None:
        self.record = record

    def __call__(self) -> None:
        rec = read_record(self.record.stem)
        with waking(rec.block if rec is not None else None):  # readers asleep on it then find it gone
            reaped = reap(self.record, patience_s=_REAP_PATIENCE_S)
        if reaped is not None and reaped.record is not None and reaped.block_removed:
            forget_block(reaped.record.block)  # else the tracker is left to unlink it


_open_writers: weakref.WeakSet[FrameWriter] = weakref.WeakSet()


@atexit.register
def _close_open_writers() -> None:
    """A writer left open at a normal exit still removes its record and block. (atexit
    runs this before multiprocessing's own exit handler stops the manager.)"""
    for writer in list(_open_writers):
        writer.close()


class FrameWriter(Closing):
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
        meta_bytes: int = P.DEFAULT_META_BYTES,
    ) -> None:
        self.name = validate_name(name)
        self.layout = P.make_layout(shape, dtype, pixel_format, slots, meta_bytes)
        # Either byte order: copying into the block swaps it. (dtype.name costs 5 us a call.)
        self._dtypes = (self.layout.dtype, self.layout.dtype.newbyteorder())
        self._loaned = False
        self._v: BlockViews | None = None  # None once closed: the one thing every use checks
        self._block: OwnedBlock | None = None
        self._bell: WriterBell = NO_BELL
        self._claim = Claim(name)
        try:
            orphaned = _CleanUpAfter(self._claim.path)
            self._block = OwnedBlock(self.layout.block_size, on_orphaned=orphaned)
            mm, created_ns = self._block.mm, time.time_ns()
            assert mm is not None
            mm[: P.STATE_OFFSET] = P.pack_header(self.layout, os.getpid(), created_ns)
            mm[P.META_BYTES_OFFSET : P.META_BYTES_OFFSET + 4] = P.pack_meta_bytes(self.layout)
            self._v = BlockViews.of(mm, self.layout)
            self._v.state[0] = P.STATE_LIVE
            self._bell = WriterBell(self._block.name, created_ns, self._v.published)  # before the record
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

    def loan(self, *, timestamp_ns: int | None = None, meta: dict[str, Any] | None = None) -> Loan:
        """The next slot's pixels to fill in place, as a context manager:

        >>> with writer.loan() as pixels:   # doctest: +SKIP
        ...     camera.read(image=pixels)

        Readers keep off the slot while the block runs. Leaving it normally publishes the
        frame (``loan.index`` then holds its index) with ``meta``, or with what the block
        set as ``loan.meta`` (metadata computed from the pixels, say); an exception
        (metadata that cannot be stored included) publishes nothing, the previous frame
        stays the newest, and the next frame takes the same index. The array is read-only
        once the block ends: it is the stream's memory, which stays mapped for as long as
        the array (or anything made from it) lives, even past close().
        """
        return Loan(self, timestamp_ns, meta)

    def write(self, frame: np.ndarray, *, timestamp_ns: int | None = None, meta: dict[str, Any] | None = None) -> int:
        """Copy ``frame`` into the next slot, with ``meta`` (a JSON-serialisable dict, at
        most ``meta_bytes`` once serialised), publish it, and return its index. A frame or
        metadata that does not fit is refused before anything is published."""
        dtype = getattr(frame, "dtype", None)
        if getattr(frame, "shape", None) != self.layout.shape or not (
            isinstance(dtype, np.dtype) and dtype in self._dtypes
        ):
            raise self._mismatch(frame)
        payload = b"" if meta is None else self._encode(meta)
        stamp = time.time_ns() if timestamp_ns is None else self._stamp(timestamp_ns)
        v, k, slot = self._begin()
        np.copyto(v.pixels[slot], frame)  # v (ours) keeps the block mapped even if closed meanwhile
        self._publish(v, k, slot, stamp, payload)
        return k

    def _mismatch(self, frame: object) -> FrameMismatchError:
        lay = self.layout
        return FrameMismatchError(
            f"stream {self.name!r} takes {_describe(lay)} frames, got "
            f"{getattr(frame, 'shape', type(frame).__name__)} "
            f"{getattr(getattr(frame, 'dtype', None), 'name', '')}".rstrip(),
            expected=(lay.shape, lay.dtype.name),
        )

    def _encode(self, meta: dict[str, Any] | None) -> bytes:
        """``meta`` as the stream stores it; MetadataError if it cannot be."""
        if meta is None:
            return b""
        if not isinstance(meta, dict):
            raise MetadataError(f"metadata must be a dict, got {type(meta).__name__}")
        try:
            payload = orjson.dumps(meta, option=orjson.OPT_SERIALIZE_NUMPY)
        except orjson.JSONEncodeError as exc:
            raise MetadataError(f"metadata is not JSON-serialisable: {exc}") from None
        if len(payload) > self.layout.meta_bytes:
            raise MetadataError(
                f"metadata of {len(payload):,} bytes does not fit the {self.layout.meta_bytes:,} bytes "
                f"a frame of stream {self.name!r} has room for (FrameWriter(..., meta_bytes=N), "
                f"up to {P.MAX_META_BYTES:,})",
                size=len(payload),
            )
        return payload

    def _begin(self) -> tuple[BlockViews, int, int]:
        """Mark the next slot busy (odd seq); return (views, index, slot). The caller works
        through these views only: a close() meanwhile (another thread, a signal handler)
        then cannot pull the mapping from under it."""
        v = self._v
        if v is None:
            raise ShmviewError(f"stream {self.name!r} is closed")
        if self._loaned:
            raise ShmviewError(f"stream {self.name!r} has a loan open: finish it before the next frame")
        k = self.frames_written
        lap, slot = divmod(k, self.layout.slot_count)
        v.q[v.at[slot] + SEQ] = 2 * lap + 1  # odd: readers keep off this slot
        return v, k, slot

    def _stamp(self, timestamp_ns: int | None) -> int:
        if timestamp_ns is None:
            return time.time_ns()
        if not isinstance(timestamp_ns, int | np.integer) or not 0 <= timestamp_ns <= P.MAX_NS:
            raise FormatError(f"timestamp_ns must be an integer from 0 to 2**63 - 1, got {timestamp_ns!r}")
        return int(timestamp_ns)

    def _publish(self, v: BlockViews, k: int, slot: int, timestamp_ns: int | None, payload: bytes = b"") -> None:
        q, at = v.q, v.at[slot]
        if payload:  # only a stream with room for metadata takes any (_encode)
            start = v.meta_offsets[slot]
            v.mm[start : start + len(payload)] = payload
        q[at + META_LEN] = len(payload)  # with the 4 reserved bytes after it, which stay zero
        q[at + INDEX] = k
        q[at + STAMP] = timestamp_ns if timestamp_ns is not None else time.time_ns()
        q[at + SEQ] = 2 * (k // self.layout.slot_count) + 2
        q[PUBLISHED] = k + 1  # only now may readers pick this slot
        self._bell.ring()
        self.frames_written = k + 1

    def _discard(self, v: BlockViews, k: int, slot: int) -> None:
        """Leave a half-filled slot so no reader takes it: its index says no frame, its seq
        goes back to the even value it had. frames_written stays, so index k is reused."""
        meta = v.words[slot]
        meta[1] = P.NO_FRAME
        meta[0] = 2 * (k // self.layout.slot_count)

    def close(self) -> None:
        """Mark the stream closed, remove its name and unlink the block. Idempotent, and
        safe from another thread or a signal handler: it takes no lock, and arrays over the
        block (a loan's pixels, a write under way) keep it mapped until they are gone.
        Every later use of the writer raises ShmviewError."""
        v, self._v = self._v, None
        if v is not None:
            v.state[0] = P.STATE_CLOSED
            del v  # so that the block can unmap at once when no one else holds an array
        self._bell.close()  # wakes the readers asleep on the stream, removes the bell file
        block, self._block = self._block, None
        if block is not None:
            block.close()
        self._claim.release()

    def __del__(self) -> None:
        # A writer dropped without close() gives its name, record, bell and block back at
        # once, as a dead producer's are; errors here could only be printed, never raised.
        with contextlib.suppress(Exception):
            self.close()


class Loan:
    """``FrameWriter.loan()``: the next slot, to fill in place. One open loan at a time."""

    def __init__(self, writer: FrameWriter, timestamp_ns: int | None, meta: dict[str, Any] | None) -> None:
        self._writer, self._timestamp_ns = writer, timestamp_ns
        self.meta = meta  # may be set inside the block, once the pixels say what it is
        self.index: int | None = None  # the published frame's index, once the block ended well
        self._pixels: np.ndarray | None = None
        self._v: BlockViews | None = None  # the writer's views while the block runs

    def __enter__(self) -> np.ndarray:
        w = self._writer
        if self._timestamp_ns is not None:
            self._timestamp_ns = w._stamp(self._timestamp_ns)  # checked before the slot is taken
        self._v, self._k, self._slot = w._begin()
        w._loaned = True
        self._pixels = self._v.pixels[self._slot][...]  # our own view object, to lock afterwards
        return self._pixels

    def __exit__(self, t: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        w, v, self._v = self._writer, self._v, None
        if v is None or self._pixels is None:
            return  # never entered
        self._pixels.flags.writeable = False
        w._loaned = False
        if w._v is not v:
            return  # closed inside the block: nothing to publish into
        try:
            payload = w._encode(self.meta) if t is None else b""
        except MetadataError:
            w._discard(v, self._k, self._slot)
            raise
        if t is None:
            w._publish(v, self._k, self._slot, self._timestamp_ns, payload)
            self.index = self._k
        else:
            w._discard(v, self._k, self._slot)


def _describe(lay: P.Layout) -> str:
    return f"{lay.shape} {lay.dtype.name}"
