"""FrameWriter in one process: round trips, what it refuses, and what it leaves behind when it
closes or its process ends."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.blocks import SHM
from viewer import (
    DtypeError,
    FormatError,
    FrameMismatchError,
    FrameReader,
    FrameWriter,
    InvalidNameError,
    ShmviewError,
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


@pytest.mark.parametrize("bad", [np.zeros((480, 640), np.uint8), np.zeros((480, 640, 3), np.uint16), [[1, 2]], None])
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


def test_second_producer_never_damages_the_first():
    with FrameWriter("mine", (4, 4)) as w:
        w.write(np.full((4, 4), 3, np.uint8))
        for _ in range(3):
            with pytest.raises(StreamExistsError):
                FrameWriter("mine", (8, 8))
        with FrameReader("mine") as r:
            assert r.read().image.sum() == 3 * 16 and r.info.shape == (4, 4)


def test_no_room_in_dev_shm_is_one_clear_error_and_nothing_half_made():
    vfs = os.statvfs("/dev/shm")
    total = vfs.f_blocks * vfs.f_frsize
    shape = (16384, 16384, 4)  # 1 GiB a frame: the default frame-size limit
    if np.prod(shape) * 64 <= total:
        pytest.skip("/dev/shm is larger than 64 of the largest frames")
    with pytest.raises(ShmviewError, match="cannot allocate"):
        FrameWriter("huge", shape, "uint8", slots=64)
    assert not (registry_dir() / "huge.json").exists()
    with FrameWriter("huge", (2, 2)):  # the name is free again
        pass


def test_a_big_endian_frame_is_written_as_the_stream_stores_it():
    with FrameWriter("endian", (2, 2), ">u2") as w, FrameReader("endian") as r:
        w.write(np.full((2, 2), 258, ">u2"))
        assert int(r.read().image.sum()) == 4 * 258


@pytest.mark.parametrize("stamp", [-1, 2**64, 1.5, "now"])
def test_a_timestamp_out_of_range_is_refused_and_nothing_published(stamp):
    with FrameWriter("stamps", (2, 2)) as w:
        with pytest.raises(FormatError, match="timestamp_ns"):
            w.write(np.zeros((2, 2), np.uint8), timestamp_ns=stamp)
        with pytest.raises(FormatError, match="timestamp_ns"), w.loan(timestamp_ns=stamp):
            pass
        assert w.frames_written == 0


LEFT_OPEN = """
import numpy as np
from viewer import FrameWriter
w = FrameWriter("leftopen", (4, 4))
w.write(np.ones((4, 4), np.uint8))
print(w.block_name, flush=True)
"""


def test_a_writer_left_open_at_exit_removes_its_record_and_block():
    done = subprocess.run([sys.executable, "-c", LEFT_OPEN], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert not (SHM / done.stdout.strip()).exists()
    assert not (registry_dir() / "leftopen.json").exists()


def test_a_writer_dropped_without_close_gives_its_name_back():
    def start() -> None:
        FrameWriter("dropped", (4, 4))  # never closed

    start()
    gc.collect()
    with FrameWriter("dropped", (4, 4)) as again:
        assert again.name == "dropped"
