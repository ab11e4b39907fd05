"""A region's per-channel statistics, which the viewer shows besides the sum (the frame's
histogram is viewer/view/histogram.py's). Pure numpy / OpenCV, no Qt; the window and the
headless viewer share them.

A region (ROI) is (x, y, w, h) in image pixels: the numpy slice [y:y+h, x:x+w], clipped to
the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from viewer.view.imaging import channel_names, finite_or_none, number_text

Roi = tuple[int, int, int, int]


@dataclass(frozen=True)
class ChannelStats:
    name: str
    min: int | float
    max: int | float
    mean: float
    std: float  # population (ddof=0), like np.std
    sum: int | float  # exact int for integer frames
    nonfinite: int | None = None  # NaN and infinite samples, left out of the numbers (float frames)


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
        return _float_channel(values, name)
    import cv2  # deferred: `import viewer` stays free of OpenCV

    plane = np.ascontiguousarray(values)
    lo, hi, _, _ = cv2.minMaxLoc(plane)
    # float64 sums are exact here: see imaging.pixel_sum. Mean and std come from the exact
    # sum and sum of squares (cv2.meanStdDev's are off in the last digits: a flat region had
    # a std of 2.7e-06 and a mean of 221.99999999999997).
    total, n = int(cv2.sumElems(plane)[0]), plane.size
    squares = _sum_of_squares(plane, int(hi))
    return ChannelStats(name, int(lo), int(hi), total / n, math.sqrt((n * squares - total * total) / (n * n)), total)


def _sum_of_squares(plane: np.ndarray, hi: int) -> int:
    """Exact, from a count of each value (uint8 and uint16 have at most 65,536). Not
    cv2.norm(NORM_L2SQR): it was off by one on a 23x37 uint8 plane here."""
    counts = np.bincount(plane.ravel(), minlength=hi + 1).astype(np.uint64)
    values = np.arange(counts.size, dtype=np.uint64)
    return int(np.dot(counts, values * values))  # at most 2**30 samples x 2**32: below 2**63


def _float_channel(values: np.ndarray, name: str) -> ChannelStats:
    """NaN and infinities are left out and counted: one of them must not hide the others."""
    wide = values.astype(np.float64)
    finite = np.isfinite(wide)
    bad = int(wide.size - np.count_nonzero(finite))
    if bad:
        wide = wide[finite]
    if wide.size == 0:
        nan = math.nan
        return ChannelStats(name, nan, nan, nan, nan, nan, bad)
    lo, hi = float(wide.min()), float(wide.max())
    if lo == hi:  # flat: the exact answer, not the rounding of a mean and a std
        return ChannelStats(name, lo, hi, lo, 0.0, float(wide.sum()), bad)
    with np.errstate(over="ignore"):  # float64 beyond its range: inf, shown as such
        return ChannelStats(name, lo, hi, float(wide.mean()), float(wide.std()), float(wide.sum()), bad)


def roi_text(stats: RoiStats) -> list[str]:
    """The region, then one line per channel: 'roi 10,10,50x40', 'B min 0 max 255 mean ...'."""
    x, y, w, h = stats.roi
    head = f"roi {x},{y},{w}x{h}" + ("" if stats.channels else " (outside the frame)")
    return [head, *(channel_text(c) for c in stats.channels)]


def channel_text(c: ChannelStats) -> str:
    bad = f" ({c.nonfinite:,} non-finite)" if c.nonfinite else ""
    return (
        f"{c.name} min {number_text(c.min)} max {number_text(c.max)} mean {number_text(c.mean, 4)}"
        f" std {number_text(c.std, 4)} sum {number_text(c.sum)}{bad}"
    )


def roi_dict(stats: RoiStats) -> dict[str, object]:
    """The JSON form (strict: non-finite numbers become null; a float frame's channels also
    say how many NaN or infinite samples their numbers leave out, as ``nonfinite``)."""
    x, y, w, h = stats.roi
    channels = [
        {
            "name": c.name,
            **{k: finite_or_none(getattr(c, k)) for k in ("min", "max", "mean", "std", "sum")},
            **({} if c.nonfinite is None else {"nonfinite": c.nonfinite}),
        }
        for c in stats.channels
    ]
    return {"x": x, "y": y, "w": w, "h": h, "channels": channels}
