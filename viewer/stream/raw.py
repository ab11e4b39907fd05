"""RawReader: best-effort access to a foreign block that holds a bare array at offset 0."""

from __future__ import annotations

import math

import numpy as np

from viewer.errors import ProtocolError, StreamNotFoundError
from viewer.stream import protocol as P
from viewer.stream.blocks import ReadOnlyBlock
from viewer.stream.frames import GONE, LIVE, Closing, Frame, State, StreamInfo
from viewer.stream.views import ReaderMapping


class RawReader(Closing):
    """Reads a foreign block holding a bare array at offset 0 (no header, no stamps).

    Such a writer has no sequence counter, so a copy can be torn while it writes.
    The block must still be a regular file in /dev/shm owned by the current user.
    """

    def __init__(self, name: str, shape: tuple[int, ...], dtype: object, pixel_format: str | None = None) -> None:
        self.name = name
        self.layout = lay = P.make_layout(shape, dtype, pixel_format, 1)
        self._map = _map_bare(name, lay)
        self.info = StreamInfo(self._map.block.name, lay.shape, lay.dtype.name, lay.pixel_format, 0, None, None)

    def read(self, out: np.ndarray | None = None) -> Frame:
        image = np.empty(self.layout.shape, self.layout.dtype) if out is None else out
        np.copyto(image, self._map.held(self.name)[1])
        return Frame(image, None, None)

    @property
    def state(self) -> State:
        """``live`` while the block is there, ``gone`` once it was unlinked or replaced:
        a bare array says nothing of its writer or its frames."""
        return GONE if self.replaced() else LIVE

    def replaced(self) -> bool:
        """Whether the block was unlinked, or another block now has its name."""
        self._map.held(self.name)
        return self._map.block.unlinked()

    def reattach(self) -> bool:
        """Like FrameReader.reattach(): map the block now under the name, if it is another."""
        if self._map.closed or not self.replaced():
            return False
        try:
            mapping = _map_bare(self.name, self.layout)
        except StreamNotFoundError:
            return False
        old, self._map = self._map, mapping
        if old.closed:
            mapping.close()
        old.close()
        return True

    def close(self) -> None:
        self._map.close()


def _map_bare(name: str, lay: P.Layout) -> ReaderMapping[np.ndarray]:
    """Block ``name`` mapped, with ``lay``'s pixels at offset 0: ProtocolError if it is a
    shmview stream's block or too small for them."""
    block = ReadOnlyBlock(name)
    assert block.mm is not None
    if P.created_ns_of(block.mm[: P.STATE_OFFSET]) is not None:
        block.close()
        raise ProtocolError(
            f"block {name!r} is a shmview stream's block, not a bare array: view it with --block "
            "(FrameReader.from_block), not --raw-shape",
            name=name,
        )
    if lay.frame_bytes > block.size:
        block.close()
        raise ProtocolError(
            f"block {name!r} holds {block.size:,} bytes; shape {lay.shape} {lay.dtype.name} needs {lay.frame_bytes:,}",
            name=name,
        )
    pixels = np.frombuffer(block.mm, lay.dtype, math.prod(lay.shape)).reshape(lay.shape)  # pins block.mm
    return ReaderMapping(block, pixels, lay.frame_bytes)
