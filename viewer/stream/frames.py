"""The plain values streams hand out (frames, what a stream carries, where it stands, the
words for its size and format), and the numpy views over a block's mutable words."""

from __future__ import annotations

import math
import mmap
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType
from typing import Any, TypeVar

import numpy as np

from viewer.stream import protocol as P


@dataclass(frozen=True)
class Frame:
    """One consistent frame: the pixels, the writer's stamps, and its metadata (a dict,
    or None when the frame carries none), all of the same frame."""

    image: np.ndarray = field(repr=False)
    index: int | None  # None for raw blocks, which carry no stamps
    timestamp_ns: int | None
    meta: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def _make(
        cls, image: np.ndarray, index: int | None, timestamp_ns: int | None, meta: dict[str, Any] | None
    ) -> Frame:
        """The same frame, made on the hot path: a frozen dataclass's __init__ sets each
        field through object.__setattr__ (about 1.4 us for four); this fills __dict__."""
        frame = object.__new__(cls)
        fields = frame.__dict__
        fields["image"], fields["index"], fields["timestamp_ns"], fields["meta"] = image, index, timestamp_ns, meta
        return frame

    def __repr__(self) -> str:
        meta = "" if self.meta is None else f", meta keys={sorted(self.meta)[:5]}"
        return f"Frame(index={self.index}, shape={self.image.shape}, dtype={self.image.dtype.name}{meta})"


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


class State(str, Enum):
    """Where a stream stands: the one set of words for it, a reader's and a viewer's.

    A str, so it compares equal to its word and prints as it ("live"), in text and JSON.
    A reader says LIVE, STALE or GONE; a viewer (viewer.view.monitor) shows GONE as STALE
    and adds WAITING (not there yet) and ERROR (what went wrong is in its status).
    """

    LIVE = "live"  # frames come, or came within the stale time
    STALE = "stale"  # its producer runs, but no new frame for a while
    GONE = "gone"  # its producer closed the stream or died, or the name moved on
    WAITING = "waiting"  # a viewer's: no such stream (yet)
    ERROR = "error"  # a viewer's: the stream cannot be read

    def __str__(self) -> str:  # the word on every Python: f"{state}" == "live"
        return str(self.value)


LIVE, STALE, GONE, WAITING, ERROR = State  # the members as module constants, like re's flags


def size_text(shape: Sequence[int]) -> str:
    """A frame's size as people write it: WIDTHxHEIGHT ("640x480"), whatever the channels."""
    return f"{shape[1]}x{shape[0]}"


def describe(shape: Sequence[int], dtype: str, pixel_format: str) -> str:
    """'640x480 BGR uint8': the one way sizes and formats are shown in text."""
    return f"{size_text(shape)} {pixel_format} {dtype}"


C = TypeVar("C", bound="Closing")


class Closing:
    """close() on leaving a with block."""

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass
class BlockViews:
    """numpy views of one block's mutable words and slots.

    Each is made with ``np.frombuffer(mm)``, so each keeps the block mapped for as long as
    it lives (viewer.stream.blocks.release): dropping them is all a close() needs to do for them.
    """

    state: np.ndarray  # the header's state word, shape (1,)
    published: np.ndarray  # frames_written, shape (1,)
    words: list[np.ndarray]  # per slot: seq, index, timestamp_ns
    pixels: list[np.ndarray]  # per slot: the frame
    meta_len: list[np.ndarray]  # per slot: bytes of metadata used, shape (1,) uint32
    meta: list[np.ndarray]  # per slot: the metadata capacity, uint8 (empty lists without)
    mm: mmap.mmap  # the mapping itself (metadata is copied by slicing it)
    q: memoryview  # the block as native u64 words: q[PUBLISHED], q[at[s] + SEQ] ... (see below)
    at: list[int]  # per slot: the index in q of its first word (seq)
    meta_offsets: list[int]  # per slot: where its metadata starts (empty without)

    @classmethod
    def of(cls, mm: mmap.mmap, lay: P.Layout) -> BlockViews:
        def at(offset: int, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
            return np.frombuffer(mm, dtype, math.prod(shape), offset).reshape(shape)

        slots = range(lay.slot_count) if lay.meta_bytes else range(0)
        return cls(
            at(P.STATE_OFFSET, np.uint64, (1,)),
            at(P.FRAMES_WRITTEN_OFFSET, np.uint64, (1,)),
            [at(lay.slot_offset(s), np.uint64, (3,)) for s in range(lay.slot_count)],
            [at(lay.pixels_offset(s), lay.dtype, lay.shape) for s in range(lay.slot_count)],
            [at(lay.slot_offset(s) + P.SLOT_META_LEN, np.uint32, (1,)) for s in slots],
            [at(lay.meta_offset(s), np.uint8, (lay.meta_bytes,)) for s in slots],
            mm,
            memoryview(mm)[: lay.block_size].cast("Q"),  # pins mm like the arrays do
            [lay.slot_offset(s) // 8 for s in range(lay.slot_count)],
            [lay.meta_offset(s) for s in slots],
        )


# The block's words through a memoryview cast to native u64 ("Q"): an item is loaded or
# stored with one 8-byte memcpy, a single aligned load or store like numpy's, at a third of
# the cost of a numpy scalar (0.04 against 0.1 us). Native is little-endian on every CPU
# shmview runs on (x86-64, aarch64), which the numpy views above assume too.
PUBLISHED = P.FRAMES_WRITTEN_OFFSET // 8  # q[PUBLISHED]: frames_written
SEQ, INDEX, STAMP, META_LEN = 0, 1, 2, 3  # q[at[slot] + ...]; META_LEN's word: meta_len | reserved << 32
META_LEN_MASK = 0xFFFFFFFF
