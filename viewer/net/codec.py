"""How a frame travels: a small JSON header in the Zenoh attachment, the pixels (raw,
JPEG or PNG) as the payload.

Header (UTF-8 JSON object, ``v`` 1)::

    {"v": 1, "index": 41, "timestamp_ns": 1764..., "shape": [480, 640, 3],
     "dtype": "uint8", "pixel_format": "BGR", "codec": "jpeg", "meta": {...}}

``meta`` is there only when the frame has metadata. Raw payloads are the pixels in C
order, little-endian (shmview's byte order); JPEG and PNG payloads are the files as
OpenCV writes them (PNG keeps uint16). JPEG takes uint8 frames of 1 or 3 channels; PNG
uint8 or uint16 frames of 1, 3 or 4 channels; raw anything a stream carries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from viewer.errors import ShmviewError
from viewer.frames import Frame

log = logging.getLogger(__name__)

CODECS = ("raw", "jpeg", "png")
VERSION = 1
PNG_LEVEL = 1  # zlib level 1: most of the size saving of 9 at a fraction of the time


class CodecError(ShmviewError):
    """A message that is not a shmview frame, or pixels that do not decode to what its
    header says."""


@dataclass(frozen=True)
class Header:
    index: int
    timestamp_ns: int
    shape: tuple[int, ...]
    dtype: str
    pixel_format: str
    codec: str
    meta: dict[str, Any] | None = None

    def pack(self) -> bytes:
        fields: dict[str, Any] = {
            "v": VERSION, "index": self.index, "timestamp_ns": self.timestamp_ns, "shape": self.shape,
            "dtype": self.dtype, "pixel_format": self.pixel_format, "codec": self.codec,
        }
        if self.meta is not None:
            fields["meta"] = self.meta
        return orjson.dumps(fields, option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        try:
            raw = orjson.loads(data)
            head = cls(int(raw["index"]), int(raw["timestamp_ns"]), tuple(int(n) for n in raw["shape"]),
                       str(raw["dtype"]), str(raw["pixel_format"]), str(raw["codec"]), raw.get("meta"))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CodecError(f"not a shmview frame header: {exc}") from None
        if raw.get("v") != VERSION or head.codec not in CODECS or not isinstance(head.meta, dict | None):
            raise CodecError(f"unsupported frame header (version {raw.get('v')!r}, codec {head.codec!r})")
        return head


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
    """The pixels of one message, checked against its header."""
    dtype = np.dtype(head.dtype).newbyteorder("<")
    if head.codec == "raw":
        if len(payload) != int(np.prod(head.shape)) * dtype.itemsize:
            raise CodecError(f"raw payload of {len(payload)} bytes for {head.shape} {head.dtype}")
        return np.frombuffer(payload, dtype).reshape(head.shape)
    import cv2

    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size != int(np.prod(head.shape)) or image.dtype != dtype:
        got = "nothing" if image is None else f"{image.shape} {image.dtype}"
        raise CodecError(f"{head.codec} payload decoded to {got}, header says {head.shape} {head.dtype}")
    return image.reshape(head.shape)
