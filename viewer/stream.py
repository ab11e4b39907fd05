"""FrameWriter and FrameReader: tear-free frames through one shared-memory block.

The layout and the write/read procedures are in viewer/protocol.py (docs/PROTOCOL.md).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import numpy as np

from viewer import protocol as P
from viewer.errors import BusyError, FrameMismatchError, ProtocolError, ShmviewError, StreamNotFoundError
from viewer.registry import Claim, StreamRecord, is_live, read_record, reap, record_path, validate_name
from viewer.shm import OwnedBlock, ReadOnlyBlock, forget_block

log = logging.getLogger(__name__)

MAX_READ_ATTEMPTS = 64  # a live writer laps a 3-slot ring far less often than this


@dataclass(frozen=True)
class Frame:
    """One consistent frame: a private copy of the pixels and the writer's stamps."""

    image: np.ndarray = field(repr=False)
    index: int | None  # None for raw blocks, which carry no stamps
    timestamp_ns: int | None

    def __repr__(self) -> str:
        return f"Frame(index={self.index}, shape={self.image.shape}, dtype={self.image.dtype.name})"


@dataclass(frozen=True)
class StreamInfo:
    """What a stream carries, as a reader sees it."""

    block: str
    shape: tuple[int, ...]
    dtype: str
    pixel_format: str
    slots: int
    producer_pid: int | None
    created_ns: int | None


_C = TypeVar("_C", bound="_Closing")


class _Closing:
    """close() on leaving a with block."""

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass
class _Views:
    """numpy views of one block's mutable words and slots (dropped before unmapping)."""

    state: np.ndarray  # the header's state word, shape (1,)
    published: np.ndarray  # frames_written, shape (1,)
    meta: list[np.ndarray]  # per slot: seq, index, timestamp_ns
    pixels: list[np.ndarray]  # per slot: the frame

    @classmethod
    def of(cls, buf: memoryview, lay: P.Layout) -> _Views:
        def words(offset: int, count: int) -> np.ndarray:
            return np.ndarray((count,), np.uint64, buffer=buf, offset=offset)

        slots = range(lay.slot_count)
        return cls(
            words(P.STATE_OFFSET, 1),
            words(P.FRAMES_WRITTEN_OFFSET, 1),
            [words(lay.slot_offset(s), 3) for s in slots],
            [np.ndarray(lay.shape, lay.dtype, buffer=buf, offset=lay.pixels_offset(s)) for s in slots],
        )


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


class _Mapping:
    """A reader's mapping, safe to close while reads run in other threads: close()
    waits for them, and a read after close raises. A close() from a signal handler that
    interrupted a read in the same thread is finished by that read when it leaves."""

    def __init__(self, block: ReadOnlyBlock) -> None:
        self.block: ReadOnlyBlock | None = block
        self._cond = threading.Condition(threading.RLock())
        self._inside: Counter[int] = Counter()  # thread id -> reads in progress

    @contextmanager
    def reading(self, what: str) -> Iterator[ReadOnlyBlock]:
        me = threading.get_ident()
        with self._cond:
            if self.block is None:
                raise ShmviewError(f"{what} is closed")
            self._inside[me] += 1
            block = self.block
        try:
            yield block
        finally:
            with self._cond:
                self._inside[me] -= 1
                if not self._inside[me]:
                    del self._inside[me]
                self._cond.notify_all()
            if self._closing and not self._inside:
                self._unmap()

    _closing = False

    def close(self, drop_views: Callable[[], None]) -> None:
        with self._cond:
            if self.block is None or self._closing:
                return
            self._closing = True
            self._drop_views = drop_views
            if self._inside.get(threading.get_ident()):
                return  # a read of this very thread is under us: it unmaps when it leaves
            self._cond.wait_for(lambda: not self._inside)
        self._unmap()

    def _unmap(self) -> None:
        with self._cond:
            block, self.block = self.block, None
        if block is not None:
            self._drop_views()
            block.close()


class FrameReader(_Closing):
    """Reads the newest complete frame of a stream. Attaches once, read-only.

    ``FrameReader(name)`` looks ``name`` up in the user's stream registry, and nothing
    else: a name never means a block someone else put in /dev/shm. To open a block by
    its block name, say so with ``FrameReader.from_block(block)``.
    """

    def __init__(self, name: str, *, _block: str | None = None) -> None:
        self.name = name
        self.record: StreamRecord | None = None
        if _block is None:
            self.record = _find_live(name)
            _block = self.record.block
        block = ReadOnlyBlock(_block)
        try:
            head = P.parse_header(bytes(block.buf[: P.STATE_OFFSET]), block.size)
            if self.record is not None and head.created_ns != self.record.created_ns:
                raise ProtocolError(f"block {_block} is not the one the registry names")
        except ProtocolError as exc:
            block.close()
            raise ProtocolError(f"{name}: {exc}", name=name) from None
        self.layout = lay = head.layout
        self._v: _Views | None = _Views.of(block.buf, lay)
        self._map = _Mapping(block)
        self.identity = block.identity
        self.info = StreamInfo(
            block.name, lay.shape, lay.dtype.name, lay.pixel_format, lay.slot_count,
            head.producer_pid, head.created_ns,
        )

    @classmethod
    def from_block(cls, block: str) -> FrameReader:
        """A reader of the shmview block named ``block`` (``psm_...``), which must be a
        regular file in /dev/shm owned by the current user."""
        return cls(block, _block=block)

    @property
    def frames_written(self) -> int:
        with self._map.reading(self.name):
            assert self._v is not None
            return int(self._v.published[0])

    @property
    def closed_by_producer(self) -> bool:
        with self._map.reading(self.name):
            assert self._v is not None
            return int(self._v.state[0]) == P.STATE_CLOSED

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        """The newest complete frame, or None before the first one. Never torn.

        ``out`` (same shape and dtype) receives the pixels instead of a new array.
        """
        lay = self.layout
        image = np.empty(lay.shape, lay.dtype) if out is None else out
        with self._map.reading(self.name) as block:
            v = self._v
            assert v is not None
            for _ in range(MAX_READ_ATTEMPTS):
                n = int(v.published[0])
                if n == 0:
                    return None
                k, s = n - 1, (n - 1) % lay.slot_count
                meta = v.meta[s]
                seq = int(meta[0])
                if seq & 1 or int(meta[1]) != k:
                    continue  # the writer is on this slot, or it does not hold frame k: no copy
                block.check_size(lay.block_size)
                np.copyto(image, v.pixels[s])
                index, stamp = int(meta[1]), int(meta[2])
                if int(meta[0]) == seq and index == k:
                    return Frame(image, index, stamp)
        raise BusyError(
            f"{self.name}: no consistent frame in {MAX_READ_ATTEMPTS} attempts "
            "(is the writer stuck in the middle of a frame?)",
            name=self.name,
        )

    def replaced(self) -> bool:
        """Whether the stream's name now points to another block (its producer restarted)
        or its block is gone; for a reader opened by block name, whether another block
        was made under that name or the block was unlinked."""
        if self.record is None:
            with self._map.reading(self.name) as block:
                return block.unlinked()
        rec = read_record(self.name)
        return rec is None or (rec.block, rec.created_ns) != (self.record.block, self.record.created_ns)

    def close(self) -> None:
        """Unmap, after any read running in another thread has finished. Idempotent."""
        self._map.close(self._drop_views)

    def _drop_views(self) -> None:
        self._v = None


def _find_live(name: str) -> StreamRecord:
    """The record of a running stream ``name``; a dead producer's record is reaped."""
    validate_name(name)
    rec = read_record(name)
    if rec is not None and not is_live(name):
        reap(record_path(name))
        rec = None
    if rec is None:
        raise StreamNotFoundError(f"no stream {name!r}", name=name)
    return rec


class RawReader(_Closing):
    """Reads a foreign block holding a bare array at offset 0 (no header, no stamps).

    Such a writer has no sequence counter, so a copy can be torn while it writes.
    The block must still be a regular file in /dev/shm owned by the current user.
    """

    def __init__(
        self, name: str, shape: tuple[int, ...], dtype: object, pixel_format: str | None = None
    ) -> None:
        self.name = name
        lay = P.make_layout(shape, dtype, pixel_format, 1)
        block = ReadOnlyBlock(name)
        if lay.frame_bytes > block.size:
            block.close()
            raise ProtocolError(
                f"block {name!r} holds {block.size:,} bytes; shape {lay.shape} "
                f"{lay.dtype.name} needs {lay.frame_bytes:,}",
                name=name,
            )
        self.layout = lay
        self._view: np.ndarray | None = np.ndarray(lay.shape, lay.dtype, buffer=block.buf)
        self._map = _Mapping(block)
        self.identity = block.identity
        self.info = StreamInfo(block.name, lay.shape, lay.dtype.name, lay.pixel_format, 0, None, None)

    def read(self, out: np.ndarray | None = None) -> Frame:
        image = np.empty(self.layout.shape, self.layout.dtype) if out is None else out
        with self._map.reading(self.name) as block:
            assert self._view is not None
            block.check_size(self.layout.frame_bytes)
            np.copyto(image, self._view)
        return Frame(image, None, None)

    def replaced(self) -> bool:
        """Whether the block was unlinked, or another block now has its name."""
        with self._map.reading(self.name) as block:
            return block.unlinked()

    def close(self) -> None:
        self._map.close(self._drop_views)

    def _drop_views(self) -> None:
        self._view = None
