"""A frame's per-channel histogram, for the viewer's histogram panel. Pure numpy / OpenCV,
no Qt (viewer/gui/histogram_view.py draws it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from viewer.view.imaging import channel_names

BINS = 256
# Histograms are taken on every k-th row when a frame is bigger than this (pixels per
# channel): at 1080x1920x3 a full uint8 histogram takes ~5 ms here, and OpenCV's uint16 and
# float histograms are ~5x slower per sample than its uint8 one. A few hundred thousand
# samples draw the same 256-bin curve.
SAMPLE_PIXELS = {"u": 1 << 20, "other": 1 << 17}


@dataclass(frozen=True)
class Histogram:
    """``counts[c][b]``: samples of channel c in bin b; the bins split [lo, hi) evenly.
    ``row_step`` > 1: the counts are of every row_step-th row only."""

    counts: np.ndarray  # (channels, BINS) int64
    lo: float
    hi: float
    names: str
    row_step: int = 1

    def bin_of(self, value: float) -> float:
        """Where ``value`` falls, in bins (fractional)."""
        return (value - self.lo) / (self.hi - self.lo) * self.counts.shape[1]


def row_step(image: np.ndarray) -> int:
    pixels = image.shape[0] * image.shape[1]
    budget = SAMPLE_PIXELS["u" if image.dtype == np.uint8 else "other"]
    return max(1, math.ceil(pixels / budget))


def histogram(image: np.ndarray, pixel_format: str, levels: tuple[float, float] | None = None) -> Histogram:
    """Per-channel histogram: 256 bins of one value each for uint8; for uint16 and float
    frames 256 bins over the data's range and the display ``levels`` together, so both
    level markers always fall on the plot."""
    import cv2

    step = row_step(image)
    sample = image[::step]  # a view: OpenCV takes row strides without a copy
    if sample.dtype not in (np.uint8, np.uint16, np.float32):
        with np.errstate(over="ignore"):  # beyond float32: inf, left out like any other
            sample = sample.astype(np.float32)  # float64: OpenCV's histogram takes float32
    lo, hi = _range(sample, levels)
    planes = sample.reshape(sample.shape[0], sample.shape[1], -1)
    # OpenCV counts NaN in the first bin: leave non-finite samples out, when there are any
    finite = np.isfinite(planes) if planes.dtype.kind == "f" else None
    counts = np.empty((planes.shape[2], BINS), np.int64)
    for c in range(planes.shape[2]):
        mask = None if finite is None else np.ascontiguousarray(finite[..., c]).view(np.uint8)
        counts[c] = cv2.calcHist([planes], [c], mask, [BINS], [lo, hi]).ravel()
    return Histogram(counts, lo, hi, channel_names(pixel_format), step)


def _range(sample: np.ndarray, levels: tuple[float, float] | None) -> tuple[float, float]:
    """[lo, hi): every sample inside, and the levels too."""
    if sample.dtype == np.uint8:
        return 0.0, 256.0
    finite = sample if sample.dtype.kind != "f" else sample[np.isfinite(sample)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if levels is not None:
        lo, hi = min(lo, levels[0]), max(hi, levels[1])
    if sample.dtype.kind != "f":
        return lo, hi + 1.0  # whole values: the top one in the last bin
    if hi <= lo:  # a flat frame: one unit wide, the value in the first bin
        hi = lo + 1.0
    return lo, hi + (hi - lo) * 1e-6  # the top value inside the last bin
