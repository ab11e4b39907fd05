"""Reading a recording back: its streams and frames, in file order, with the ``mcap`` library.

Files are read front to back (never through the summary at the end), so a file cut short by
a crash or ``kill -9`` gives every frame in the chunks that reached the disk, and says
where it stopped.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viewer.errors import ShmviewError, SourceError, SourceNotFoundError
from viewer.frames import Frame
from viewer.recording import mapping as M

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    """One recorded frame and the stream it belongs to."""

    desc: M.Description
    frame: Frame


class Recording:
    """An MCAP file written by ``shmview record``. ``frames()`` may be called again and
    again (each call reads the file anew); after a pass, ``complete`` says whether the file
    ended properly and ``problem`` why not."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise SourceNotFoundError(f"no recording {path}")
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
        for kind, desc, key, payload in self._messages(names):
            if kind == M.FRAME:
                pending[key] = payload
            elif kind == M.IMAGE:
                rec = pending.pop(key, None) or {}
                image = M.image_from_raw(payload.data, desc)
                stamp = rec.get("timestamp_ns", payload.timestamp.seconds * 10**9 + payload.timestamp.nanos)
                yield Recorded(desc, Frame(image, rec.get("index"), stamp, rec.get("meta")))

    def records(self) -> Iterator[tuple[M.Description, dict[str, Any]]]:
        """Each frame's record (index, timestamp_ns, meta), without decoding images."""
        for _kind, desc, _key, rec in self._messages(None, images=False):
            yield desc, rec

    def _messages(self, names: set[str] | None, images: bool = True) -> Iterator[tuple[str, M.Description, str, Any]]:
        """(kind, description, pairing key, decoded message) for the image and frame
        messages of shmview channels (frame messages only unless ``images``). The pairing
        key is the same for a stream's image and frame channels."""
        from mcap.records import Channel, Footer, Message, Schema
        from mcap.stream_reader import StreamReader

        schemas: dict[int, Schema] = {}
        channels: dict[int, tuple[str, M.Description, str, Any]] = {}
        self.complete, self.problem = False, None
        with self.path.open("rb") as f:
            try:
                for record in StreamReader(f).records:
                    if isinstance(record, Schema):
                        schemas[record.id] = record
                    elif isinstance(record, Channel):
                        known = _channel(record, schemas.get(record.schema_id), names)
                        if known is not None and (images or known[0] == M.FRAME):
                            channels[record.id] = known
                    elif isinstance(record, Message) and record.channel_id in channels:
                        kind, desc, key, decode = channels[record.channel_id]
                        yield kind, desc, key, decode(record.data)
                    elif isinstance(record, Footer):
                        self.complete = True
            except (EOFError, struct.error, ValueError, _mcap_error()) as exc:
                log.debug("%s stops being readable at byte %d: %s", self.path, f.tell(), _say(exc))
                self.problem = f"cut short (its writer never finished it): {self._readable(f.tell())}"
        if not self.complete and self.problem is None:
            self.problem = "cut short (no summary at its end)"

    def _readable(self, upto: int) -> str:
        """Where the readable part of a cut-short file ends, as text (an unfinished chunk
        past it is left out)."""
        size = self.path.stat().st_size
        return f"{upto:,} of {size:,} bytes readable"


def _channel(channel: Any, schema: Any, names: set[str] | None) -> tuple[str, M.Description, str, Any] | None:
    where = M.split_topic(channel.topic)
    if where is None or where[1] not in (M.IMAGE, M.FRAME):
        return None
    desc = M.Description.from_metadata(dict(channel.metadata), channel.topic)
    if names is not None and desc.name not in names:
        return None
    key = desc.name  # the image and frame channels of one stream share it
    if where[1] == M.FRAME:
        import orjson

        return M.FRAME, desc, key, orjson.loads
    return M.IMAGE, desc, key, _protobuf_decoder(channel, schema)


def _protobuf_decoder(channel: Any, schema: Any) -> Any:
    from mcap_protobuf.decoder import DecoderFactory

    decode = DecoderFactory().decoder_for(channel.message_encoding, schema)
    if decode is None or schema is None or schema.name != "foxglove.RawImage":
        raise SourceError(f"channel {channel.topic} is not foxglove.RawImage in protobuf")
    return decode


def _mcap_error() -> type[Exception]:
    from mcap.exceptions import McapError

    return McapError


def _say(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def open_recording(path: Path) -> Recording:
    """A recording, checked to be MCAP: SourceNotFoundError (exit 3) when there is no such
    file, SourceError (exit 1) for a file that is not MCAP."""
    if not path.is_file():
        raise SourceNotFoundError(f"no recording {path}")
    with path.open("rb") as f:
        if f.read(8) != b"\x89MCAP0\r\n":
            raise SourceError(f"{path} is not an MCAP file")
    return Recording(path)


__all__ = ["Recorded", "Recording", "ShmviewError", "open_recording"]
