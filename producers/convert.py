"""Making any source's frames fit a stream: size, channels and channel order, with OpenCV."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from viewer.errors import SourceError

# cv2.cvtColor codes from (source layout, stream format). Source layouts: GRAY (2-D or
# 1 channel), and the source's colour order with 3 or 4 channels.
_CODES = {
    ("BGR", "GRAY"): cv2.COLOR_BGR2GRAY, ("BGRA", "GRAY"): cv2.COLOR_BGRA2GRAY,
    ("RGB", "GRAY"): cv2.COLOR_RGB2GRAY, ("RGBA", "GRAY"): cv2.COLOR_RGBA2GRAY,
    ("GRAY", "BGR"): cv2.COLOR_GRAY2BGR, ("BGRA", "BGR"): cv2.COLOR_BGRA2BGR,
    ("RGB", "BGR"): cv2.COLOR_RGB2BGR, ("RGBA", "BGR"): cv2.COLOR_RGBA2BGR,
}


def layout_of(frame: np.ndarray, colour_order: str = "BGR") -> str:
    """GRAY, or the source's colour order with an A for a fourth channel."""
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    if channels == 1:
        return "GRAY"
    if channels in (3, 4):
        return colour_order + ("A" if channels == 4 else "")
    raise SourceError(f"frames with {channels} channels are not supported (1, 3 or 4)")


@dataclass(frozen=True)
class Conformer:
    """Turns a source's frames into the stream's: (height, width), GRAY or BGR, uint8.

    Frames that already fit pass through untouched, so applying it twice is harmless.
    """

    height: int
    width: int
    pixel_format: str = "BGR"  # GRAY or BGR
    colour_order: str = "BGR"  # what the source's 3- and 4-channel frames hold
    letterbox: bool = False  # keep the aspect ratio, pad with black

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.height, self.width) if self.pixel_format == "GRAY" else (self.height, self.width, 3)

    @classmethod
    def for_first(
        cls, frame: np.ndarray, size: tuple[int, int] | None, channels: int | None, **options: object
    ) -> Conformer:
        """The stream a first frame suggests: its own size and colour unless told otherwise."""
        w, h = size if size else (frame.shape[1], frame.shape[0])
        grey = channels == 1 or (channels is None and layout_of(frame) == "GRAY")
        return cls(h, w, "GRAY" if grey else "BGR", **options)  # type: ignore[arg-type]

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        frame = _to_uint8(frame)
        src = layout_of(frame, self.colour_order)
        if src != self.pixel_format:
            frame = cv2.cvtColor(frame, _CODES[(src, self.pixel_format)])
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
        out = np.zeros(self.shape, np.uint8)
        y, x = (self.height - nh) // 2, (self.width - nw) // 2
        out[y : y + nh, x : x + nw] = cv2.resize(frame, (nw, nh), interpolation=interp)
        return out


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == np.uint16:
        return (frame >> 8).astype(np.uint8)
    raise SourceError(f"{frame.dtype} frames are not supported by this producer (uint8 or uint16)")
