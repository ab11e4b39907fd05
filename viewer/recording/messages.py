"""How a shmview stream is laid out in an MCAP file, the format of Foxglove and ROS 2.

Per stream NAME, three channels (topics), all with ``log_time`` = the frame's producer
timestamp (``timestamp_ns``, CLOCK_REALTIME):

    /shmview/NAME/image        foxglove.RawImage (protobuf), the pixels, lossless
    /shmview/NAME/frame        shmview.Frame (JSON): {"index", "timestamp_ns", "meta"}
    /shmview/NAME/annotations  foxglove.ImageAnnotations (protobuf), only for frames whose
                               metadata holds an ``overlay``

Every frame writes its ``frame`` message first, then its ``image``, so in file order each
image follows its own record. The image and frame channels carry the exact stream
description (shape, dtype, pixel format, metadata room) in their metadata under
``shmview.stream``, so replay restores the stream bit for bit; RawImage ``encoding`` is
Foxglove's name where Foxglove has one (mono8, bgr8, rgb8, bgra8, rgba8, mono16, 32FC1)
and the ROS name otherwise (bgr16, 32FC3, 64FC1, ...), which Foxglove cannot show but
shmview replays. Multi-byte samples are little-endian, as Foxglove expects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from viewer.errors import ShmviewError
from viewer.stream.frames import Frame

log = logging.getLogger(__name__)

FORMAT = 1  # the version of this layout, in every description
DESCRIPTION_KEY = "shmview.stream"
IMAGE, FRAME, ANNOTATIONS = "image", "frame", "annotations"
PREFIX = "/shmview/"

_ENCODINGS = {
    "uint8": {"GRAY": "mono8", "BGR": "bgr8", "RGB": "rgb8", "BGRA": "bgra8", "RGBA": "rgba8"},
    "uint16": {"GRAY": "mono16", "BGR": "bgr16", "RGB": "rgb16", "BGRA": "bgra16", "RGBA": "rgba16"},
    "float32": {"GRAY": "32FC1", "BGR": "32FC3", "RGB": "32FC3", "BGRA": "32FC4", "RGBA": "32FC4"},
    "float64": {"GRAY": "64FC1", "BGR": "64FC3", "RGB": "64FC3", "BGRA": "64FC4", "RGBA": "64FC4"},
}

#: The JSON schema of the per-frame record, so Foxglove shows it in its Raw Messages panel.
FRAME_SCHEMA: dict[str, Any] = {
    "title": "shmview.Frame",
    "type": "object",
    "properties": {
        "index": {"type": "integer", "description": "the frame's index in its stream"},
        "timestamp_ns": {"type": "integer", "description": "producer timestamp, CLOCK_REALTIME"},
        "meta": {"type": ["object", "null"], "description": "the frame's metadata, if any"},
    },
}


def topic(name: str, kind: str) -> str:
    return f"{PREFIX}{name}/{kind}"


def split_topic(text: str) -> tuple[str, str] | None:
    """(stream name, kind) of a shmview topic, None for any other topic."""
    if not text.startswith(PREFIX) or "/" not in text[len(PREFIX) :]:
        return None
    name, kind = text[len(PREFIX) :].rsplit("/", 1)
    return name, kind


@dataclass(frozen=True)
class Description:
    """What replay needs to make the stream again, exactly."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    pixel_format: str
    meta_bytes: int
    format: int = FORMAT

    def metadata(self) -> dict[str, str]:
        return {DESCRIPTION_KEY: json.dumps(asdict(self))}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], topic_name: str) -> Description:
        try:
            fields = json.loads(metadata[DESCRIPTION_KEY])
            desc = cls(**{**fields, "shape": tuple(fields["shape"])})
        except (KeyError, TypeError, ValueError) as exc:
            raise ShmviewError(f"channel {topic_name} has no valid shmview description ({exc})") from None
        if desc.format != FORMAT or desc.dtype not in _ENCODINGS or desc.pixel_format not in _ENCODINGS["uint8"]:
            raise ShmviewError(f"channel {topic_name}: a stream description this shmview cannot read: {fields}")
        return desc

    @property
    def encoding(self) -> str:
        return _ENCODINGS[self.dtype][self.pixel_format]

    @property
    def frame_bytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


def raw_image(frame: Frame, desc: Description) -> Any:
    """The frame as a foxglove.RawImage message."""
    from foxglove.messages import RawImage

    image = frame.image.astype(frame.image.dtype.newbyteorder("<"), copy=False)
    h, w = desc.shape[:2]
    return RawImage(
        timestamp=_stamp(frame.timestamp_ns),
        frame_id=desc.name,
        width=w,
        height=h,
        encoding=desc.encoding,
        step=w * image.itemsize * (image.size // (h * w)),
        data=_bytes_of(image),
    )


def _bytes_of(image: np.ndarray) -> bytes:
    """The pixels as bytes: the very bytes object an array was made over, when it is one
    (the recorder copies frames out of shared memory that way), else a copy."""
    base = image.base
    while isinstance(base, np.ndarray):  # a reshape of a frombuffer array: the bytes are further down
        base = base.base
    if isinstance(base, bytes) and len(base) == image.nbytes and image.flags.c_contiguous:
        return base
    return image.tobytes()


def image_from_raw(data: bytes, desc: Description) -> np.ndarray:
    """A RawImage's bytes as the stream's own array (a copy: writable, native order)."""
    if len(data) != desc.frame_bytes:
        raise ShmviewError(f"{desc.name}: an image of {len(data):,} bytes, {desc.frame_bytes:,} expected")
    little = np.dtype(desc.dtype).newbyteorder("<")
    return np.frombuffer(data, little).reshape(desc.shape).astype(desc.dtype)


def frame_record(frame: Frame) -> dict[str, Any]:
    return {"index": frame.index, "timestamp_ns": frame.timestamp_ns, "meta": frame.meta}


def _stamp(ns: int | None) -> Any:
    from foxglove.messages import Timestamp

    sec, nsec = divmod(ns or 0, 1_000_000_000)
    return Timestamp(sec=sec, nsec=nsec)


# -- overlays -> foxglove.ImageAnnotations ---------------------------------------------

_DEFAULT_COLOUR = "#00ff00"


def image_annotations(meta: dict[str, Any] | None, timestamp_ns: int | None) -> Any | None:
    """The ``overlay`` shapes of a frame's metadata as foxglove.ImageAnnotations, or None
    when there are none. Shapes that are not understood are left out (and logged)."""
    shapes = (meta or {}).get("overlay")
    if not isinstance(shapes, list) or not shapes:
        return None
    from foxglove.messages import ImageAnnotations

    stamp = _stamp(timestamp_ns)
    points: list[Any] = []
    texts: list[Any] = []
    for shape in shapes:
        try:
            _add_shape(shape, stamp, points, texts)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            log.debug("overlay shape %r left out of the annotations: %s", shape, exc)
    return ImageAnnotations(timestamp=stamp, points=points, texts=texts)


def _add_shape(shape: dict[str, Any], stamp: Any, points: list[Any], texts: list[Any]) -> None:
    from foxglove.messages import PointsAnnotationType as Kind

    colour = _colour(shape.get("colour", _DEFAULT_COLOUR))
    label_at: Sequence[float] | None = None
    if "rect" in shape:
        x, y, w, h = (float(v) for v in shape["rect"])
        corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        points.append(_points(Kind.LineLoop, corners, colour, stamp))
        label_at = (x, y - 4)
    elif "line" in shape:
        x1, y1, x2, y2 = (float(v) for v in shape["line"])
        points.append(_points(Kind.LineStrip, [(x1, y1), (x2, y2)], colour, stamp))
        label_at = (x1, y1 - 4)
    elif "point" in shape:
        x, y = (float(v) for v in shape["point"])
        points.append(_points(Kind.Points, [(x, y)], colour, stamp, thickness=6.0))
        label_at = (x + 4, y - 4)
    elif "polygon" in shape:
        corners = [(float(x), float(y)) for x, y in shape["polygon"]]
        points.append(_points(Kind.LineLoop, corners, colour, stamp))
        label_at = corners[0] if corners else None
    elif "text" in shape:
        texts.append(_text(str(shape["text"]), shape["at"], colour, stamp))
        return
    else:
        raise ValueError("no rect, line, point, polygon or text")
    if shape.get("label") and label_at is not None:
        texts.append(_text(str(shape["label"]), label_at, colour, stamp))


def _points(kind: Any, xy: list[tuple[float, float]], colour: Any, stamp: Any, thickness: float = 2.0) -> Any:
    from foxglove.messages import Point2, PointsAnnotation

    return PointsAnnotation(
        timestamp=stamp,
        type=kind,
        points=[Point2(x=x, y=y) for x, y in xy],
        outline_color=colour,
        thickness=thickness,
    )


def _text(text: str, at: Sequence[float], colour: Any, stamp: Any) -> Any:
    from foxglove.messages import Color, Point2, TextAnnotation

    x, y = (float(v) for v in at)
    return TextAnnotation(
        timestamp=stamp,
        position=Point2(x=x, y=y),
        text=text,
        font_size=14.0,
        text_color=colour,
        background_color=Color(r=0.0, g=0.0, b=0.0, a=0.5),
    )


def _colour(text: object) -> Any:
    from foxglove.messages import Color

    if not (isinstance(text, str) and len(text) == 7 and text.startswith("#")):
        raise ValueError(f"colour must be '#rrggbb', got {text!r}")
    r, g, b = (int(text[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return Color(r=r, g=g, b=b, a=1.0)
