"""Reading a recording back: its streams and frames, in file order.

Files are read front to back (never through the summary at the end), so a file cut short by
a crash or ``kill -9`` gives every frame in the chunks that reached the disk, and says
where it stopped. Nothing in the file is trusted: walk.py bounds every length before it is
allocated, and here every value taken from it (stream description, frame record, image) is
checked before use; a file that does not hold up raises RecordingError naming the problem.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from viewer.errors import RecordingError, ShmviewError, SourceNotFoundError
from viewer.recording import messages as M
from viewer.stream.frames import Frame
from viewer.stream.protocol import DTYPES, MAX_NS, make_layout
from viewer.stream.registry import validate_name

_MAX_INDEX = 2**63 - 1


@dataclass(frozen=True)
class Recorded:
    """One recorded frame and the stream it belongs to."""

    desc: M.Description
    frame: Frame


@dataclass(frozen=True)
class _Image:
    """A checked image message; its pixels are only made into an array when asked for."""

    desc: M.Description
    data: bytes
    stamp: int  # the RawImage's own timestamp, for an image whose frame record is missing

    @property
    def pixels(self) -> np.ndarray:
        return M.image_from_raw(self.data, self.desc)


_Decoder = Callable[[bytes], Any]


class Recording:
    """An MCAP file written by ``shmview record``. ``frames()`` may be called again and
    again (each call reads the file anew); after a pass, ``complete`` says whether the file
    ended properly and ``problem`` why not. A file that is not what it claims raises
    RecordingError during the pass."""

    def __init__(self, path: Path) -> None:
        _open(path).close()
        self.path = path
        self.complete: bool | None = None
        self.problem: str | None = None

    def streams(self) -> list[M.Description]:
        """The recorded streams that have frames, in the order they first appear (a pass
        over the file that decodes no image)."""
        found: dict[str, M.Description] = {}
        for desc, _ in self.records():
            found.setdefault(desc.name, desc)
        return list(found.values())

    def frames(self, names: set[str] | None = None) -> Iterator[Recorded]:
        """Every recorded frame (of the streams in ``names``, or all), in file order, with
        its metadata; an image whose ``frame`` record is missing gets index None."""
        pending: dict[str, dict[str, Any]] = {}  # stream name -> its next image's frame record
        for kind, desc, payload in self._messages(names):
            if kind == M.FRAME:
                pending[desc.name] = payload
            else:
                rec = pending.pop(desc.name, None)
                frame = (
                    Frame(payload.pixels, None, payload.stamp)
                    if rec is None
                    else Frame(payload.pixels, rec["index"], rec["timestamp_ns"], rec["meta"])
                )
                yield Recorded(desc, frame)

    def records(self) -> Iterator[tuple[M.Description, dict[str, Any]]]:
        """Each frame's record (index, timestamp_ns, meta); images are checked, not decoded."""
        for kind, desc, rec in self._messages(None):
            if kind == M.FRAME:
                yield desc, rec

    def _messages(self, names: set[str] | None) -> Iterator[tuple[str, M.Description, Any]]:
        """(kind, description, checked payload) for the image and frame messages of shmview
        channels."""
        from viewer.recording.walk import Walk

        self.complete, self.problem = False, None
        with _open(self.path) as f:
            walk = Walk(f, os.fstat(f.fileno()).st_size)
            try:
                yield from _Channels(names).messages(walk)
            except RecordingError as exc:
                raise RecordingError(f"{self.path}: {exc}") from None
        self.complete = walk.complete
        if walk.cut_at is not None and walk.cut_at < walk.size:
            self.problem = f"cut short (its writer never finished it): {walk.cut_at:,} of {walk.size:,} bytes readable"
        elif not walk.complete:
            self.problem = "cut short (no summary at its end)"


class _Channels:
    """The channels met during one pass, and what each one's messages become."""

    def __init__(self, names: set[str] | None) -> None:
        self.names = names
        self.schemas: dict[int, Any] = {}
        self.defined: set[int] = set()
        self.wanted: dict[int, tuple[str, M.Description, _Decoder]] = {}
        self.streams: dict[str, M.Description] = {}

    def messages(self, walk: Any) -> Iterator[tuple[str, M.Description, Any]]:
        from mcap.records import Channel, Schema

        for record in walk.records():
            if isinstance(record, Schema):
                self.schemas[record.id] = record
            elif isinstance(record, Channel):
                self.add(record)
            elif record.channel_id in self.wanted:
                kind, desc, decode = self.wanted[record.channel_id]
                yield kind, desc, decode(record.data)
            elif record.channel_id not in self.defined:
                raise RecordingError(f"a message on channel {record.channel_id}, which no channel record defines")

    def add(self, channel: Any) -> None:
        self.defined.add(channel.id)
        self.wanted.pop(channel.id, None)
        where = M.split_topic(channel.topic)
        if where is None or where[1] not in (M.IMAGE, M.FRAME):
            return
        desc = _description(channel.metadata, channel.topic, where[0])
        if self.streams.setdefault(desc.name, desc) != desc:
            raise RecordingError(f"the channels of stream {desc.name} describe it differently")
        if self.names is not None and desc.name not in self.names:
            return
        if where[1] == M.FRAME:
            self.wanted[channel.id] = (M.FRAME, desc, functools.partial(_frame_record, desc.name))
        else:
            _check_image_channel(channel, self.schemas.get(channel.schema_id))
            self.wanted[channel.id] = (M.IMAGE, desc, functools.partial(_image, desc))


def _description(metadata: dict[str, str], topic: str, name: str) -> M.Description:
    """The stream description a channel carries, every field checked."""
    import orjson

    where = f"channel {topic[:100]!r}"
    try:
        fields = orjson.loads(metadata[M.DESCRIPTION_KEY])
    except KeyError:
        raise RecordingError(f"{where} has no shmview stream description") from None
    except orjson.JSONDecodeError:
        raise RecordingError(f"{where}: its stream description is not JSON") from None
    if not isinstance(fields, dict) or fields.get("format") != M.FORMAT:
        raise RecordingError(f"{where}: a stream description this shmview cannot read (format 1 expected)")
    shape, dtype, pixel_format, meta_bytes = (fields.get(k) for k in ("shape", "dtype", "pixel_format", "meta_bytes"))
    if fields.get("name") != name:
        raise RecordingError(f"{where} describes a stream named {str(fields.get('name'))[:40]!r}")
    if not isinstance(shape, list) or not all(type(s) is int for s in shape) or type(meta_bytes) is not int:
        raise RecordingError(f"{where}: the shape must be a list of integers and meta_bytes an integer")
    if dtype not in DTYPES or not isinstance(pixel_format, str):
        raise RecordingError(f"{where}: dtype {str(dtype)[:20]!r} is not one of {', '.join(DTYPES)}")
    try:
        validate_name(name)
        make_layout(tuple(shape), dtype, pixel_format, 1, meta_bytes)
    except ShmviewError as exc:
        raise RecordingError(f"{where}: {exc}") from None
    return M.Description(name, tuple(shape), dtype, pixel_format, meta_bytes)


def _frame_record(stream: str, data: bytes) -> dict[str, Any]:
    """A frame message's JSON: an object whose index and timestamp_ns are integers in range
    (or null) and whose meta is an object (or null)."""
    import orjson

    try:
        rec = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise RecordingError(f"stream {stream}: a frame record that is not JSON") from None
    if not isinstance(rec, dict):
        raise RecordingError(f"stream {stream}: a frame record that is a JSON {_kind(rec)}, not an object")
    index, stamp, meta = rec.get("index"), rec.get("timestamp_ns"), rec.get("meta")
    for key, value, top in (("index", index, _MAX_INDEX), ("timestamp_ns", stamp, MAX_NS)):
        if value is not None and not (type(value) is int and 0 <= value <= top):
            raise RecordingError(
                f"stream {stream}: a frame record whose {key} is {_shown(value)}, not an integer from 0 to {top}"
            )
    if meta is not None and not isinstance(meta, dict):
        raise RecordingError(f"stream {stream}: a frame record whose meta is a JSON {_kind(meta)}, not an object")
    return {"index": index, "timestamp_ns": stamp, "meta": meta}


def _image(desc: M.Description, data: bytes) -> _Image:
    """An image message as the stream's array, after checking it is the image the stream
    describes."""
    from google.protobuf.message import DecodeError

    try:
        raw = _raw_image_decoder()(data)
    except DecodeError:
        raise RecordingError(f"stream {desc.name}: an image message that is not a foxglove.RawImage") from None
    h, w = desc.shape[:2]
    step = w * int(np.prod(desc.shape[2:], dtype=np.int64)) * np.dtype(desc.dtype).itemsize
    got = (raw.width, raw.height, raw.encoding, raw.step, len(raw.data))
    if got != (w, h, desc.encoding, step, desc.frame_bytes):
        raise RecordingError(
            f"stream {desc.name}: an image of {raw.width}x{raw.height} {raw.encoding[:20]!r}, "
            f"{len(raw.data):,} bytes, where the stream is {w}x{h} {desc.encoding}, "
            f"{desc.frame_bytes:,} bytes"
        )
    stamp = raw.timestamp.seconds * 10**9 + raw.timestamp.nanos
    if not (0 <= raw.timestamp.nanos < 10**9 and 0 <= stamp <= MAX_NS):
        raise RecordingError(f"stream {desc.name}: an image whose timestamp is out of range")
    return _Image(desc, raw.data, stamp)


def _check_image_channel(channel: Any, schema: Any) -> None:
    if channel.message_encoding != "protobuf" or schema is None or schema.name != "foxglove.RawImage":
        raise RecordingError(f"channel {channel.topic[:100]!r} is not foxglove.RawImage in protobuf")


@functools.lru_cache(maxsize=1)
def _raw_image_decoder() -> _Decoder:
    """foxglove.RawImage decoded with the Foxglove SDK's own schema, never the file's: a
    schema in a file could declare any fields under that name."""
    from foxglove.messages import RawImage
    from mcap.records import Schema
    from mcap_protobuf.decoder import DecoderFactory

    ours = RawImage.get_schema()
    decode = DecoderFactory().decoder_for(
        "protobuf", Schema(id=1, name=ours.name, encoding=ours.encoding, data=bytes(ours.data))
    )
    assert decode is not None
    return decode


def _shown(value: object) -> str:
    """A JSON value as a message shows it: short, and saying what kind of value it is."""
    if type(value) is int:
        return str(value)
    if isinstance(value, (bool, str, float)):
        return f"the {_kind(value)} {repr(value)[:40]}"
    return f"a JSON {_kind(value)}"


def _kind(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}
    return names.get(type(value), "null")


def _open(path: Path) -> BinaryIO:
    """The file, opened without blocking on a FIFO and checked to be a regular file."""
    if path.is_dir():
        raise RecordingError(
            f"{path} is a folder: info and replay read MCAP files "
            "(a folder of images plays with `shmview produce folder`)"
        )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SourceNotFoundError(f"no recording {path}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RecordingError(f"{path} is not a regular file")
    return os.fdopen(fd, "rb")


def open_recording(path: Path) -> Recording:
    """A recording, checked to be MCAP: SourceNotFoundError (exit 3) when there is no such
    file, RecordingError (exit 1) for a folder or a file that is not MCAP."""
    from viewer.recording.walk import MAGIC

    with _open(path) as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise RecordingError(f"{path} is not an MCAP file")
    return Recording(path)


__all__ = ["Recorded", "Recording", "RecordingError", "ShmviewError", "open_recording"]
