"""The byte layout of a shmview stream block. No I/O happens here.

docs/PROTOCOL.md is the full specification; this comment block is the summary
the code follows. All integers are little-endian. Offsets are in bytes.

Block header (HEADER_SIZE = 128 bytes, written once before ``state`` becomes LIVE):

    off  size  type  field
      0     8  8s    magic            b"SHMVIEW\\0"
      8     2  u16   version          2 (readers also read 1: no metadata)
     10     2  u16   ndim             2 (H, W) or 3 (H, W, C)
     12     4  u32   header_size      offset of slot 0; multiple of 64
     16     4  u32   height
     20     4  u32   width
     24     4  u32   channels         1 when ndim == 2
     28     4  u32   slot_count       1 .. MAX_SLOTS
     32     8  8s    dtype            numpy dtype.str, ASCII, NUL padded: "|u1" "<u2" "<f4" "<f8"
     40     8  8s    pixel_format     ASCII, NUL padded: GRAY BGR RGB BGRA RGBA
     48     8  u64   slot_stride      bytes from one slot to the next; multiple of 64
     56     8  u64   producer_pid     1 .. 2**31 - 1
     64     8  u64   created_ns       CLOCK_REALTIME (time.time_ns) when the block was made; < 2**63
     72     8  u64   state            0 initialising, 1 live, 2 closed       (mutable)
     80     8  u64   frames_written   frames published; newest index is this - 1   (mutable)
     88     4  u32   meta_bytes       version 2: each slot's metadata capacity, 0 .. 2**20
     92    36  -     reserved, zero

Slot i starts at header_size + i * slot_stride:

      0     8  u64   seq              odd while the slot is being written
      8     8  u64   index            frame index (0, 1, 2, ...)
     16     8  u64   timestamp_ns     CLOCK_REALTIME when the frame was taken or written
     24     4  u32   meta_len         version 2: bytes of metadata in this slot (0: none)
     28    36  -     reserved, zero
     64     *  pixels, C order, frame_bytes = height * width * channels * itemsize
     64 + round_up(frame_bytes, 64):  meta_bytes of metadata capacity (version 2):
            a JSON object, UTF-8, meta_len bytes of it used

frame_bytes is at most max_frame_bytes() (1 GiB unless $SHMVIEW_MAX_FRAME_BYTES says more).

Frame k goes to slot k % slot_count. The writer bumps seq to odd, copies the pixels and
the metadata, stores meta_len, index and timestamp, bumps seq to even, and only then
stores frames_written = k + 1. A reader takes frames_written, checks that slot
(n - 1) % slot_count holds frame n - 1 (seq even, index == n - 1) before copying it,
copies pixels and metadata, and keeps the copy only if seq and index did not move
meanwhile: pixels and metadata are always of one frame.
The argument relies on x86-64 (TSO) keeping stores in order and loads in order;
CPython issues no memory barriers, so weakly ordered CPUs (ARM64) are not covered.
"""

from __future__ import annotations

import math
import operator
import os
import struct
from dataclasses import dataclass

import numpy as np

from viewer.errors import DtypeError, FormatError, ProtocolError

MAGIC = b"SHMVIEW\0"
VERSION = 2  # what writers write
READABLE_VERSIONS = (1, 2)  # version 1: the same layout without metadata
HEADER_SIZE = 128
SLOT_HEADER_SIZE = 64
ALIGN = 64
MAX_SLOTS = 64
MAX_SIDE = 32768
MAX_CHANNELS = 4
MAX_PID = 2**31 - 1  # pid_t is a signed 32-bit int; Linux's pid_max is at most 2**22
MAX_NS = 2**63 - 1  # time_ns() fits a signed 64-bit int
DEFAULT_MAX_FRAME_BYTES = 2**30
MAX_FRAME_ENV = "SHMVIEW_MAX_FRAME_BYTES"
DEFAULT_META_BYTES = 4096
MAX_META_BYTES = 2**20

NO_FRAME = 2**64 - 1  # a slot index that no frame has: a discarded loan leaves it

STATE_INITIALISING = 0
STATE_LIVE = 1
STATE_CLOSED = 2

# Offsets of the mutable 64-bit words, for readers and writers that use word views.
STATE_OFFSET = 72
FRAMES_WRITTEN_OFFSET = 80
META_BYTES_OFFSET = 88  # u32, version 2
SLOT_SEQ, SLOT_INDEX, SLOT_TIMESTAMP, SLOT_META_LEN = 0, 8, 16, 24  # offsets inside a slot header

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
    meta_bytes: int = 0  # per-slot metadata capacity (version 2; 0: frames carry none)

    @property
    def channels(self) -> int:
        return self.shape[2] if len(self.shape) == 3 else 1

    @property
    def frame_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def block_size(self) -> int:
        return self.header_size + self.slot_count * self.slot_stride

    def slot_offset(self, slot: int) -> int:
        return self.header_size + slot * self.slot_stride

    def pixels_offset(self, slot: int) -> int:
        return self.slot_offset(slot) + SLOT_HEADER_SIZE

    def meta_offset(self, slot: int) -> int:
        """Where a slot's metadata starts: after its pixels, on the next 64-byte line."""
        return self.pixels_offset(slot) + _round_up(self.frame_bytes)


def max_frame_bytes() -> int:
    """The largest frame readers and writers accept: 1 GiB, or ``$SHMVIEW_MAX_FRAME_BYTES``.

    The cap bounds what a hostile or broken header can make a reader allocate and copy
    (a sparse block can claim a 32 GiB frame and cost nothing to its maker).
    """
    text = os.environ.get(MAX_FRAME_ENV, "")
    try:
        value = int(text) if text else DEFAULT_MAX_FRAME_BYTES
    except ValueError:
        value = 0
    if value < 1:
        raise FormatError(f"${MAX_FRAME_ENV} must be a positive number of bytes, got {text!r}")
    return value


def _dtype(dtype: object) -> np.dtype:
    try:
        dt = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES:
        name = dt.name if dt is not None else repr(dtype)
        raise DtypeError(f"dtype {name} is not supported; use one of {', '.join(DTYPES)}", dtype=name)
    return dt


def _check_shape(shape: tuple[int, ...]) -> int:
    """Return the channel count of a valid shape; FormatError naming the problem if not."""
    if len(shape) not in (2, 3):
        raise FormatError(f"shape must be (height, width) or (height, width, channels), got {shape}")
    h, w = shape[:2]
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise FormatError(f"height and width must be 1 to {MAX_SIDE}, got {w}x{h} (shape {shape})")
    channels = shape[2] if len(shape) == 3 else 1
    if channels not in _DEFAULT_FORMAT:
        raise FormatError(f"{channels} channels are not supported: use 1 (GRAY), 3 (BGR or RGB) or 4 (BGRA or RGBA)")
    return channels


def make_layout(
    shape: tuple[int, ...], dtype: object, pixel_format: str | None, slots: int, meta_bytes: int = 0
) -> Layout:
    """Check what a writer asks for and return its layout (a FormatError naming the problem)."""
    try:
        shape = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise FormatError(f"shape must be a tuple of integers, got {shape!r}") from None
    channels = _check_shape(shape)
    dt = _dtype(dtype)
    if pixel_format is None:
        pixel_format = _DEFAULT_FORMAT[channels]
    if PIXEL_FORMATS.get(pixel_format) != channels:
        fits = ", ".join(f for f, c in PIXEL_FORMATS.items() if c == channels)
        raise FormatError(f"pixel format {pixel_format!r} does not fit {channels} channel(s); use {fits}")
    if not 1 <= slots <= MAX_SLOTS:
        raise FormatError(f"slots must be between 1 and {MAX_SLOTS}, got {slots}")
    dt = dt.newbyteorder("<")  # the block is always little-endian; copyto converts
    frame_bytes = math.prod(shape) * dt.itemsize
    if frame_bytes > (cap := max_frame_bytes()):
        raise FormatError(
            f"a {shape[1]}x{shape[0]} {pixel_format} {dt.name} frame ({channels} channel{'s' * (channels > 1)}) is "
            f"{frame_bytes:,} bytes, over the "
            f"{cap:,}-byte limit (raise it with {MAX_FRAME_ENV})",
            frame_bytes=frame_bytes,
        )
    if not 0 <= meta_bytes <= MAX_META_BYTES:
        raise FormatError(f"meta_bytes must be between 0 and {MAX_META_BYTES:,}, got {meta_bytes}")
    stride = _round_up(SLOT_HEADER_SIZE + (_round_up(frame_bytes) + meta_bytes if meta_bytes else frame_bytes))
    return Layout(shape, dt, pixel_format, slots, HEADER_SIZE, stride, meta_bytes)


def pack_header(layout: Layout, pid: int, created_ns: int) -> bytes:
    """The first STATE_OFFSET bytes of a block (state and counters start at zero; the
    metadata capacity, if any, goes at META_BYTES_OFFSET: see pack_meta_bytes)."""
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


def pack_meta_bytes(layout: Layout) -> bytes:
    """The u32 at META_BYTES_OFFSET: each slot's metadata capacity."""
    return layout.meta_bytes.to_bytes(4, "little")


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
    (magic, version, ndim, header_size, h, w, c, slots, dt, fmt, stride, pid, created) = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise ProtocolError("block has no shmview header (wrong magic); is it a raw array?")
    if version not in READABLE_VERSIONS:
        raise ProtocolError(
            f"block uses protocol version {version}; this viewer reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))} (a newer shmview made it?)"
        )
    meta_bytes = _meta_bytes_in(data) if version >= 2 else 0
    try:
        dtype_name = _DTYPE_CODES[dt.rstrip(b"\0").decode("ascii")]
        pixel_format = fmt.rstrip(b"\0").decode("ascii")
        shape = (h, w) if ndim == 2 else (h, w, c)
        if ndim not in (2, 3) or (ndim == 2 and c != 1) or c > MAX_CHANNELS:
            raise ValueError(f"bad dimensions ndim={ndim} channels={c}")
        layout = make_layout(shape, dtype_name, pixel_format, slots, meta_bytes)
    except FormatError as exc:
        if "frame_bytes" in exc.details:  # a real header, just bigger than this reader takes
            raise ProtocolError(str(exc), **exc.details) from None
        raise ProtocolError(f"corrupt stream header: {exc}") from None
    except KeyError:
        raise ProtocolError(f"corrupt stream header: dtype {dt!r} is not supported") from None
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"corrupt stream header: {exc}") from None
    if header_size < HEADER_SIZE or header_size % ALIGN:
        raise ProtocolError(f"corrupt stream header: header_size {header_size}")
    if stride < layout.slot_stride or stride % ALIGN:
        raise ProtocolError(f"corrupt stream header: slot stride {stride}")
    if not 0 < pid <= MAX_PID:
        raise ProtocolError(f"corrupt stream header: producer pid {pid}")
    if created > MAX_NS:
        raise ProtocolError(f"corrupt stream header: created_ns {created}")
    layout = Layout(layout.shape, layout.dtype, layout.pixel_format, slots, header_size, stride, meta_bytes)
    if layout.block_size > block_size:
        raise ProtocolError(f"header describes {layout.block_size} bytes but the block has {block_size}")
    return Header(layout, pid, created)


def _meta_bytes_in(data: bytes) -> int:
    """A version-2 header's metadata capacity; 0 if ``data`` stops before it."""
    end = META_BYTES_OFFSET + 4
    return int.from_bytes(data[META_BYTES_OFFSET:end], "little") if len(data) >= end else 0


def producer_pid_of(data: bytes) -> int | None:
    """The producer pid a shmview header names, or None if ``data`` is not one."""
    if len(data) < _FIXED.size or data[:8] != MAGIC:
        return None
    return int.from_bytes(data[56:64], "little")


def created_ns_of(data: bytes) -> int | None:
    """The creation stamp of a shmview block from its first STATE_OFFSET bytes, or None
    if they are not a shmview header: how a block is told apart from a later one of the
    same name."""
    if len(data) < _FIXED.size or data[:8] != MAGIC:
        return None
    return int.from_bytes(data[64:72], "little")
