"""A reader's mapping of a block and the arrays over it, closed without a lock.

Every array over a block is made with ``np.frombuffer(mm)``, which pins the mapping
(viewer.stream.blocks.release). close() only drops this object's references: a read running in
another thread, or one a signal handler interrupted to close, goes on over memory that
stays mapped, and an array a caller kept (from view() or apply()) stays valid until it is
gone. The next use of a closed ReaderMapping raises ShmviewError.
"""

from __future__ import annotations

import mmap
from typing import Generic, TypeVar

from viewer.errors import ProtocolError, ShmviewError
from viewer.stream.blocks import ReadOnlyBlock

V = TypeVar("V")


class ReaderMapping(Generic[V]):
    """A reader's mapping and the views over it (anything holding frombuffer arrays of
    ``block.mm``). ``needed``: the bytes every access may touch, checked before each."""

    __slots__ = ("_held", "block", "needed")

    def __init__(self, block: ReadOnlyBlock, views: V, needed: int) -> None:
        assert block.mm is not None
        self.block = block
        self.needed = needed
        self._held: tuple[mmap.mmap, V] | None = (block.mm, views)

    def held(self, what: str) -> tuple[mmap.mmap, V]:
        """The mapping and the views, for one access: ShmviewError once closed,
        ProtocolError if the owner shrank the block (the access would be a SIGBUS).
        The caller's reference to the views is what keeps the mapping valid meanwhile."""
        held = self._held  # one load: a close() after it cannot take the pair from us
        if held is None:
            raise ShmviewError(f"{what} is closed")
        size = held[0].size()  # one fstat; mm cannot be closed while its views live
        if size < self.needed:
            raise ProtocolError(
                f"block {self.block.name!r} shrank to {size:,} bytes under the reader", name=self.block.name
            )
        return held

    @property
    def closed(self) -> bool:
        return self._held is None

    def close(self) -> None:
        """Drop the views; the block is unmapped now, or when the last array over it goes."""
        self._held = None
        self.block.close()
