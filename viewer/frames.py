"""The plain values streams hand out, and the numpy views over a block's mutable words."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

import numpy as np

from viewer import protocol as P


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
