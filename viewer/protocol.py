"""The byte layout of a shmview stream block. No I/O happens here.

docs/PROTOCOL.md is the full specification; this comment block is the summary
the code follows. All integers are little-endian. Offsets are in bytes.

Block header (HEADER_SIZE = 128 bytes, written once before ``state`` becomes LIVE):

    off  size  type  field
      0     8  8s    magic            b"SHMVIEW\\0"
      8     2  u16   version          1
     10     2  u16   ndim             2 (H, W) or 3 (H, W, C)
     12     4  u32   header_size      offset of slot 0; multiple of 64
     16     4  u32   height
     20     4  u32   width
     24     4  u32   channels         1 when ndim == 2
     28     4  u32   slot_count       1 .. MAX_SLOTS
     32     8  8s    dtype            numpy dtype.str, ASCII, NUL padded: "|u1" "<u2" "<f4" "<f8"
     40     8  8s    pixel_format     ASCII, NUL padded: GRAY BGR RGB BGRA RGBA
     48     8  u64   slot_stride      bytes from one slot to the next; multiple of 64
     56     8  u64   producer_pid
     64     8  u64   created_ns       CLOCK_REALTIME (time.time_ns) when the block was made
     72     8  u64   state            0 initialising, 1 live, 2 closed       (mutable)
     80     8  u64   frames_written   frames published; newest index is this - 1   (mutable)
     88    40  -     reserved, zero

Slot i starts at header_size + i * slot_stride:

      0     8  u64   seq              odd while the slot is being written
      8     8  u64   index            frame index (0, 1, 2, ...)
     16     8  u64   timestamp_ns     CLOCK_REALTIME when the frame was taken or written
     24    40  -     reserved, zero
     64     *  pixels, C order, frame_bytes = height * width * channels * itemsize

Frame k goes to slot k % slot_count. The writer bumps seq to odd, copies the pixels,
stores index and timestamp, bumps seq to even, and only then stores frames_written =
k + 1. A reader takes frames_written, copies slot (n - 1) % slot_count between two
loads of seq and keeps the copy only if both loads are equal, even, and index == n - 1.
The argument relies on x86-64 (TSO) keeping stores in order and loads in order;
CPython issues no memory barriers, so weakly ordered CPUs (ARM64) are not covered.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from viewer.errors import ProtocolError

MAGIC = b"SHMVIEW\0"
VERSION = 1
HEADER_SIZE = 128
SLOT_HEADER_SIZE = 64
ALIGN = 64
MAX_SLOTS = 64
MAX_SIDE = 32768
MAX_CHANNELS = 4

STATE_INITIALISING = 0
STATE_LIVE = 1
STATE_CLOSED = 2

# Offsets of the mutable 64-bit words, for readers and writers that use word views.
STATE_OFFSET = 72
FRAMES_WRITTEN_OFFSET = 80
SLOT_SEQ, SLOT_INDEX, SLOT_TIMESTAMP = 0, 8, 16  # offsets inside a slot header

_FIXED = struct.Struct("<8sHHIIIII8s8sQQQ")  # bytes 0..72: written once at creation
assert _FIXED.size == STATE_OFFSET

DTYPES = ("uint8", "uint16", "float32", "float64")
_DTYPE_CODES = {np.dtype(d).newbyteorder("<").str: d for d in DTYPES}  # "|u1", "<u2", ...
PIXEL_FORMATS = {"GRAY": 1, "BGR": 3, "RGB": 3, "BGRA": 4, "RGBA": 4}
_DEFAULT_FORMAT = {1: "GRAY", 3: "BGR", 4: "BGRA"}


def _round_up(n: int, to: int = ALIGN) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class Layout:
    """Where everything is in a block, derived from what a stream carries."""

    shape: tuple[int, ...]
    dtype: np.dtype
    pixel_format: str
    slot_count: int
    header_size: int
    slot_stride: int

    @property
    def channels(self) -> int:
        return self.shape[2] if len(self.shape) == 3 else 1

    @property
    def frame_bytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def block_size(self) -> int:
        return self.header_size + self.slot_count * self.slot_stride

    def slot_offset(self, slot: int) -> int:
        return self.header_size + slot * self.slot_stride

    def pixels_offset(self, slot: int) -> int:
        return self.slot_offset(slot) + SLOT_HEADER_SIZE


def make_layout(
    shape: tuple[int, ...], dtype: object, pixel_format: str | None, slots: int
) -> Layout:
    """Check what a writer asks for and return its layout (ValueError/TypeError if bad)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or not all(1 <= s <= MAX_SIDE for s in shape[:2]):
        raise ValueError(f"shape must be (height, width) or (height, width, channels), got {shape}")
    dt = np.dtype(dtype)
    if dt.name not in DTYPES:
        raise TypeError(f"dtype {dt.name} is not supported; use one of {', '.join(DTYPES)}")
    channels = shape[2] if len(shape) == 3 else 1
    if pixel_format is None:
        pixel_format = _DEFAULT_FORMAT.get(channels, "")
    if PIXEL_FORMATS.get(pixel_format) != channels:
        raise ValueError(
            f"pixel format {pixel_format or '(none)'} does not fit {channels} channel(s); "
            f"use one of {', '.join(f for f, c in PIXEL_FORMATS.items() if c == channels) or 'GRAY'}"
        )
    if not 1 <= slots <= MAX_SLOTS:
        raise ValueError(f"slots must be between 1 and {MAX_SLOTS}, got {slots}")
    dt = dt.newbyteorder("<")  # the block is always little-endian; copyto converts
    stride = _round_up(SLOT_HEADER_SIZE + int(np.prod(shape)) * dt.itemsize)
    return Layout(shape, dt, pixel_format, slots, HEADER_SIZE, stride)


def pack_header(layout: Layout, pid: int, created_ns: int) -> bytes:
    """The first STATE_OFFSET bytes of a block (state and counters start at zero)."""
    h, w = layout.shape[:2]
    return _FIXED.pack(
        MAGIC,
        VERSION,
        len(layout.shape),
        layout.header_size,
        h,
        w,
        layout.channels,
        layout.slot_count,
        layout.dtype.str.encode("ascii"),
        layout.pixel_format.encode("ascii"),
        layout.slot_stride,
        pid,
        created_ns,
    )


@dataclass(frozen=True)
class Header:
    layout: Layout
    producer_pid: int
    created_ns: int


def parse_header(data: bytes, block_size: int) -> Header:
    """Validate the fixed header of a block of ``block_size`` bytes; ProtocolError if unusable.

    Nothing here trusts the block: every field is range-checked, and the layout it
    describes must fit inside the block, so readers never index outside their mapping.
    """
    if block_size < HEADER_SIZE or len(data) < _FIXED.size:
        raise ProtocolError(f"block of {block_size} bytes is too small for a shmview header")
    (magic, version, ndim, header_size, h, w, c, slots, dt, fmt, stride, pid, created) = (
        _FIXED.unpack_from(data)
    )
    if magic != MAGIC:
        raise ProtocolError("block has no shmview header (wrong magic); is it a raw array?")
    if version != VERSION:
        raise ProtocolError(f"block uses protocol version {version}; this viewer reads {VERSION}")
    try:
        dtype_name = _DTYPE_CODES[dt.rstrip(b"\0").decode("ascii")]
        pixel_format = fmt.rstrip(b"\0").decode("ascii")
        shape = (h, w) if ndim == 2 else (h, w, c)
        if ndim not in (2, 3) or (ndim == 2 and c != 1) or c > MAX_CHANNELS:
            raise ValueError(f"bad dimensions ndim={ndim} channels={c}")
        layout = make_layout(shape, dtype_name, pixel_format, slots)
    except KeyError:
        raise ProtocolError(f"corrupt stream header: dtype {dt!r} is not supported") from None
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"corrupt stream header: {exc}") from None
    if header_size < HEADER_SIZE or header_size % ALIGN:
        raise ProtocolError(f"corrupt stream header: header_size {header_size}")
    if stride < layout.slot_stride or stride % ALIGN:
        raise ProtocolError(f"corrupt stream header: slot stride {stride}")
    layout = Layout(layout.shape, layout.dtype, layout.pixel_format, slots, header_size, stride)
    if layout.block_size > block_size:
        raise ProtocolError(
            f"header describes {layout.block_size} bytes but the block has {block_size}"
        )
    return Header(layout, pid, created)
