"""Per-frame metadata (issue 13): stored under the frame's own sequence counter, so a
reader never sees one frame's pixels with another's metadata; protocol version 2, and
version-1 blocks still read."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.support import workers
from tests.support.helpers import cli, json_lines
from viewer import FrameReader, FrameWriter, MetadataError, ProtocolError
from viewer.stream import protocol as P

SHM = Path("/dev/shm")


def test_metadata_round_trips_with_its_frame():
    with FrameWriter("meta", (4, 4)) as w, FrameReader("meta") as r:
        w.write(np.ones((4, 4), np.uint8), meta={"boxes": [[1, 2, 3, 4]], "score": 0.5, "arr": np.arange(3)})
        frame = r.read()
        assert frame.meta == {"boxes": [[1, 2, 3, 4]], "score": 0.5, "arr": [0, 1, 2]}
        w.write(np.ones((4, 4), np.uint8))
        assert r.read().meta is None  # a frame without metadata has none, not the previous one's
        with r.view() as frame:
            assert frame.meta is None and frame.index == 1


@pytest.mark.parametrize("bad", [{"big": "x" * 5000}, {"obj": object()}, ["not", "a", "dict"]], ids=str)
def test_metadata_that_cannot_be_stored_publishes_nothing(bad):
    with FrameWriter("refused", (4, 4)) as w, FrameReader("refused") as r:
        w.write(np.ones((4, 4), np.uint8), meta={"k": 0})
        with pytest.raises(MetadataError):
            w.write(np.full((4, 4), 2, np.uint8), meta=bad)
        frame = r.read()
        assert (frame.index, frame.meta, w.frames_written) == (0, {"k": 0}, 1)


def test_a_loan_carries_metadata_set_inside_it():
    with FrameWriter("loanmeta", (4, 4)) as w, FrameReader("loanmeta") as r:
        loan = w.loan()
        with loan as pixels:
            pixels[:] = 3
            loan.meta = {"sum": int(pixels.sum())}  # computed from the pixels just drawn
        assert r.read().meta == {"sum": 48}
        with pytest.raises(MetadataError), w.loan(meta={"x": "y" * 5000}) as pixels:
            pixels[:] = 9
        assert r.read().index == 0 and w.frames_written == 1


def test_a_stream_without_room_for_metadata_says_so():
    with FrameWriter("nometa", (4, 4), meta_bytes=0) as w, pytest.raises(MetadataError, match="meta_bytes"):
        w.write(np.ones((4, 4), np.uint8), meta={"a": 1})


def test_pixels_and_metadata_are_always_of_one_frame_under_a_flooding_writer():
    with workers.flooding(workers.flood_meta, "floodmeta", (240, 320, 3)) as writer, FrameReader("floodmeta") as r:
        r.wait(30)
        frames = [r.read() for _ in range(1500)]
        views = [r.apply(lambda f: (f.index, int(f.image[0, 0, 0]), f.meta)) for _ in range(1500)]
    mixed = [
        f.index
        for f in frames
        if not (f.meta["k"] == f.index and f.image[0, 0, 0] == f.index % 256 and len(f.meta["pad"]) == f.index % 97)
    ]
    mixed += [k for k, px, meta in views if not (meta["k"] == k and px == k % 256)]
    assert mixed == [] and len({f.index for f in frames}) > 10
    assert writer.exitcode == 0


def _v1_block(name: str, value: int = 7) -> None:
    """A version-1 block, as shmview 0.1 wrote it: no metadata capacity, no meta_len."""
    lay = P.make_layout((4, 4), "uint8", None, 3)
    data = bytearray(lay.block_size)
    data[: P.STATE_OFFSET] = P.pack_header(lay, os.getpid(), 1)
    data[8:10] = struct.pack("<H", 1)
    data[P.STATE_OFFSET : P.STATE_OFFSET + 16] = struct.pack("<QQ", P.STATE_LIVE, 1)
    off = lay.slot_offset(0)
    data[off : off + 24] = struct.pack("<QQQ", 2, 0, 5)
    data[off + 64 : off + 64 + 16] = bytes([value]) * 16
    fd = os.open(SHM / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, bytes(data))
    os.close(fd)


def test_version_1_blocks_still_read_and_view():
    name = "psm_meta_v1"
    _v1_block(name)
    try:
        with FrameReader.from_block(name) as r:
            frame = r.read()
            assert (frame.index, frame.meta, int(frame.image.sum())) == (0, None, 7 * 16)
        done = cli("view", "--block", name, "--json", "--count", "1")
        assert done.returncode == 0, done.stderr
        assert json_lines(done.stdout)[0]["sum"] == 7 * 16
    finally:
        (SHM / name).unlink()


def test_a_version_this_viewer_does_not_know_is_a_clear_error():
    name = "psm_meta_v9"
    _v1_block(name)
    try:
        with open(SHM / name, "r+b") as f:
            f.seek(8)
            f.write(struct.pack("<H", 9))
        with pytest.raises(ProtocolError, match="version 9; this viewer reads versions 1, 2"):
            FrameReader.from_block(name)
    finally:
        (SHM / name).unlink()


@pytest.mark.parametrize("spoil", ["length", "json", "not-an-object"])
def test_hostile_metadata_is_a_protocol_error(spoil):
    with FrameWriter("spoilt", (4, 4), meta_bytes=64) as w, FrameReader("spoilt") as r:
        w.write(np.ones((4, 4), np.uint8), meta={"a": 1})
        lay = w.layout
        with open(SHM / w.block_name, "r+b") as f:
            if spoil == "length":
                f.seek(lay.slot_offset(0) + P.SLOT_META_LEN)
                f.write(struct.pack("<I", 65))
            else:
                f.seek(lay.meta_offset(0))
                f.write(b"{not json" if spoil == "json" else b"[1,2,3]\0")
                if spoil == "not-an-object":
                    f.seek(lay.slot_offset(0) + P.SLOT_META_LEN)
                    f.write(struct.pack("<I", 7))
        with pytest.raises(ProtocolError, match="metadata"):
            r.read()
