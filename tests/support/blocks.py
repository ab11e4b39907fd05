"""Blocks made by hand in /dev/shm, as a stranger, a crashed writer or a hostile neighbour leaves them."""

from __future__ import annotations

import os
import struct
import time
from multiprocessing import shared_memory
from pathlib import Path

from viewer.stream import protocol as P

SHM = Path("/dev/shm")


def headered_block(shape=(4, 4, 3), value=7, *, pid=None, created_ns=None, frames=1) -> bytes:
    """The bytes of a complete, valid shmview block holding ``frames`` frames of ``value``."""
    lay = P.make_layout(shape, "uint8", None, 3)
    data = bytearray(lay.block_size)
    data[: P.STATE_OFFSET] = P.pack_header(lay, pid or os.getpid(), created_ns or time.time_ns())
    data[P.STATE_OFFSET : P.STATE_OFFSET + 16] = struct.pack("<QQ", P.STATE_LIVE, frames)
    for k in range(frames):
        off = lay.slot_offset(k % 3)
        data[off : off + 24] = struct.pack("<QQQ", 2 * (k // 3) + 2, k, time.time_ns())
        data[off + P.SLOT_HEADER_SIZE : off + P.SLOT_HEADER_SIZE + lay.frame_bytes] = bytes([value]) * lay.frame_bytes
    return bytes(data)


def plant_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.write(fd, data)
    os.close(fd)


def writable(block: str) -> shared_memory.SharedMemory:
    """A second, writable mapping of a block this process owns (to play a crashed writer)."""
    return shared_memory.SharedMemory(block)
