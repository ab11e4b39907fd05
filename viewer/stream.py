"""FrameWriter and FrameReader: tear-free frames through one shared-memory block.

The layout and the write/read procedures are in viewer/protocol.py (docs/PROTOCOL.md).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import numpy as np

from viewer import protocol as P
from viewer.errors import BusyError, FrameMismatchError, InvalidNameError, ProtocolError, ShmviewError
from viewer.registry import Claim, read_record, validate_name
from viewer.shm import OwnedBlock, ReadOnlyBlock, is_block_name

log = logging.getLogger(__name__)

MAX_READ_ATTEMPTS = 64  # a live writer laps a 3-slot ring far less often than this


@dataclass(frozen=True)
class Frame:
    """One consistent frame: a private copy of the pixels and the writer's stamps."""

    image: np.ndarray
    index: int | None  # None for raw blocks, which carry no stamps
    timestamp_ns: int | None


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
            self._block = OwnedBlock(self.layout.block_size, on_orphaned=self._claim.release)
            created_ns = time.time_ns()
            self._block.buf[: P.STATE_OFFSET] = P.pack_header(self.layout, os.getpid(), created_ns)
            self._v = _Views.of(self._block.buf, self.layout)
            self._v.state[0] = P.STATE_LIVE
            self._claim.publish(self._block.name, created_ns)
        except BaseException:
            self.close()
            raise
        self.frames_written = 0
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


def resolve_block(name: str) -> str:
    """A stream name's block, from the registry; anything else is taken as a block name."""
    try:
        rec = read_record(name)
    except InvalidNameError:
        if is_block_name(name):  # "/psm_ab12", say
            return name
        raise
    return rec.block if rec is not None else name


class FrameReader(_Closing):
    """Reads the newest complete frame of a stream. Attaches once, read-only."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._block = ReadOnlyBlock(resolve_block(name))
        try:
            head = P.parse_header(bytes(self._block.buf[: P.STATE_OFFSET]), self._block.size)
        except ProtocolError as exc:
            self._block.close()
            raise ProtocolError(f"{name}: {exc}", name=name) from None
        self.layout = lay = head.layout
        self._v: _Views | None = _Views.of(self._block.buf, lay)
        self.info = StreamInfo(
            self._block.name, lay.shape, lay.dtype.name, lay.pixel_format, lay.slot_count,
            head.producer_pid, head.created_ns,
        )

    @property
    def frames_written(self) -> int:
        assert self._v is not None
        return int(self._v.published[0])

    @property
    def closed_by_producer(self) -> bool:
        assert self._v is not None
        return int(self._v.state[0]) == P.STATE_CLOSED

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        """The newest complete frame, or None before the first one. Never torn.

        ``out`` (same shape and dtype) receives the pixels instead of a new array.
        """
        v, slots = self._v, self.layout.slot_count
        assert v is not None, "read from a closed FrameReader"
        image = np.empty(self.layout.shape, self.layout.dtype) if out is None else out
        for _ in range(MAX_READ_ATTEMPTS):
            n = int(v.published[0])
            if n == 0:
                return None
            k = n - 1
            meta = v.meta[k % slots]
            seq = int(meta[0])
            if seq & 1:
                continue  # the writer lapped the ring onto this slot
            np.copyto(image, v.pixels[k % slots])
            index, stamp = int(meta[1]), int(meta[2])
            if int(meta[0]) == seq and index == k:
                return Frame(image, index, stamp)
        raise BusyError(
            f"{self.name}: no consistent frame in {MAX_READ_ATTEMPTS} attempts "
            "(is the writer stuck in the middle of a frame?)",
            name=self.name,
        )

    def close(self) -> None:
        self._v = None
        self._block.close()


class RawReader(_Closing):
    """Reads a foreign block holding a bare array at offset 0 (no header, no stamps).

    Such a writer has no sequence counter, so a copy can be torn while it writes.
    """

    def __init__(
        self, name: str, shape: tuple[int, ...], dtype: object, pixel_format: str | None = None
    ) -> None:
        self.name = name
        lay = P.make_layout(shape, dtype, pixel_format, 1)
        self._block = ReadOnlyBlock(name)
        if lay.frame_bytes > self._block.size:
            self._block.close()
            raise ProtocolError(
                f"block {name!r} holds {self._block.size:,} bytes; shape {lay.shape} "
                f"{lay.dtype.name} needs {lay.frame_bytes:,}",
                name=name,
            )
        self.layout = lay
        self._view: np.ndarray | None = np.ndarray(lay.shape, lay.dtype, buffer=self._block.buf)
        self.info = StreamInfo(
            self._block.name, lay.shape, lay.dtype.name, lay.pixel_format, 0, None, None
        )

    def read(self, out: np.ndarray | None = None) -> Frame:
        assert self._view is not None
        image = np.empty(self.layout.shape, self.layout.dtype) if out is None else out
        np.copyto(image, self._view)
        return Frame(image, None, None)

    def close(self) -> None:
        self._view = None
        self._block.close()
