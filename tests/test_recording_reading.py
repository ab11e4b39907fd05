"""Recordings that are not what they claim (issue 18, item 6): `shmview info` and `produce
replay` of truncated, corrupt and hostile MCAP files answer with one line and exit 1 (a file
cut short is read up to where it stops), within bounded memory, never a traceback.

A fuzz (hypothesis) mutates a valid recording, both as raw bytes and record by record (the
file taken apart and put back together with right lengths and CRCs, so mutations reach the
stream descriptions, frame records and images), and runs info's and replay's reading in
process. Hand-made hostile files go through the real command line.
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import lz4.frame
import numpy as np
import orjson
import pytest
import zstandard
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support.helpers import CLI, cli
from viewer.errors import RecordingError
from viewer.recording import messages as M
from viewer.recording.info import report
from viewer.recording.reading import Recording, open_recording
from viewer.recording.walk import MAGIC, cap_bytes
from viewer.stream.frames import Frame

Parts = list[tuple[int, bytes | list[tuple[int, bytes]]]]  # (opcode, body or a chunk's records)
HEADER, CHANNEL, MESSAGE, CHUNK = 0x01, 0x04, 0x05, 0x06
COLOUR = M.Description("cam", (4, 6, 3), "uint8", "BGR", 512)
DEPTH = M.Description("depth", (3, 5), "float32", "GRAY", 0)
reached: Counter[str] = Counter()


def _record(opcode: int, body: bytes) -> bytes:
    return struct.pack("<BQ", opcode, len(body)) + body


def _string(text: bytes) -> bytes:
    return struct.pack("<I", len(text)) + text


def _write_valid(path: Path, compression: str = "none") -> None:
    """A recording as `shmview record` writes it: two streams, three frames each."""
    from viewer.recording.sinks import McapSink

    sink = McapSink(path, compression)
    for k in range(3):
        stamp = 1_700_000_000_000_000_000 + k * 10**7
        sink.write(COLOUR, Frame(np.full(COLOUR.shape, k, np.uint8), k, stamp, {"k": k, "overlay": []}))
        sink.write(DEPTH, Frame(np.full(DEPTH.shape, k / 3, np.float32), k, stamp, None))
    sink.close()


# -- a recording taken apart and put back together ------------------------------------------


def _records(data: bytes | memoryview) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos + 9 <= len(data):
        opcode, length = struct.unpack_from("<BQ", data, pos)
        out.append((opcode, bytes(data[pos + 9 : pos + 9 + length])))
        pos += 9 + length
    return out


def take_apart(data: bytes) -> Parts:
    """The top-level records of a (valid) file, each chunk as its list of records."""
    parts: Parts = []
    for opcode, body in _records(data[len(MAGIC) :]):
        if opcode == CHUNK:
            n = struct.unpack_from("<I", body, 28)[0]
            parts.append((opcode, _records(body[28 + 4 + n + 8 :])))
        else:
            parts.append((opcode, body))
    return parts


def put_together(parts: Parts, compression: str) -> bytes:
    """The file again, each chunk compressed anew with its right sizes and CRC."""
    out = [MAGIC]
    for opcode, body in parts:
        if isinstance(body, list):
            data = b"".join(_record(o, b) for o, b in body)
            packed = {"zstd": zstandard.ZstdCompressor().compress, "lz4": lz4.frame.compress, "": bytes}[compression](
                data
            )
            head = struct.pack("<QQQI", 0, 0, len(data), zlib.crc32(data)) + _string(compression.encode())
            body = head + struct.pack("<Q", len(packed)) + packed
        out.append(_record(opcode, body))
    return b"".join(out) + MAGIC


def inner(parts: Parts) -> list[tuple[list[tuple[int, bytes]], int]]:
    """(chunk's record list, position) of every record inside a chunk."""
    return [(body, i) for _, body in parts if isinstance(body, list) for i in range(len(body))]


def channels(parts: Parts) -> dict[int, str]:
    """Channel id -> topic."""
    found = {}
    for records, i in inner(parts):
        opcode, body = records[i]
        if opcode == CHANNEL:
            topic_length = struct.unpack_from("<I", body, 4)[0]
            found[struct.unpack_from("<H", body)[0]] = body[8 : 8 + topic_length].decode()
    return found


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("valid") / "valid.mcap"
    _write_valid(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "fuzzed.mcap"


# -- mutations ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
numbers = st.sampled_from([0, 1, -1, 3, 2**31, 2**32 - 1, 2**40, 2**63 - 1, 2**63, 2**64 - 1])
frame_records = st.fixed_dictionaries(
    {}, optional={"index": json_values | numbers, "timestamp_ns": json_values | numbers, "meta": json_values}
)
descriptions = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["cam", "depth", "other", "../x", ""]) | json_values,
        "shape": st.lists(numbers | st.integers(-2, 40), max_size=4) | json_values,
        "dtype": st.sampled_from(["uint8", "float32", "float64", "f8", "int8"]) | json_values,
        "pixel_format": st.sampled_from(["BGR", "GRAY", "RGBA", "YUV"]) | json_values,
        "meta_bytes": numbers | json_values,
        "format": st.sampled_from([1, 2]) | json_values,
    },
)


@st.composite
def raw_mutation(draw, data: bytes) -> bytes:
    """The file's bytes (its chunks compressed or not), flipped, overwritten (lengths with
    large numbers), cut or spliced."""
    out = bytearray(put_together(take_apart(data), draw(st.sampled_from(["", "zstd", "lz4"]))))
    for _ in range(draw(st.integers(1, 4))):
        last = len(out) - 1
        at = draw(st.integers(0, last) | st.integers(min(len(MAGIC), last), last))  # past the magic, mostly
        how = draw(st.sampled_from(["flip", "number", "cut", "insert"]))
        if how == "flip":
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "number":
            out[at : at + 8] = struct.pack("<Q", draw(numbers) % 2**64)
        elif how == "cut":
            del out[at:]
        else:
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        if not out:
            break
    return bytes(out)


@st.composite
def record_mutation(draw, data: bytes) -> bytes:
    """One record inside a chunk changed (its bytes, a frame record, a stream description or
    an image), the file put back together with right chunk sizes and CRCs."""
    parts = take_apart(data)
    topics = channels(parts)
    records, i = draw(st.sampled_from(inner(parts)))
    opcode, body = records[i]
    what = draw(st.sampled_from(["bytes", "json", "description", "image"]))
    topic = topics.get(struct.unpack_from("<H", body)[0], "") if opcode == MESSAGE else ""
    if what == "json" and topic.endswith("/frame"):
        body = body[:22] + orjson.dumps(draw(frame_records | json_values), option=orjson.OPT_NON_STR_KEYS)
    elif what == "description" and opcode == CHANNEL:
        body = _with_description(body, json.dumps(draw(descriptions | json_values)))
    elif what == "image" and topic.endswith("/image"):
        body = body[:22] + _raw_image(draw)
    else:
        spoilt = bytearray(body)
        for _ in range(draw(st.integers(1, 3))):
            spoilt[draw(st.integers(0, len(spoilt) - 1))] = draw(st.integers(0, 255))
        body = bytes(spoilt)
    records[i] = (opcode, body)
    return put_together(parts, draw(st.sampled_from(["", "zstd", "lz4"])))


def _with_description(channel: bytes, description: str) -> bytes:
    """A channel record whose stream description is ``description``."""
    from mcap.data_stream import ReadDataStream, RecordBuilder
    from mcap.records import Channel

    record = Channel.read(ReadDataStream(io.BytesIO(channel)))
    record.metadata = {**record.metadata, M.DESCRIPTION_KEY: description}
    builder = RecordBuilder()
    record.write(builder)
    return builder.end()[9:]


def _raw_image(draw) -> bytes:
    from foxglove.messages import RawImage, Timestamp

    return RawImage(
        timestamp=Timestamp(sec=draw(st.integers(0, 2**32 - 1)), nsec=draw(st.integers(0, 10**9 - 1))),
        width=draw(st.sampled_from([0, 5, 6, 2**32 - 1])),
        height=draw(st.sampled_from([0, 3, 4, 2**32 - 1])),
        encoding=draw(st.sampled_from(["bgr8", "32FC1", "mono8", ""])),
        step=draw(st.sampled_from([0, 18, 20])),
        data=draw(st.binary(max_size=80)),
    ).encode()


# -- the fuzz -------------------------------------------------------------------------------


def read_as_info_and_replay(path: Path) -> None:
    """What info and replay read of ``path``: only ShmviewError may come out."""
    reached["examples"] += 1
    try:
        lines = report(path)
        rec = open_recording(path)
        chosen = {d.name for d in rec.streams()}
        pixels = sum(item.frame.image.size for item in rec.frames(chosen))
    except RecordingError as exc:
        assert "\n" not in str(exc)
        reached["refused"] += 1
        event("refused")
        return
    reached["cut short" if rec.problem else "whole"] += 1
    event("cut short" if rec.problem else "read whole")
    assert len(lines) == 1 + len(chosen) and pixels >= 0


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def _fuzz(valid: bytes, scratch: Path, data: st.DataObject) -> None:
    mutate = data.draw(st.sampled_from([raw_mutation, record_mutation]))
    scratch.write_bytes(data.draw(mutate(valid)))
    read_as_info_and_replay(scratch)


def test_fuzzed_recordings_give_a_result_or_one_typed_error(valid: bytes, scratch: Path):
    reached.clear()
    _fuzz(valid, scratch)
    assert reached["examples"] >= 500
    # The mutations reach every outcome: refused, cut short, and (a harmless change) read whole.
    assert reached["refused"] > 50 and reached["cut short"] > 5 and reached["whole"] > 5, reached


def test_the_fuzz_starts_from_a_file_read_exactly(valid: bytes, scratch: Path):
    """Taking the file apart and putting it together again, in each compression, changes
    nothing that is read: what the fuzz mutates is the real thing."""
    for compression in ("", "zstd", "lz4"):
        scratch.write_bytes(put_together(take_apart(valid), compression))
        rec = Recording(scratch)
        frames = list(rec.frames())
        assert rec.complete and rec.problem is None
        assert [(r.desc.name, r.frame.index) for r in frames] == [(n, k) for k in range(3) for n in ("cam", "depth")]
        assert frames[2].frame.meta == {"k": 1, "overlay": []} and frames[3].frame.image[0, 0] == np.float32(1 / 3)


# -- hand-made hostile files, through the command line --------------------------------------


def _spoil(valid: bytes, topic_end: str, body: bytes | None = None, description: dict | None = None) -> bytes:
    """``valid`` with its first message on a ``topic_end`` channel given ``body``, or each
    channel of stream cam given ``description``."""
    parts = take_apart(valid)
    topics = channels(parts)
    for records, i in inner(parts):
        opcode, old = records[i]
        if body is not None and opcode == MESSAGE and topics[struct.unpack_from("<H", old)[0]].endswith(topic_end):
            records[i] = (opcode, old[:22] + body)
            body = None
        elif description is not None and opcode == CHANNEL and "/cam/" in topics[struct.unpack_from("<H", old)[0]]:
            records[i] = (opcode, _with_description(old, json.dumps(description)))
    return put_together(parts, "zstd")


CAM = json.loads(COLOUR.metadata()[M.DESCRIPTION_KEY])
BAD_CONTENT = {
    "a frame record that is a JSON list": dict(topic_end="/frame", body=b"[1, 2, 3]"),
    "whose index is the string '3'": dict(topic_end="/frame", body=b'{"index": "3", "timestamp_ns": 5}'),
    "whose timestamp_ns is the string '5'": dict(topic_end="/frame", body=b'{"index": 3, "timestamp_ns": "5"}'),
    "height and width must be 1 to": dict(topic_end="", description={**CAM, "shape": [-1, 64], "pixel_format": "GRAY"}),
    "describes a stream named '../x'": dict(topic_end="", description={**CAM, "name": "../x"}),
    "not a foxglove.RawImage": dict(topic_end="/image", body=b"\xff\xff\xff"),
}


@pytest.mark.parametrize("problem", BAD_CONTENT)
def test_bad_content_is_one_line_and_exit_1_for_info_and_replay(valid: bytes, tmp_path: Path, problem: str):
    path = tmp_path / "bad.mcap"
    path.write_bytes(_spoil(valid, **BAD_CONTENT[problem]))
    for args in (["info", str(path)], ["produce", "replay", "--path", str(path), "--speed", "0"]):
        run = cli(*args)
        assert run.returncode == 1, (args, run.stdout, run.stderr)  # the file's fault: never 2, the usage code
        assert run.stderr.count("\n") == 1 and problem in run.stderr and str(path) in run.stderr, run.stderr
        assert run.stdout == ""  # nothing printed from it, no '64x-1'


def _huge_claim(valid: bytes, claim: int) -> bytes:
    """``valid`` as one zstd chunk whose frame does not say its size, the chunk claiming
    ``claim`` bytes uncompressed."""
    parts = take_apart(valid)
    chunks = [body for _, body in parts if isinstance(body, list)]
    data = b"".join(_record(o, b) for chunk in chunks for o, b in chunk)
    packed = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    head = struct.pack("<QQQI", 0, 0, claim, 0) + _string(b"zstd") + struct.pack("<Q", len(packed)) + packed
    return MAGIC + _record(HEADER, parts[0][1]) + _record(CHUNK, head)  # type: ignore[arg-type]


def _limited(megabytes: int):
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (megabytes * 2**20, megabytes * 2**20))

    return limit


def test_a_chunk_claiming_a_huge_size_costs_no_memory(valid: bytes, tmp_path: Path):
    """Over the cap: refused before decompressing. Under it (800 MiB, from a 2 KB file):
    decompressed only as far as it goes, inside a 1 GiB address space (reading it into a
    buffer of the claimed size, as the mcap library does, dies there of MemoryError)."""
    over, under = tmp_path / "over.mcap", tmp_path / "under.mcap"
    over.write_bytes(_huge_claim(valid, 2**40))
    under.write_bytes(_huge_claim(valid, 800 * 2**20))
    run = cli("info", str(over))
    assert run.returncode == 1 and "claims 1,099,511,627,776 bytes uncompressed, over the" in run.stderr
    for args in (["info", str(under)], ["produce", "replay", "--path", str(under)]):
        run = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, preexec_fn=_limited(1024))
        assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
        assert "decompresses to fewer than the 838,860,800 bytes it claims" in run.stderr


def test_a_folder_a_fifo_and_a_cut_file(valid: bytes, tmp_path: Path):
    folder = tmp_path / "frames"
    folder.mkdir()
    run = cli("info", str(folder))
    assert run.returncode == 2 and f"{folder} is a folder: info reads MCAP files" in run.stderr
    run = cli("produce", "replay", "--path", str(folder))
    assert run.returncode == 2 and "shmview produce folder --path" in run.stderr
    fifo = tmp_path / "pipe.mcap"
    os.mkfifo(fifo)
    run = cli("info", str(fifo))  # a plain open() would wait for a writer forever
    assert run.returncode == 1 and "is not a regular file" in run.stderr
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(valid[: len(valid) * 2 // 3])
    run = cli("info", str(cut))
    assert run.returncode == 0 and "cut short (its writer never finished it)" in run.stdout, run.stderr


# -- limits, in process ---------------------------------------------------------------------


def test_a_chunk_of_a_million_tiny_records_is_refused(valid: bytes, tmp_path: Path):
    """About 31 MB of identical empty messages zstd packs into a few kB: more records than
    the chunk has bytes, which no real recording comes near (about ten bytes a record)."""
    parts = take_apart(valid)
    other = struct.pack("<HH", 99, 0) + _string(b"/other") + _string(b"json") + struct.pack("<I", 0)
    flood = [(CHANNEL, other)] + [(MESSAGE, struct.pack("<HIQQ", 99, 0, 0, 0))] * 10**6
    path = tmp_path / "flood.mcap"
    path.write_bytes(put_together([parts[0], (CHUNK, flood)], "zstd"))
    assert path.stat().st_size < 100_000
    with pytest.raises(RecordingError, match="more records than its size allows"):
        report(path)


def test_the_cap_follows_the_frame_size_limit(valid: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "capped.mcap"
    path.write_bytes(_huge_claim(valid, 7 * 2**20))
    with pytest.raises(RecordingError, match="decompresses to fewer"):
        report(path)  # 7 MiB is under the default cap
    monkeypatch.setenv("SHMVIEW_MAX_FRAME_BYTES", str(2**20))
    assert cap_bytes() < 7 * 2**20
    with pytest.raises(RecordingError, match=f"over the {cap_bytes():,}-byte cap"):
        report(path)


def test_a_chunk_its_writer_never_finished_is_cut_short_other_huge_lengths_are_refused(valid: bytes, tmp_path: Path):
    """A recorder killed mid-chunk leaves the chunk's length as 2^64-1 (filled in when the
    chunk is done): that file was cut short. Any other record longer than the cap is not a
    recording's, cut short or not."""
    parts = take_apart(valid)
    whole = put_together(parts, "zstd")
    at = len(MAGIC) + 9 + len(parts[0][1])  # the first chunk
    path = tmp_path / "killed.mcap"
    path.write_bytes(whole[: at + 1] + struct.pack("<Q", 2**64 - 1) + whole[at + 9 : at + 200])
    rec = Recording(path)
    assert list(rec.frames()) == [] and not rec.complete
    assert rec.problem == f"cut short (its writer never finished it): {at} of {at + 200} bytes readable"
    path.write_bytes(whole[:at] + struct.pack("<BQ", MESSAGE, 2**60) + whole[at + 9 :])
    with pytest.raises(RecordingError, match=f"a message record at byte {at} claims 1,152,921,504,606,846,976 bytes"):
        report(path)
