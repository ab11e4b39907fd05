"""Property tests: whatever bytes a block holds, a reader raises its own typed error or
reads within bounds. It never crashes, hangs, or allocates more than the block's size."""

from __future__ import annotations

import struct
from contextlib import contextmanager
from multiprocessing import shared_memory

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from viewer import BusyError, FrameReader, ProtocolError
from viewer import protocol as P

GOOD = P.make_layout((6, 5, 3), "uint8", None, 3)
FIELDS = struct.Struct("<8sHHIIIII8s8sQQQ")  # the fixed header, as in docs/PROTOCOL.md
PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def block(content: bytes, size: int):
    shm = shared_memory.SharedMemory(create=True, size=max(size, 1))
    try:
        shm.buf[: min(len(content), shm.size)] = content[: shm.size]
        yield shm.name
    finally:
        shm.close()
        shm.unlink()


def read_safely(name: str, size: int) -> None:
    """Attach and read; only our typed errors may come out, and nothing out of bounds."""
    try:
        reader = FrameReader.from_block(name)
    except ProtocolError:
        return
    with reader:
        assert reader.layout.block_size <= max(size, 1)
        try:
            frame = reader.read()
        except BusyError:
            return
        if frame is not None:
            assert frame.image.nbytes == reader.layout.frame_bytes <= size


@PROFILE
@given(st.binary(min_size=0, max_size=512), st.integers(0, 4096))
def test_random_bytes(content, size):
    with block(content, size) as name:
        read_safely(name, size)


valid_fields = st.fixed_dictionaries(
    {
        "magic": st.sampled_from([P.MAGIC, b"SHMVIEW\x01", b"\0" * 8]),
        "version": st.sampled_from([1, 0, 2, 65535]),
        "ndim": st.integers(0, 5),
        "header_size": st.sampled_from([128, 0, 64, 129, 192, 2**32 - 64]),
        "h": st.integers(0, 2**32 - 1) | st.integers(1, 8),
        "w": st.integers(0, 2**32 - 1) | st.integers(1, 8),
        "c": st.integers(0, 9),
        "slots": st.integers(0, 2**32 - 1) | st.integers(1, 4),
        "dtype": st.sampled_from([b"|u1", b"<u2", b"<f4", b">u2", b"|O", b"<i8", b"\xff\xfe"]),
        "fmt": st.sampled_from([b"BGR", b"GRAY", b"RGBA", b"XYZ", b"\x80"]),
        "stride": st.integers(0, 2**64 - 1) | st.sampled_from([GOOD.slot_stride, 128, 192]),
        "pid": st.integers(0, 2**64 - 1),
        "created": st.integers(0, 2**64 - 1),
    }
)


@PROFILE
@given(valid_fields, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2 * GOOD.block_size))
def test_plausible_headers_with_hostile_values(f, frames_written, seq, size):
    order = ("magic", "version", "ndim", "header_size", "h", "w", "c", "slots", "dtype", "fmt", "stride", "pid")
    head = FIELDS.pack(*(f[k] for k in (*order, "created")))
    words = struct.pack("<QQ", 1, frames_written)
    content = bytearray(head + words + bytes(GOOD.block_size))
    content[GOOD.header_size : GOOD.header_size + 8] = struct.pack("<Q", seq)
    with block(bytes(content), size) as name:
        read_safely(name, size)


@PROFILE
@given(st.integers(0, GOOD.block_size - 1))
def test_truncated_blocks_are_refused(size):
    with block(P.pack_header(GOOD, 1, 1), size) as name:
        try:
            FrameReader.from_block(name).close()
        except ProtocolError:
            return
        raise AssertionError(f"a {size}-byte block was accepted for a {GOOD.block_size}-byte layout")


def test_a_shape_bigger_than_the_block_is_refused():
    big = P.make_layout((4000, 4000, 3), "uint8", None, 3)
    with block(P.pack_header(big, 1, 1), GOOD.block_size) as name:
        try:
            FrameReader.from_block(name)
        except ProtocolError as exc:
            assert "describes" in str(exc)
        else:
            raise AssertionError("accepted")


def test_nothing_read_is_unpickled_or_evaluated():
    from pathlib import Path

    import viewer

    modules = (viewer.stream, viewer.registry, viewer.protocol, viewer.shm)
    source = "".join(Path(m.__file__).read_text() for m in modules)
    assert "pickle" not in source and "eval(" not in source and "exec(" not in source


def test_parse_never_allocates_from_the_header(monkeypatch):
    # A header claiming a 32768 x 32768 x 4 float64 frame on a 4 KiB block is refused before
    # any buffer of that size exists.
    monkeypatch.setenv(P.MAX_FRAME_ENV, str(2**40))
    huge = P.make_layout((32768, 32768, 4), "float64", None, 64)
    try:
        P.parse_header(P.pack_header(huge, 1, 1), 4096)
    except ProtocolError:
        pass
    else:
        raise AssertionError("accepted")
    assert np.prod(huge.shape) * 8 > 4096


@PROFILE
@given(st.integers(0, 2**64 - 1), st.lists(st.integers(0, 2**64 - 1), min_size=9, max_size=9))
def test_valid_header_with_hostile_counters(frames_written, slot_words):
    content = bytearray(GOOD.block_size)
    content[: P.STATE_OFFSET] = P.pack_header(GOOD, 1, 1)
    content[P.STATE_OFFSET : P.STATE_OFFSET + 16] = struct.pack("<QQ", 1, frames_written)
    for s in range(GOOD.slot_count):  # seq, index, timestamp of every slot
        off = GOOD.slot_offset(s)
        content[off : off + 24] = struct.pack("<QQQ", *slot_words[3 * s : 3 * s + 3])
    with block(bytes(content), GOOD.block_size) as name, FrameReader.from_block(name) as reader:
        try:
            frame = reader.read()
        except BusyError:
            return
        assert frame is None or (frame.index == frames_written - 1 and frame.image.shape == GOOD.shape)
