"""A region's per-channel statistics, which the viewer shows besides the sum (the frame's
histogram is viewer/view/histogram.py's). Pure numpy / OpenCV, no Qt; the window and the
headless viewer share them.

A region (ROI) is (x, y, w, h) in image pixels: the numpy slice [y:y+h, x:x+w], clipped to
the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viewer.view.imaging import channel_names, finite_or_none

Roi = tuple[int, int, int, int]


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
            return ChannelStats(
                name, float(wide.min()), float(wide.max()), float(wide.mean()), float(wide.std()), float(wide.sum())
            )
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
