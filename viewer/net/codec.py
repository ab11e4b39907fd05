"""How a frame travels: a small JSON header in the Zenoh attachment, the pixels (raw,
JPEG or PNG) as the payload.

Header (UTF-8 JSON object, ``v`` 1)::

    {"v": 1, "index": 41, "timestamp_ns": 1764..., "shape": [480, 640, 3],
     "dtype": "uint8", "pixel_format": "BGR", "codec": "jpeg", "meta": {...}}

``meta`` is there only when the frame has metadata. Raw payloads are the pixels in C
order, little-endian (shmview's byte order); JPEG and PNG payloads are the files as
OpenCV writes them (PNG keeps uint16). JPEG takes uint8 frames of 1 or 3 channels; PNG
uint8 or uint16 frames of 1, 3 or 4 channels; raw anything a stream carries.

A receiver trusts nothing in a message: ``Header.unpack`` accepts only a header that
describes a frame a stream can carry (known dtype and pixel format, a valid shape, a
timestamp from 0 to 2**63 - 1), and ``decode`` checks the payload's size, and for JPEG
and PNG the image's own dimensions (SOF, IHDR), against the header before decoding it,
so a small message can never make it allocate more than the header says.
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from viewer.errors import CodecError, FormatError
from viewer.stream import protocol as P
from viewer.stream.frames import Frame

log = logging.getLogger(__name__)

__all__ = ["CODECS", "CodecError", "Header", "codec_for", "decode", "encode", "encode_frame"]

CODECS = ("raw", "jpeg", "png")
VERSION = 1
PNG_LEVEL = 1  # zlib level 1: most of the size saving of 9 at a fraction of the time
MAX_HEADER_BYTES = 2 * P.MAX_META_BYTES  # JSON of the largest metadata a stream holds, and then some
MAX_INDEX = 2**64 - 1  # a slot's u64 index word


@dataclass(frozen=True)
class Header:
    index: int
    timestamp_ns: int
    shape: tuple[int, ...]
    dtype: str
    pixel_format: str
    codec: str
    meta: dict[str, Any] | None = None

    @property
    def frame_bytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def pack(self) -> bytes:
        fields: dict[str, Any] = {
            "v": VERSION,
            "index": self.index,
            "timestamp_ns": self.timestamp_ns,
            "shape": self.shape,
            "dtype": self.dtype,
            "pixel_format": self.pixel_format,
            "codec": self.codec,
        }
        if self.meta is not None:
            fields["meta"] = self.meta
        return orjson.dumps(fields, option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        """The header a peer sent, if it describes a frame a stream can carry; CodecError
        saying what is wrong otherwise (nothing a peer sends may raise anything else)."""
        if len(data) > MAX_HEADER_BYTES:
            raise CodecError(f"a frame header of {len(data):,} bytes (at most {MAX_HEADER_BYTES:,})")
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CodecError(f"not a shmview frame header: {exc}") from None
        if not isinstance(raw, dict) or raw.get("v") != VERSION:
            version = raw.get("v") if isinstance(raw, dict) else None
            raise CodecError(f"not a shmview frame header of version {VERSION} (version {version!r})")
        head = cls(
            _whole(raw, "index", MAX_INDEX),
            _whole(raw, "timestamp_ns", P.MAX_NS),
            _shape(raw),
            _word(raw, "dtype"),
            _word(raw, "pixel_format"),
            _word(raw, "codec"),
            raw.get("meta"),
        )
        head._check()
        return head

    def _check(self) -> None:
        if self.dtype not in P.DTYPES:
            raise CodecError(f"dtype {self.dtype!r} is not one of {', '.join(P.DTYPES)}")
        try:  # the stream's own rules: sides, channels, pixel format, shmview's frame cap
            P.make_layout(self.shape, self.dtype, self.pixel_format, 1)
        except FormatError as exc:
            raise CodecError(str(exc)) from None
        if self.codec not in CODECS or codec_for(self.codec, self.shape, self.dtype) != self.codec:
            raise CodecError(f"codec {self.codec!r} cannot carry {self.shape} {self.dtype} frames")
        if not isinstance(self.meta, dict | None):
            raise CodecError(f"meta must be a JSON object, got {type(self.meta).__name__}")


def _whole(raw: dict[str, Any], key: str, top: int) -> int:
    value = raw.get(key)
    if type(value) is not int or not 0 <= value <= top:  # bool is an int too: not here
        raise CodecError(f"{key} must be a whole number from 0 to {top}, got {value!r}")
    return value


def _word(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or len(value) > 16:
        raise CodecError(f"{key} must be a short string, got {value!r:.40}")
    return value


def _shape(raw: dict[str, Any]) -> tuple[int, ...]:
    shape = raw.get("shape")
    if not isinstance(shape, list) or len(shape) not in (2, 3) or any(type(n) is not int for n in shape):
        raise CodecError(f"shape must be [height, width] or [height, width, channels], got {shape!r:.60}")
    return tuple(shape)


def codec_for(wanted: str, shape: tuple[int, ...], dtype: str) -> str:
    """``wanted`` if it can carry such frames, else the nearest lossless one that can."""
    channels = shape[2] if len(shape) == 3 else 1
    if wanted == "jpeg" and dtype == "uint8" and channels in (1, 3):
        return "jpeg"
    if wanted in ("jpeg", "png") and dtype in ("uint8", "uint16"):
        return "png"
    return "raw"


def encode(image: np.ndarray, codec: str, quality: int = 90) -> bytes:
    """The payload for ``image``: made straight from the array given (a slot's view)."""
    if codec == "raw":
        return image.tobytes()
    import cv2

    if codec == "jpeg":
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    else:
        ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if not ok:
        raise CodecError(f"OpenCV could not encode a {image.shape} {image.dtype} frame as {codec}")
    return data.tobytes()


def encode_frame(frame: Frame, codec: str, quality: int, pixel_format: str) -> tuple[bytes, bytes]:
    """(payload, header) for one frame, to be called on a zero-copy view of its slot."""
    assert frame.index is not None and frame.timestamp_ns is not None
    image = frame.image
    head = Header(frame.index, frame.timestamp_ns, image.shape, image.dtype.name, pixel_format, codec, frame.meta)
    return encode(image, codec, quality), head.pack()


def decode(head: Header, payload: bytes) -> np.ndarray:
    """The pixels of one message, checked against its (already checked) header. A JPEG or
    PNG is decoded only once its own dimensions match the header's: a few kilobytes of
    PNG can otherwise claim gigabytes."""
    dtype = np.dtype(head.dtype).newbyteorder("<")
    if head.codec == "raw":
        if len(payload) != head.frame_bytes:
            raise CodecError(f"raw payload of {len(payload):,} bytes for {head.shape} {head.dtype}")
        return np.frombuffer(payload, dtype).reshape(head.shape)
    _check_dimensions(head, payload)
    import cv2

    try:
        image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise CodecError(f"{head.codec} payload does not decode: {str(exc).strip():.120}") from None
    if (
        image is None
        or image.shape[:2] != head.shape[:2]
        or image.size != math.prod(head.shape)
        or image.dtype != dtype
    ):
        got = "nothing" if image is None else f"{image.shape} {image.dtype}"
        raise CodecError(f"{head.codec} payload decoded to {got}, header says {head.shape} {head.dtype}")
    return image.reshape(head.shape)


# What an encoded image says of itself: (height, width, channels, bits per sample).
Dimensions = tuple[int, int, int, int]
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 6: 4}  # grey, RGB, RGBA: what OpenCV writes for 1, 3, 4 channels
_JPEG_SOF = {*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (C4, C8, CC are not)
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length


def _check_dimensions(head: Header, payload: bytes) -> None:
    found = _png_dimensions(payload) if head.codec == "png" else _jpeg_dimensions(payload)
    channels = head.shape[2] if len(head.shape) == 3 else 1
    expected = (*head.shape[:2], channels, 8 * np.dtype(head.dtype).itemsize)
    if found != expected:
        h, w, c, bits = found
        raise CodecError(
            f"{head.codec} image is {w}x{h}, {c} channel(s) of {bits} bits; "
            f"the header says {head.shape} {head.dtype}: not decoded"
        )


def _png_dimensions(data: bytes) -> Dimensions:
    """From the IHDR chunk, which PNG requires to come first."""
    if len(data) < 33 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise CodecError("png payload does not start with a PNG signature and IHDR")
    width, height, bits, colour = struct.unpack(">IIBB", data[16:26])
    if colour not in _PNG_CHANNELS:
        raise CodecError(f"png colour type {colour} (shmview sends grey, RGB or RGBA)")
    return height, width, _PNG_CHANNELS[colour], bits


def _jpeg_dimensions(data: bytes) -> Dimensions:
    """From the first start-of-frame segment, walking the segments before it (an EXIF
    thumbnail's own SOF sits inside an APP1 segment and is skipped with it)."""
    if data[:2] != b"\xff\xd8":
        raise CodecError("jpeg payload does not start with a JPEG SOI marker")
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise CodecError(f"jpeg payload: no marker at byte {at}")
        marker = data[at + 1]
        if marker == 0xFF or marker in _JPEG_STANDALONE:  # fill byte, or a marker with no length
            at += 1 if marker == 0xFF else 2
            continue
        if marker in _JPEG_SOF and at + 10 <= len(data):
            bits, height, width, channels = struct.unpack(">BHHB", data[at + 4 : at + 10])
            return height, width, channels, bits
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            break
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    raise CodecError("jpeg payload has no start-of-frame segment")
