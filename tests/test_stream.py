"""FrameWriter / FrameReader in one process: round trips, validation, ownership."""

from __future__ import annotations

import os
import stat
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest

from viewer import (
    DtypeError,
    FormatError,
    FrameMismatchError,
    FrameReader,
    FrameWriter,
    InvalidNameError,
    ProtocolError,
    RawReader,
    StreamExistsError,
    StreamNotFoundError,
)
from viewer.stream.registry import registry_dir

SHAPES = [(480, 640, 3), (480, 640), (7, 13, 1), (1, 1), (33, 17, 4)]
DTYPES = ["uint8", "uint16", "float32"]


def _frame(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_round_trip(shape, dtype):
    with FrameWriter("rt", shape, dtype) as w, FrameReader("rt") as r:
        assert r.read() is None
        assert r.info.shape == shape and r.info.dtype == dtype
        for k in range(5):  # more frames than slots: the ring wraps
            sent = _frame(shape, dtype, k)
            assert w.write(sent, timestamp_ns=1000 + k) == k
            got = r.read()
            assert got.index == k and got.timestamp_ns == 1000 + k
            np.testing.assert_array_equal(got.image, sent)
            assert got.image.shape == shape and got.image.dtype == dtype


def test_reader_gets_a_private_copy_and_cannot_write_the_block():
    with FrameWriter("ro", (4, 4)) as w, FrameReader("ro") as r:
        w.write(np.full((4, 4), 9, np.uint8))
        frame = r.read()
        frame.image[:] = 0  # ours to change
        assert r.read().image.max() == 9
        with pytest.raises(TypeError):
            r._att.mapping.block.mm[0] = 1  # the mapping itself is read-only


@pytest.mark.parametrize(
    "bad", [np.zeros((480, 640), np.uint8), np.zeros((480, 640, 3), np.uint16), [[1, 2]], None]
)
def test_wrong_frame_is_refused_and_the_stream_goes_on(bad):
    with FrameWriter("bad") as w, FrameReader("bad") as r:
        with pytest.raises(FrameMismatchError, match="takes"):
            w.write(bad)
        w.write(np.ones((480, 640, 3), np.uint8))
        assert r.read().index == 0


@pytest.mark.parametrize("name", ["", "a/b", "../x", ".hidden", "x" * 65, "sp ace", "é"])
def test_invalid_names_are_refused(name):
    with pytest.raises(InvalidNameError, match="invalid stream name"):
        FrameWriter(name)


def test_bad_layouts_are_refused():
    with pytest.raises(DtypeError, match="int64") as exc:
        FrameWriter("x", (4, 4), "int64")
    assert isinstance(exc.value, TypeError)
    with pytest.raises(FormatError, match="pixel format"):
        FrameWriter("x", (4, 4, 3), pixel_format="GRAY")
    with pytest.raises(FormatError, match="slots"):
        FrameWriter("x", (4, 4), slots=0)


def test_pixel_format_defaults_follow_channels():
    for shape, fmt in [((2, 2), "GRAY"), ((2, 2, 3), "BGR"), ((2, 2, 4), "BGRA")]:
        with FrameWriter("fmt", shape) as w, FrameReader("fmt") as r:
            assert w.layout.pixel_format == fmt == r.info.pixel_format
    with FrameWriter("fmt", (2, 2, 3), pixel_format="RGB"), FrameReader("fmt") as r:
        assert r.info.pixel_format == "RGB"


def test_a_live_name_cannot_be_taken_twice_and_is_free_after_close():
    with FrameWriter("once", (2, 2)) as first:
        with pytest.raises(StreamExistsError, match=f"pid {os.getpid()}"):
            FrameWriter("once", (2, 2))
        first.write(np.ones((2, 2), np.uint8))
        with FrameReader("once") as r:
            assert r.read().image.sum() == 4  # the failed claim did no harm
    with FrameWriter("once", (2, 2)):
        pass


def test_a_block_name_is_opened_only_when_asked_for():
    with FrameWriter("byblock", (2, 2)) as w:
        with pytest.raises(StreamNotFoundError):
            FrameReader(w.block_name)  # a name means a stream in the user's registry, nothing else
        with FrameReader.from_block(w.block_name) as r:
            assert r.info.block == w.block_name


def test_close_unlinks_block_and_record_and_is_idempotent():
    w = FrameWriter("gone", (2, 2))
    block = w.block_name
    assert Path("/dev/shm", block).exists()
    w.close()
    w.close()
    assert not Path("/dev/shm", block).exists()
    assert not (registry_dir() / "gone.json").exists()
    with pytest.raises(StreamNotFoundError):
        FrameReader("gone")


def test_block_and_registry_are_private_to_the_user():
    with FrameWriter("private", (2, 2)) as w:
        assert stat.S_IMODE(os.stat(f"/dev/shm/{w.block_name}").st_mode) == 0o600
        assert stat.S_IMODE(registry_dir().stat().st_mode) == 0o700
        assert stat.S_IMODE((registry_dir() / "private.json").stat().st_mode) == 0o600


def test_unknown_stream_is_not_found():
    with pytest.raises(StreamNotFoundError, match="nosuch"):
        FrameReader("nosuch")


@pytest.fixture
def foreign_block():
    """A block made by someone else's program, unlinked afterwards."""
    shm = shared_memory.SharedMemory(create=True, size=4096)
    yield shm
    shm.close()
    shm.unlink()


def test_garbage_header_is_a_protocol_error(foreign_block):
    foreign_block.buf[:] = np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes()
    with pytest.raises(ProtocolError, match="no shmview header"):
        FrameReader.from_block(foreign_block.name)


def test_raw_reader_reads_a_bare_array_and_refuses_too_big_a_shape(foreign_block):
    bare = np.ndarray((32, 32, 4), np.uint8, buffer=foreign_block.buf)
    bare[:] = 3
    with RawReader(foreign_block.name, (32, 32, 4), "uint8") as r:
        frame = r.read()
        assert frame.index is None and frame.image.sum() == 3 * 32 * 32 * 4
    del bare
    with pytest.raises(ProtocolError, match="needs 12,288"):
        RawReader(foreign_block.name, (64, 64, 3), "uint8")


def _make_writer_in(result) -> None:
    from viewer import ShmviewError

    try:
        FrameWriter("daemonic", (2, 2)).close()
        result.put("made")
    except ShmviewError as exc:
        result.put(str(exc))


def test_a_writer_in_a_daemonic_process_is_a_clear_error():
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    result = ctx.Queue()
    proc = ctx.Process(target=_make_writer_in, args=(result,), daemon=True)
    proc.start()
    message = result.get(timeout=60)
    proc.join(30)
    assert "daemonic" in message and "daemon=False" in message
