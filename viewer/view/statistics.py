"""Statistics the viewer shows besides the sum: a region's per-channel numbers and a frame's
per-channel histogram. Pure numpy / OpenCV, no Qt; the window and the headless viewer share
them.

A region (ROI) is (x, y, w, h) in image pixels: the numpy slice [y:y+h, x:x+w], clipped to
the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from viewer.view.imaging import channel_names, finite_or_none

Roi = tuple[int, int, int, int]
BINS = 256
# Histograms are taken on every k-th row when a frame is bigger than this (pixels per
# channel): at 1080x1920x3 a full uint8 histogram takes ~5 ms here, and OpenCV's uint16 and
# float histograms are ~5x slower per sample than its uint8 one. A few hundred thousand
# samples draw the same 256-bin curve.
SAMPLE_PIXELS = {"u": 1 << 20, "other": 1 << 17}


# ---- region statistics -------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelStats:
    name: str
    min: int | float
    max: int | float
    mean: float
    std: float  # population (ddof=0), like np.std
    sum: int | float  # exact int for integer frames


@dataclass(frozen=True)
class RoiStats:
    roi: Roi  # as clipped to the frame; w or h 0 when it lies outside
    channels: tuple[ChannelStats, ...]


def clip_roi(roi: Roi, shape: tuple[int, ...]) -> Roi:
    """``roi`` cut to a frame of ``shape``; width and height 0 if nothing is left."""
    x, y, w, h = roi
    height, width = shape[:2]
    x0, y0 = min(max(x, 0), width), min(max(y, 0), height)
    x1, y1 = min(max(x + w, x0), width), min(max(y + h, y0), height)
    return (x0, y0, x1 - x0, y1 - y0)


def roi_stats(image: np.ndarray, roi: Roi, pixel_format: str) -> RoiStats:
    """Per channel min, max, mean, std (float64) and exact sum of the pixels in ``roi``."""
    x, y, w, h = clipped = clip_roi(roi, image.shape)
    if w == 0 or h == 0:
        return RoiStats(clipped, ())
    region = image[y : y + h, x : x + w]
    region = region.reshape(h, w, -1)
    names = channel_names(pixel_format)
    stats = [_channel(region[..., c], names[c] if c < len(names) else str(c)) for c in range(region.shape[2])]
    return RoiStats(clipped, tuple(stats))


def _channel(values: np.ndarray, name: str) -> ChannelStats:
    if values.dtype.kind == "f":
        wide = values.astype(np.float64)
        with np.errstate(all="ignore"):  # inf - inf in std is NaN, shown as such (null in JSON)
            return ChannelStats(name, float(wide.min()), float(wide.max()), float(wide.mean()), float(wide.std()),
                                float(wide.sum()))
    import cv2  # deferred: `import viewer` stays free of OpenCV

    plane = np.ascontiguousarray(values)
    lo, hi, _, _ = cv2.minMaxLoc(plane)
    mean, std = (float(v[0][0]) for v in cv2.meanStdDev(plane))
    # float64 sums are exact here: see imaging.pixel_sum
    return ChannelStats(name, int(lo), int(hi), mean, std, int(cv2.sumElems(plane)[0]))


def roi_text(stats: RoiStats) -> list[str]:
    """The region, then one line per channel: 'roi 10,10,50x40', 'B min 0 max 255 mean ...'."""
    x, y, w, h = stats.roi
    head = f"roi {x},{y},{w}x{h}" + ("" if stats.channels else " (outside the frame)")
    return [head, *(channel_text(c) for c in stats.channels)]


def channel_text(c: ChannelStats) -> str:
    total = f"{c.sum:,}" if isinstance(c.sum, int) else f"{c.sum:.6g}"
    return f"{c.name} min {_num(c.min)} max {_num(c.max)} mean {c.mean:.4g} std {c.std:.4g} sum {total}"


def _num(v: int | float) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:.6g}"


def roi_dict(stats: RoiStats) -> dict[str, object]:
    """The JSON form (strict: non-finite numbers become null)."""
    x, y, w, h = stats.roi
    channels = [
        {"name": c.name, **{k: finite_or_none(getattr(c, k)) for k in ("min", "max", "mean", "std", "sum")}}
        for c in stats.channels
    ]
    return {"x": x, "y": y, "w": w, "h": h, "channels": channels}


# ---- histograms --------------------------------------------------------------------------


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
