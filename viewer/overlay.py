"""Overlay shapes and metadata text from a frame's metadata: parsed and checked here, drawn by
the image view (viewer/widgets.py). No Qt.

Coordinates are image pixels, continuous: x to the right, y down, the image's top-left
corner at (0, 0), so pixel (col i, row j) spans [i, i+1) x [j, j+1) and its centre is at
(i + 0.5, j + 0.5), as in Qt. A rect [x, y, w, h] with whole numbers covers exactly the
pixels of the numpy slice [y:y+h, x:x+w], like an ROI.

A shape that is unknown or malformed (a wrong type, a non-finite or absurd number, a bad
colour) is skipped and counted, never raised: metadata is another program's data.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_COLOUR = (255, 235, 0)  # a bright yellow: seen on most images
KINDS = ("rect", "line", "point", "polygon", "text")
MAX_SHAPES = 2000  # beyond this a frame's overlay is cut (and the rest counted as skipped)
MAX_POINTS = 10_000  # per polygon
MAX_COORD = 1e6  # far outside any frame (sides are at most 32768); keeps Qt's ints safe
MAX_TEXT = 200  # characters of a text or label drawn
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")

Point = tuple[float, float]


@dataclass(frozen=True)
class Shape:
    """One shape to draw. ``points``: rect: its two corners (top-left, bottom-right); line:
    its two ends; point and text: one point; polygon: its vertices."""

    kind: str
    points: tuple[Point, ...]
    colour: tuple[int, int, int] = DEFAULT_COLOUR
    label: str | None = None
    text: str | None = None  # what a text shape says


@dataclass(frozen=True)
class Overlay:
    shapes: tuple[Shape, ...] = ()
    skipped: int = 0  # unknown or malformed shapes, not drawn


NO_OVERLAY = Overlay()


class _Bad(Exception):
    """A malformed shape (internal: counted, never raised out of this module)."""


def parse_overlay(meta: object) -> Overlay:
    """The shapes of ``meta["overlay"]``; an empty Overlay when there is none."""
    if not isinstance(meta, Mapping) or "overlay" not in meta:
        return NO_OVERLAY
    items = meta["overlay"]
    if not isinstance(items, list):
        return Overlay((), 1)  # one thing, and not a list of shapes
    shapes = []
    for item in items[:MAX_SHAPES]:
        with contextlib.suppress(_Bad):
            shapes.append(parse_shape(item))
    return Overlay(tuple(shapes), len(items) - len(shapes))


def parse_shape(item: object) -> Shape:
    if not isinstance(item, Mapping):
        raise _Bad
    kinds = [k for k in KINDS if k in item]
    if len(kinds) != 1:
        raise _Bad  # none we know, or ambiguous
    kind = kinds[0]
    colour = _colour(item.get("colour", item.get("color")))
    label = _text(item["label"]) if "label" in item else None
    if kind == "text":
        return Shape(kind, (_point(item.get("at")),), colour, label, _text(item["text"]))
    return Shape(kind, _POINTS[kind](item[kind]), colour, label)


def _number(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Bad
    f = float(v)
    if not math.isfinite(f) or abs(f) > MAX_COORD:
        raise _Bad
    return f


def _numbers(v: object, n: int) -> list[float]:
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise _Bad
    return [_number(x) for x in v]


def _point(v: object) -> Point:
    x, y = _numbers(v, 2)
    return (x, y)


def _rect(v: object) -> tuple[Point, ...]:
    x, y, w, h = _numbers(v, 4)
    if w < 0 or h < 0:
        raise _Bad
    return ((x, y), (x + w, y + h))


def _line(v: object) -> tuple[Point, ...]:
    x1, y1, x2, y2 = _numbers(v, 4)
    return ((x1, y1), (x2, y2))


def _polygon(v: object) -> tuple[Point, ...]:
    if not isinstance(v, (list, tuple)) or not 2 <= len(v) <= MAX_POINTS:
        raise _Bad
    return tuple(_point(p) for p in v)


_POINTS = {"rect": _rect, "line": _line, "point": lambda v: (_point(v),), "polygon": _polygon}


def _colour(v: object) -> tuple[int, int, int]:
    if v is None:
        return DEFAULT_COLOUR
    if not isinstance(v, str) or not _COLOUR.fullmatch(v):
        raise _Bad
    return (int(v[1:3], 16), int(v[3:5], 16), int(v[5:7], 16))


def _text(v: object) -> str:
    if not isinstance(v, str):
        raise _Bad
    return _cut(v.replace("\n", " "), MAX_TEXT)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- metadata as text -------------------------------------------------------------------


def meta_fields(meta: object, overlay: Overlay | None = None, *, limit: int = 60) -> list[str]:
    """``key: value`` for each metadata key, each value cut to ``limit`` characters; the
    overlay as its shape count (and how many were skipped)."""
    if not isinstance(meta, Mapping):
        return []
    fields = []
    for key, value in meta.items():
        if key == "overlay":
            value = overlay_summary(overlay if overlay is not None else parse_overlay(meta))
        elif not isinstance(value, str):
            value = _compact(value)
        fields.append(_cut(f"{key}: {value}", limit + len(str(key)) + 2))
    return fields


def overlay_summary(overlay: Overlay) -> str:
    n = len(overlay.shapes)
    text = f"{n} shape{'' if n == 1 else 's'}"
    return text + (f", {overlay.skipped} skipped" if overlay.skipped else "")


def _compact(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=True, default=str)
    except (TypeError, ValueError):  # a cycle, say
        return repr(value)


def origin(meta: dict[str, Any] | None) -> str | None:
    """Where a mirrored frame comes from ("robot1, jpeg"): the ``_origin`` key a
    ``shmview bridge`` puts into each frame's metadata; None for a local frame."""
    found = meta.get("_origin") if isinstance(meta, dict) else None
    if not isinstance(found, dict) or not isinstance(found.get("host"), str):
        return None
    codec = found.get("codec")
    return f"{found['host']}, {codec}" if isinstance(codec, str) else found["host"]
