"""Pure functions on frames: exact sums now, display conversions later. No Qt here."""

from __future__ import annotations

import math

import numpy as np


def single_threaded_opencv() -> None:
    """For viewers. One frame every 300 ms is too little work to share out, and OpenCV's
    thread pool keeps its workers spinning after every call: measured here, that was a
    third of an idle window's CPU."""
    import cv2

    cv2.setNumThreads(0)


def pixel_sum(image: np.ndarray) -> int | float:
    """The sum of every sample: an exact int for integer frames, a float otherwise.

    cv2.sumElems is ~25x faster than ndarray.sum() on a 640x480x3 frame. It sums each
    channel in float64, which is exact here: a channel of a uint16 frame within the
    protocol's limits (32768 x 32768) sums to at most 7e13, far below 2**53.
    """
    if image.dtype.kind == "f":
        with np.errstate(all="ignore"):  # NaN, infinities, overflow: the sum says so itself
            return float(image.sum(dtype=np.float64))
    if image.ndim > 3 or (image.ndim == 3 and image.shape[2] > 4):
        return int(image.sum(dtype=np.uint64))  # more channels than cv2 takes at once
    import cv2  # deferred: `import viewer` must stay free of OpenCV

    return int(sum(cv2.sumElems(np.ascontiguousarray(image))))


# Display conversion. Everything with colour becomes BGRA bytes, which is what Qt's
# Format_RGB32 holds on a little-endian machine: the cheapest QImage to paint (measured
# here: 71 us for cvtColor + drawImage against 155 us for drawing BGR888 directly).
RGB32, GRAY8 = "RGB32", "Grayscale8"
_TO_BGRA = {"BGR": "COLOR_BGR2BGRA", "RGB": "COLOR_RGB2BGRA", "RGBA": "COLOR_RGBA2BGRA"}


def display_image(image: np.ndarray, pixel_format: str, out: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """A uint8 array Qt can wrap without copying, and the name of its QImage format.

    ``image`` must be uint8 already (see to_uint8). ``out`` is reused when it fits.
    """
    if pixel_format == "GRAY":
        return np.ascontiguousarray(image.reshape(image.shape[:2])), GRAY8
    if pixel_format == "BGRA":
        return np.ascontiguousarray(image), RGB32
    import cv2

    h, w = image.shape[:2]
    if out is None or out.shape != (h, w, 4):
        out = np.empty((h, w, 4), np.uint8)
    cv2.cvtColor(image, getattr(cv2, _TO_BGRA[pixel_format]), dst=out)
    return out, RGB32


def to_uint8(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map [lo, hi] linearly onto 0..255, clipping outside."""
    scale = 255.0 / (hi - lo) if hi > lo else 1.0
    scaled = (image.astype(np.float32) - np.float32(lo)) * np.float32(scale)
    return np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)


class AutoLevels:
    """Display levels for uint16 and float frames that follow the content without flicker.

    Each frame's 0.5th and 99.5th percentiles (of a subsample) are the candidate range.
    The levels only move when the content leaves them, or shrinks to under half of them;
    then they jump with a 10 % margin, so noise from frame to frame never moves them.
    """

    def __init__(self) -> None:
        self.levels: tuple[float, float] | None = None

    def update(self, image: np.ndarray) -> tuple[float, float]:
        sample = image[::4, ::4]
        finite = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample
        lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.5])) if finite.size else (0.0, 1.0)
        if self.levels is not None:
            cur_lo, cur_hi = self.levels
            if lo >= cur_lo and hi <= cur_hi and (hi - lo) >= 0.5 * (cur_hi - cur_lo):
                return self.levels
        margin = 0.1 * (hi - lo) or 1.0
        self.levels = (lo - margin, hi + margin)
        return self.levels


def channel_names(pixel_format: str) -> str:
    """Letters naming the channels in memory order: 'BGR' for BGR, 'I' for grey."""
    return "I" if pixel_format == "GRAY" else pixel_format


def snapshot_array(image: np.ndarray, pixel_format: str) -> np.ndarray:
    """The frame in the channel order cv2.imwrite expects (BGR / BGRA / grey), same dtype."""
    if pixel_format in ("RGB", "RGBA"):
        import cv2

        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR if pixel_format == "RGB" else cv2.COLOR_RGBA2BGRA)
    return image


# Numbers for people and for strict JSON (sizes and formats: viewer.stream.frames.describe).


def nonfinite_count(image: np.ndarray) -> int | None:
    """How many samples are NaN or infinite; None for integer frames, which cannot hold any."""
    if image.dtype.kind != "f":
        return None
    return int(image.size - np.count_nonzero(np.isfinite(image)))


def finite_or_none(value: float | int | None) -> float | int | None:
    """``value``, or None where it is NaN or infinite (JSON has no word for those)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def number_text(value: int | float, digits: int = 6) -> str:
    """A number for people, with thousands separators: ints exact; floats to ``digits``
    significant digits or to the unit, whichever shows more ('3,072,768', '12,345.5',
    '0.000123'), in exponent form only below 1e-4 or from 1e15 on."""
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value) or value == 0:
        return f"{value:g}"
    magnitude = math.floor(math.log10(abs(value)))
    if not -4 <= magnitude < 15:
        return f"{value:.{digits}g}"
    text = f"{value:,.{max(0, digits - 1 - magnitude)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
