"""Making any source's frames fit a stream: size, channels, channel order and dtype, with OpenCV."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from viewer.errors import SourceError

# cv2.cvtColor codes from (source layout, stream format). Source layouts: GRAY (2-D or
# 1 channel), and the source's colour order with 3 or 4 channels.
_CODES = {
    ("BGR", "GRAY"): cv2.COLOR_BGR2GRAY,
    ("BGRA", "GRAY"): cv2.COLOR_BGRA2GRAY,
    ("RGB", "GRAY"): cv2.COLOR_RGB2GRAY,
    ("RGBA", "GRAY"): cv2.COLOR_RGBA2GRAY,
    ("GRAY", "BGR"): cv2.COLOR_GRAY2BGR,
    ("BGRA", "BGR"): cv2.COLOR_BGRA2BGR,
    ("RGB", "BGR"): cv2.COLOR_RGB2BGR,
    ("RGBA", "BGR"): cv2.COLOR_RGBA2BGR,
}
DTYPES = ("uint8", "uint16", "float32", "float64")
_FULL_SCALE = {"uint8": 255, "uint16": 65535}  # integer samples span their whole range


def layout_of(frame: np.ndarray, colour_order: str = "BGR") -> str:
    """GRAY, or the source's colour order with an A for a fourth channel."""
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    if frame.ndim not in (2, 3) or channels not in (1, 3, 4):
        raise SourceError(f"frames of shape {frame.shape} are not supported (H,W or H,W,C with C 1, 3 or 4)")
    if channels == 1:
        return "GRAY"
    return colour_order + ("A" if channels == 4 else "")


@dataclass(frozen=True)
class Conformer:
    """Turns a source's frames into the stream's: (height, width), GRAY or BGR, ``dtype``.

    Frames that already fit pass through untouched, so applying it twice is harmless.
    """

    height: int
    width: int
    pixel_format: str = "BGR"  # GRAY or BGR
    colour_order: str = "BGR"  # what the source's 3- and 4-channel frames hold
    letterbox: bool = True  # keep the aspect ratio, pad with black; False stretches
    dtype: str = "uint8"  # the stream's, from its first frame
    source: str = "the source"  # named in errors

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.height, self.width) if self.pixel_format == "GRAY" else (self.height, self.width, 3)

    @classmethod
    def for_first(
        cls, frame: object, size: tuple[int, int] | None, channels: int | None, **options: object
    ) -> Conformer:
        """The stream a first frame suggests: its own size, colour and dtype unless told otherwise."""
        source = str(options.get("source", "the source"))
        frame = _checked(frame, source)
        w, h = size if size else (frame.shape[1], frame.shape[0])
        grey = channels == 1 or (channels is None and layout_of(frame) == "GRAY")
        return cls(h, w, "GRAY" if grey else "BGR", dtype=frame.dtype.name, **options)  # type: ignore[arg-type]

    def __call__(self, frame: object) -> np.ndarray:
        frame = to_dtype(_checked(frame, self.source), self.dtype)
        try:
            src = layout_of(frame, self.colour_order)
        except SourceError as exc:
            raise SourceError(f"{self.source}: {exc}") from None
        if src != self.pixel_format:
            frame = _convert_colour(frame, _CODES[(src, self.pixel_format)])
        elif frame.ndim == 3 and self.pixel_format == "GRAY":
            frame = frame[:, :, 0]
        if frame.shape[:2] != (self.height, self.width):
            frame = self._resize(frame)
        return frame

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        shrink = h > self.height or w > self.width
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        if not self.letterbox:
            return cv2.resize(frame, (self.width, self.height), interpolation=interp)
        scale = min(self.width / w, self.height / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        out = np.zeros(self.shape, frame.dtype)
        y, x = (self.height - nh) // 2, (self.width - nw) // 2
        out[y : y + nh, x : x + nw] = cv2.resize(frame, (nw, nh), interpolation=interp)
        return out


def _checked(frame: object, source: str) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise SourceError(f"{source} gave a {type(frame).__name__}, not a numpy array", source=source)
    if frame.dtype.name not in DTYPES:
        raise SourceError(f"{source} gave {frame.dtype} frames; a stream carries {', '.join(DTYPES)}", source=source)
    return frame


def _convert_colour(frame: np.ndarray, code: int) -> np.ndarray:
    if frame.dtype == np.float64:  # cvtColor takes 8- and 16-bit and float32 only
        return cv2.cvtColor(frame.astype(np.float32), code).astype(np.float64)
    return cv2.cvtColor(frame, code)


def to_dtype(frame: np.ndarray, dtype: str) -> np.ndarray:
    """A frame of another dtype than the stream's (a 16-bit PNG among 8-bit ones), in one
    convention: integer samples span their type's full range, float samples 0.0 to 1.0
    (OpenCV's and most libraries'). So 4000 in uint16 is 16 in uint8 and 0.061 in float,
    and 0.5 in float is 128 in uint8; out-of-range floats clip, NaN becomes 0."""
    have = frame.dtype.name
    if have == dtype:
        return frame
    full_have, full_want = _FULL_SCALE.get(have, 1.0), _FULL_SCALE.get(dtype, 1.0)
    scaled = frame.astype(np.float64 if dtype == "float64" else np.float32) * (full_want / full_have)
    if dtype not in _FULL_SCALE:
        return scaled.astype(dtype)
    return np.rint(np.clip(np.nan_to_num(scaled), 0, full_want)).astype(dtype)
