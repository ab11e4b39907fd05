"""The block's byte layout as a reader meets it (docs/PROTOCOL.md): every header field is
validated, and property tests: whatever bytes a block holds, a reader raises its own typed error
or reads within bounds. It never crashes, hangs, or allocates more than the block's size.

Blocks are opened by stream name, through a registry record the test publishes
(tests/support/helpers.py:registered), as a viewer would open a producer's block.
"""

from __future__ import annotations

import os
import struct
import tracemalloc
from collections import Counter
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support.helpers import registered
from viewer import BusyError, FrameReader, ProtocolError
from viewer.stream import protocol as P

GOOD = P.make_layout((6, 5, 3), "uint8", None, 3)
FIELDS = struct.Struct("<8sHHIIIII8s8sQQQ")  # the fixed header, as in docs/PROTOCOL.md
ORDER = ("magic", "version", "ndim", "header_size", "h", "w", "c", "slots", "dtype", "fmt", "stride", "pid", "created")
PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
U64 = st.integers(0, 2**64 - 1)
reached: Counter[str] = Counter()  # how far examples got: checked by the tests that run them


@contextmanager
def stream(content: bytes, size: int):
    """A block of ``size`` bytes starting with ``content``, published as stream "hostile"."""
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(create=True, size=max(size, 1))
    created = int.from_bytes(content[64:72], "little") if len(content) >= 72 else 0
    created = created if created < 2**63 else 0  # what a record can hold; the header still says more
    try:
        shm.buf[: min(len(content), shm.size)] = content[: shm.size]
        with registered("hostile", shm.name, created_ns=created):  # as its header says
            yield "hostile"
    finally:
        shm.close()
        shm.unlink()


def read_safely(name: str, size: int) -> None:
    """Attach and read; only our typed errors may come out, and nothing out of bounds."""
    reached["examples"] += 1
    try:
        reader = FrameReader(name)
    except ProtocolError:
        event("refused at attach")
        return
    with reader:
        assert reader.layout.block_size <= max(size, 1)
        reached["read"] += 1
        event("attached and read")
        try:
            frame = reader.read()
        except (BusyError, ProtocolError):
            return
        if frame is not None:
            assert frame.image.nbytes == reader.layout.frame_bytes <= size


def run_counted(test) -> Counter[str]:
    """Run a hypothesis test (all its examples) and return how far they got."""
    reached.clear()
    test()
    return Counter(reached)


# --- anything at all ------------------------------------------------------------------


@PROFILE
@given(st.binary(min_size=0, max_size=512), st.integers(0, 4096))
def test_random_bytes(content, size):
    with stream(content, size) as name:
        read_safely(name, size)


# --- valid headers, hostile slots: these must get to read() ---------------------------

layouts = st.builds(
    lambda hw, c, dtype, slots: P.make_layout(hw if c is None else (*hw, c), dtype, None, slots),
    st.tuples(st.integers(1, 12), st.integers(1, 12)),
    st.sampled_from([None, 1, 3, 4]),
    st.sampled_from(P.DTYPES),
    st.integers(1, 6),
)


# Counters near what a writer would leave (so some reads succeed) or anything at all.
counters = st.integers(0, 8) | U64


slot_words = st.tuples(counters, counters, U64)  # seq, index, timestamp_ns


def _as_written(frames_written: int, slot: int, slots: int) -> tuple[int, int, int]:
    """seq, index, timestamp of ``slot`` after a writer published ``frames_written`` frames."""
    last = frames_written - 1 - (frames_written - 1 - slot) % slots  # newest k with k % slots == slot
    if last < 0:
        return 0, 0, 0
    return (2 * (last // slots) + 2) % 2**64, last, 1


@st.composite
def hostile_streams(draw, layouts=layouts):
    """(block content, block size, frames_written) of a valid header over hostile slots."""
    lay = draw(layouts)
    content = bytearray(lay.block_size)
    content[: P.STATE_OFFSET] = P.pack_header(lay, os.getpid(), 1)
    frames_written = draw(counters)
    content[P.STATE_OFFSET : P.STATE_OFFSET + 16] = struct.pack("<QQ", P.STATE_LIVE, frames_written)
    for s in range(lay.slot_count):
        off = lay.slot_offset(s)
        honest = draw(st.booleans())  # as a writer left it, else anything
        words = _as_written(frames_written, s, lay.slot_count) if honest else draw(slot_words)
        content[off : off + 24] = struct.pack("<QQQ", *words)
        pixels = draw(st.binary(min_size=0, max_size=lay.frame_bytes))
        content[lay.pixels_offset(s) : lay.pixels_offset(s) + len(pixels)] = pixels
    return bytes(content), lay.block_size + draw(st.sampled_from([0, 1, 64, 4096])), frames_written


@PROFILE
@given(hostile_streams())
def _valid_header_hostile_slots(drawn):
    content, size, frames_written = drawn
    with stream(content, size) as name:
        read_safely(name, size)
        with FrameReader(name) as reader:
            check_frame(reader, content, frames_written)


def check_frame(reader: FrameReader, content: bytes, frames_written: int) -> None:
    """A frame, if any, is exactly the newest published slot's bytes, and says so."""
    lay = reader.layout
    try:
        frame = reader.read()
    except (BusyError, ProtocolError):
        event("no consistent frame")
        return
    event("no frame yet" if frame is None else "a frame")
    if frame is None:
        return
    reached["frames"] += 1
    slot = (frames_written - 1) % lay.slot_count
    start = lay.pixels_offset(slot)
    assert frame.index == frames_written - 1
    assert frame.image.shape == lay.shape and frame.image.dtype == lay.dtype
    assert frame.image.tobytes() == content[start : start + lay.frame_bytes]


def test_valid_headers_with_hostile_slots_reach_the_read_path():
    counts = run_counted(_valid_header_hostile_slots)
    assert counts["examples"] >= 50 and counts["read"] >= 0.5 * counts["examples"], counts
    assert counts["frames"] > 0, counts  # and some reads return a frame, checked byte for byte


# --- one or two header fields spoilt: each check in parse_header gets hit -----------

spoilers = {
    "magic": st.sampled_from([b"SHMVIEW\x01", b"\0" * 8, b"shmview\0"]),
    "version": st.sampled_from([0, 2, 65535]),
    "ndim": st.integers(0, 5),
    "header_size": st.sampled_from([0, 64, 129, 192, 2**32 - 64]),
    "h": st.integers(0, 2**32 - 1) | st.integers(0, 16),
    "w": st.integers(0, 2**32 - 1) | st.integers(0, 16),
    "c": st.integers(0, 9),
    "slots": st.integers(0, 2**32 - 1) | st.integers(0, 8),
    "dtype": st.sampled_from([b">u2", b"|O", b"<i8", b"\xff\xfe", b"", b"<f8"]),
    "fmt": st.sampled_from([b"XYZ", b"\x80", b"", b"RGB", b"GRAY"]),
    "stride": U64 | st.sampled_from([0, 64, 128, 192, 4096]),
    "pid": U64,
    "created": U64,
}


@st.composite
def spoilt_headers(draw):
    content, size, _ = draw(hostile_streams())
    fields = dict(zip(ORDER, FIELDS.unpack_from(content), strict=True))
    for key in draw(st.lists(st.sampled_from(sorted(spoilers)), min_size=1, max_size=2, unique=True)):
        fields[key] = draw(spoilers[key])
        event(f"spoilt {key}")
    head = FIELDS.pack(*(fields[k] for k in ORDER))
    return head + content[len(head) :], draw(st.sampled_from([size, size // 2, P.HEADER_SIZE, 2 * size]))


@PROFILE
@given(spoilt_headers())
def _hostile_header_fields(drawn):
    content, size = drawn
    with stream(content, size) as name:
        read_safely(name, size)


def test_spoilt_header_fields_are_refused_or_read_within_bounds():
    counts = run_counted(_hostile_header_fields)
    assert counts["examples"] >= 50, counts  # some spoilers are harmless (pid, created): both paths run
    assert 0 < counts["read"] < counts["examples"], counts


# --- sizes ----------------------------------------------------------------------------


@PROFILE
@given(st.integers(0, GOOD.block_size - 1))
def test_truncated_blocks_are_refused(size):
    with stream(P.pack_header(GOOD, os.getpid(), 1), size) as name:
        try:
            FrameReader(name).close()
        except ProtocolError:
            return
        raise AssertionError(f"a {size}-byte block was accepted for a {GOOD.block_size}-byte layout")


def test_a_shape_bigger_than_the_block_is_refused():
    big = P.make_layout((4000, 4000, 3), "uint8", None, 3)
    with (
        stream(P.pack_header(big, os.getpid(), 1), GOOD.block_size) as name,
        pytest.raises(ProtocolError, match="describes"),
    ):
        FrameReader(name)


def test_nothing_read_is_unpickled_or_evaluated():
    from pathlib import Path

    import viewer

    modules = (viewer.stream, viewer.stream.registry, viewer.stream.protocol, viewer.stream.blocks)
    source = "".join(Path(m.__file__).read_text() for m in modules)
    assert "pickle" not in source and "eval(" not in source and "exec(" not in source


def lying_header(shape: tuple[int, int, int], slots: int = 64) -> bytes:
    """A float64 header claiming ``shape`` (packed by hand: make_layout may refuse big frames)."""
    h, w, c = shape
    stride = -(-(P.SLOT_HEADER_SIZE + h * w * c * 8) // P.ALIGN) * P.ALIGN
    fmt = {1: b"GRAY", 3: b"BGR", 4: b"BGRA"}[c]
    return FIELDS.pack(P.MAGIC, P.VERSION, 3, P.HEADER_SIZE, h, w, c, slots, b"<f8", fmt, stride, os.getpid(), 1)


@pytest.mark.parametrize("shape", [(32768, 32768, 4), (2000, 2000, 4), (512, 512, 3)])
def test_attaching_to_a_lying_header_allocates_nothing_like_its_claim(shape):
    """A 4 KiB block whose header claims a big frame is refused before any buffer of that
    size exists: the peak of traced allocations (numpy's included) stays far below it."""
    claim = int(np.prod(shape)) * 8
    with stream(lying_header(shape), 4096) as name:
        tracemalloc.start()
        try:
            np.empty(2**20, np.uint8)  # the measure works: numpy's buffers are traced
            assert tracemalloc.get_traced_memory()[1] >= 2**20
            tracemalloc.reset_peak()
            with pytest.raises(ProtocolError):
                P.parse_header(lying_header(shape), 4096)
            with pytest.raises(ProtocolError):
                FrameReader(name)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 256 * 1024 < claim, f"peak {peak:,} bytes while refusing a {claim:,}-byte frame"


@PROFILE
@given(U64, st.lists(U64, min_size=9, max_size=9))
def test_valid_header_with_hostile_counters(frames_written, slot_words):
    content = bytearray(GOOD.block_size)
    content[: P.STATE_OFFSET] = P.pack_header(GOOD, os.getpid(), 1)
    content[P.STATE_OFFSET : P.STATE_OFFSET + 16] = struct.pack("<QQ", 1, frames_written)
    for s in range(GOOD.slot_count):  # seq, index, timestamp of every slot
        off = GOOD.slot_offset(s)
        content[off : off + 24] = struct.pack("<QQQ", *slot_words[3 * s : 3 * s + 3])
    with stream(bytes(content), GOOD.block_size) as name, FrameReader(name) as reader:
        check_frame(reader, bytes(content), frames_written)


def test_header_is_validated_field_by_field():
    lay = P.make_layout((4, 4, 3), "uint8", None, 3)
    good = P.pack_header(lay, 1, 2)
    assert P.parse_header(good, lay.block_size).layout == lay
    with pytest.raises(P.ProtocolError, match="describes"):
        P.parse_header(good, lay.block_size - 1)
