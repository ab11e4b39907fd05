"""Walking an MCAP file front to back, trusting nothing in it.

The ``mcap`` library's StreamReader believes the lengths a file states: a zstd chunk that
claims a huge uncompressed size is allocated before a byte of it is decompressed (a 101 KB
file once took ``shmview info`` to 2 GB), and any record may claim up to 4 GiB. Here each
length is checked before anything is allocated for it:

- a record longer than what is left of the file (and within the cap, or a chunk whose length
  its writer had not yet filled in) means the file was cut short (a recorder killed
  mid-write): the walk stops there and says where;
- no record, and no chunk once decompressed, may exceed ``cap_bytes()``: the largest frame
  a stream may carry (1 GiB, or ``$SHMVIEW_MAX_FRAME_BYTES``) plus its metadata and 4 MiB;
  a chunk's claimed size is checked against it before decompressing, decompression stops
  one byte past the claimed size, and the result must match the size and the chunk's CRC;
- a chunk holds only Schema, Channel and Message records (the MCAP specification's list),
  and at most one record per byte of its compressed data, so the work of a pass stays in
  proportion to the file: a 100 KB file cannot hold millions of records.

Anything else that does not hold up is a RecordingError naming the record and its byte
offset. The mcap library's record classes still read the fields of schemas and channels.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import lz4.frame
import zstandard
from mcap.data_stream import ReadDataStream
from mcap.exceptions import EndOfFile, McapError
from mcap.opcode import Opcode
from mcap.records import Channel, Message, Schema

from viewer.errors import RecordingError
from viewer.stream.protocol import MAX_META_BYTES, max_frame_bytes

MAGIC = b"\x89MCAP0\r\n"
_HEAD = struct.Struct("<BQ")  # every record: opcode, length of what follows
_MESSAGE = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time; then data
_CHUNK = struct.Struct("<QQQI")  # start time, end time, uncompressed size, uncompressed CRC
_SLACK = 4 * 2**20  # a frame record and the RawImage fields around the largest image
_STEP = 16 * 2**20  # decompress in pieces: memory follows what a chunk really holds
_UNFINISHED = 2**64 - 1  # the length a writer puts in a chunk record until the chunk is done
_IN_CHUNKS = (Opcode.SCHEMA, Opcode.CHANNEL, Opcode.MESSAGE)

Record = Schema | Channel | Message


def cap_bytes() -> int:
    """The largest record, or chunk once decompressed, a recording may hold."""
    return max_frame_bytes() + MAX_META_BYTES + _SLACK


class Walk:
    """One pass over an open MCAP file of ``size`` bytes. ``records()`` yields the Schema,
    Channel and Message records of its data section, in file order; afterwards ``complete``
    says whether the file ended with its footer, and ``cut_at`` where a file that did not
    stops being readable."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f, self.size, self.cap = f, size, cap_bytes()
        self.complete = False
        self.cut_at: int | None = None

    def records(self) -> Iterator[Record]:
        self._f.seek(0)
        if self._f.read(len(MAGIC)) != MAGIC:
            raise RecordingError("not an MCAP file (no MCAP magic at its start)")
        for opcode, body, at in self._top():
            if opcode == Opcode.CHUNK:
                yield from self._chunk(body, at)
            elif opcode in _IN_CHUNKS:
                yield _parse(opcode, body, at)
            elif opcode == 0:
                raise RecordingError(f"a record with opcode 0 (never valid) at byte {at:,}")
            elif opcode in (Opcode.DATA_END, Opcode.FOOTER):
                self._finish(opcode == Opcode.FOOTER)  # the summary repeats what was read
                return

    def _top(self) -> Iterator[tuple[int, memoryview, int]]:
        """(opcode, body, offset) of each top-level record, until the file ends."""
        while True:
            at = self._f.tell()
            head = self._f.read(_HEAD.size)
            if len(head) < _HEAD.size:
                self.cut_at = at
                return
            opcode, length = _HEAD.unpack(head)
            if at == len(MAGIC) and opcode != Opcode.HEADER:
                raise RecordingError(f"no MCAP header record at byte {at:,}")
            unfinished = opcode == Opcode.CHUNK and length == _UNFINISHED
            if length > self.size - at - _HEAD.size and (length <= self.cap or unfinished):
                self.cut_at = at  # the last record, cut short
                return
            if length > self.cap:  # cut short or not, no writer of ours makes such a record
                raise RecordingError(
                    f"{_name(opcode)} at byte {at:,} claims {length:,} bytes, over the {self.cap:,}-byte cap"
                )
            body = self._f.read(length)
            if len(body) < length:  # the file shrank under us
                self.cut_at = at
                return
            yield opcode, memoryview(body), at

    def _finish(self, at_footer: bool) -> None:
        """After the data section: skip the summary, and the file is complete if its footer
        and closing magic are there."""
        if not at_footer and not any(opcode == Opcode.FOOTER for opcode, _, _ in self._top()):
            return
        end = self._f.tell()
        self.complete = self._f.read(len(MAGIC)) == MAGIC
        self.cut_at = None if self.complete else end

    def _chunk(self, body: memoryview, at: int) -> Iterator[Record]:
        size, crc, compression, packed = _chunk_fields(body, at)
        if size > self.cap:
            raise RecordingError(
                f"the chunk at byte {at:,} claims {size:,} bytes uncompressed, over the {self.cap:,}-byte cap"
            )
        data = _inflate(compression, packed, size, at)
        if crc and zlib.crc32(data) != crc:
            raise RecordingError(f"the chunk at byte {at:,} fails its CRC check (corrupt)")
        yield from _inner(memoryview(data), at, budget=len(packed))


def _chunk_fields(body: memoryview, at: int) -> tuple[int, int, str, memoryview]:
    """(uncompressed size, CRC, compression, compressed data) of a chunk record's body."""
    try:
        _start, _end, size, crc = _CHUNK.unpack_from(body)
        n = int.from_bytes(body[_CHUNK.size : _CHUNK.size + 4], "little")
        compression = str(body[_CHUNK.size + 4 : _CHUNK.size + 4 + n], "utf-8")
        (length,) = struct.unpack_from("<Q", body, _CHUNK.size + 4 + n)
    except (struct.error, UnicodeDecodeError) as exc:
        raise RecordingError(f"a chunk record at byte {at:,} is corrupt: {exc}") from None
    packed = body[_CHUNK.size + 12 + n : _CHUNK.size + 12 + n + length]
    if len(packed) != length:
        raise RecordingError(f"the chunk at byte {at:,} claims {length:,} bytes of data and holds {len(packed):,}")
    return size, crc, compression, packed


def _inner(data: memoryview, at: int, budget: int) -> Iterator[Record]:
    """The records of a decompressed chunk (``at``: the chunk's offset, for messages), at
    most ``budget`` of them: one per byte of the chunk's data on disk. Real chunks take about
    ten bytes a record even for 1x1 frames; a chunk of millions of identical tiny records
    compressed to nothing would otherwise cost seconds per kilobyte of file."""
    pos = 0
    while pos < len(data):
        budget -= 1
        if budget < 0:
            raise RecordingError(f"the chunk at byte {at:,} holds more records than its size allows")
        if len(data) - pos < _HEAD.size:
            raise RecordingError(f"the chunk at byte {at:,} ends inside a record")
        opcode, length = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + length
        if end > len(data):
            raise RecordingError(f"the chunk at byte {at:,} holds a record longer than the chunk")
        if opcode not in _IN_CHUNKS:
            raise RecordingError(f"the chunk at byte {at:,} holds {_name(opcode)}, which chunks may not")
        yield _parse(opcode, data[pos + _HEAD.size : end], at)
        pos = end


def _inflate(compression: str, packed: memoryview, size: int, at: int) -> bytearray | memoryview:
    """The chunk's data uncompressed, never more than ``size`` + 1 bytes of it."""
    if compression == "":
        out: bytearray | memoryview = packed
    elif compression in ("zstd", "lz4"):
        try:
            out = (_unzstd if compression == "zstd" else _unlz4)(packed, size + 1)
        except (zstandard.ZstdError, RuntimeError, MemoryError) as exc:  # lz4 raises RuntimeError
            raise RecordingError(f"the chunk at byte {at:,} does not decompress ({compression}: {exc})") from None
    else:
        raise RecordingError(
            f"the chunk at byte {at:,} uses compression {compression[:40]!r}, "
            "which shmview does not read (zstd, lz4 or none)"
        )
    if len(out) != size:
        more = "more" if len(out) > size else "fewer"
        raise RecordingError(f"the chunk at byte {at:,} decompresses to {more} than the {size:,} bytes it claims")
    return out


def _unzstd(packed: memoryview, limit: int) -> bytearray:
    out = bytearray()
    with zstandard.ZstdDecompressor().stream_reader(packed, read_across_frames=True) as reader:
        while len(out) < limit and (piece := reader.read(min(_STEP, limit - len(out)))):
            out += piece
    return out


def _unlz4(packed: memoryview, limit: int) -> bytearray:
    decompressor = lz4.frame.LZ4FrameDecompressor()
    out = bytearray(decompressor.decompress(packed, max_length=min(_STEP, limit)))
    while len(out) < limit and not decompressor.needs_input and not decompressor.eof:
        out += decompressor.decompress(b"", max_length=min(_STEP, limit - len(out)))
    return out


def _parse(opcode: int, body: memoryview, at: int) -> Record:
    try:
        if opcode == Opcode.MESSAGE:
            channel_id, sequence, log_time, publish_time = _MESSAGE.unpack_from(body)
            return Message(
                channel_id=channel_id,
                sequence=sequence,
                log_time=log_time,
                publish_time=publish_time,
                data=bytes(body[_MESSAGE.size :]),
            )
        stream = _Exact(io.BytesIO(body))
        return Schema.read(stream) if opcode == Opcode.SCHEMA else Channel.read(stream)
    except (McapError, struct.error, UnicodeDecodeError) as exc:
        raise RecordingError(f"{_name(opcode)} at byte {at:,} is corrupt: {exc}") from None


class _Exact(ReadDataStream):
    """The mcap library's reader over one record's bytes, where a field that runs past the
    record is an error (the library's own returns what there is)."""

    def read(self, length: int) -> bytes:
        data = super().read(length)
        if len(data) != length:
            raise EndOfFile(f"a field of {length:,} bytes runs past the record")
        return data


def _name(opcode: int) -> str:
    """'a chunk record', 'a record of unknown opcode 0x5b'."""
    try:
        return f"a {Opcode(opcode).name.lower().replace('_', ' ')} record"
    except ValueError:
        return f"a record of unknown opcode {opcode:#04x}"
