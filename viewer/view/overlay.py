"""Overlay shapes and metadata text from a frame's metadata: parsed and checked here, drawn by
the image view (viewer/gui/image_view.py). No Qt.

Coordinates are image pixels, continuous: x to the right, y down, the image's top-left
corner at (0, 0), so pixel (col i, row j) spans [i, i+1) x [j, j+1) and its centre is at
(i + 0.5, j + 0.5), as in Qt. A rect [x, y, w, h] with whole numbers covers exactly the
pixels of the numpy slice [y:y+h, x:x+w], like an ROI.

A shape that is unknown or malformed (a wrong type, a non-finite or absurd number, a bad
colour) is skipped and counted, never raised: metadata is another program's data.

Drawing is bounded (issue 18: 2,000 polygons of 24 points kept a window at 95 % of a core):
a frame's overlay is read in order until the next shape would pass one of the caps below;
that shape and every one after it are only counted (``not_drawn``, shown as "+N not drawn"),
never looked at. The caps were set with bench/bench.py --overlays-only: frame-wide lines
cost about 4 us a segment to draw here, a label about 20 us for its layout.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

DEFAULT_COLOUR = (255, 235, 0)  # a bright yellow: seen on most images
KINDS = ("rect", "line", "point", "polygon", "text")
MAX_SHAPES = 50  # shapes read per frame, malformed ones included
MAX_POINTS = 250  # per frame, all shapes together: a point or text 1, a rect or line 2, a polygon its vertices
MAX_TEXTS = 20  # texts and labels per frame: each costs a text layout (about 20 us here)
MAX_CHARS = 400  # characters of those per frame (each text cut to MAX_TEXT first)
MAX_COORD = 1e6  # far outside any frame (sides are at most 32768); keeps Qt's ints safe
MAX_TEXT = 200  # characters of a text or label drawn
MAX_FIELDS = 40  # metadata keys shown under the panel
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")

Point = tuple[float, float]


class Shape(NamedTuple):
    """One shape to draw. ``points``: rect: its two corners (top-left, bottom-right); line:
    its two ends; point and text: one point; polygon: its vertices. A NamedTuple, not a
    frozen dataclass: made up to MAX_SHAPES times a frame, and it is made twice as fast."""

    kind: str
    points: tuple[Point, ...]
    colour: tuple[int, int, int] = DEFAULT_COLOUR
    label: str | None = None
    text: str | None = None  # what a text shape says


@dataclass(frozen=True)
class Overlay:
    shapes: tuple[Shape, ...] = ()
    skipped: int = 0  # unknown or malformed shapes, not drawn
    not_drawn: int = 0  # shapes past a cap (MAX_SHAPES, MAX_POINTS, MAX_TEXTS, MAX_CHARS), not even read


NO_OVERLAY = Overlay()


class _Bad(Exception):
    """A malformed shape (internal: counted, never raised out of this module)."""


def parse_overlay(meta: object) -> Overlay:
    """The shapes of ``meta["overlay"]``, up to the caps; an empty Overlay when there is none."""
    if not isinstance(meta, Mapping) or "overlay" not in meta:
        return NO_OVERLAY
    items = meta["overlay"]
    if not isinstance(items, list):
        return Overlay((), 1)  # one thing, and not a list of shapes
    shapes: list[Shape] = []
    budget = _Budget()
    for read, item in enumerate(items):
        if not budget.take(item):  # past a cap: this shape and the rest are only counted
            return Overlay(tuple(shapes), read - len(shapes), len(items) - read)
        with contextlib.suppress(_Bad):
            shapes.append(parse_shape(item))
    return Overlay(tuple(shapes), len(items) - len(shapes))


class _Budget:
    """What is left of one frame's caps: shapes, points, texts, characters."""

    def __init__(self) -> None:
        self.left = [MAX_SHAPES, MAX_POINTS, MAX_TEXTS, MAX_CHARS]

    def take(self, item: object) -> bool:
        """Take ``item``'s share; False if it does not fit (and then nothing is taken)."""
        if self.left[0] == 0:
            return False  # before _cost: past MAX_SHAPES nothing is looked at
        cost = (1, *_cost(item))
        if any(c > left for c, left in zip(cost, self.left, strict=True)):
            return False
        self.left = [left - c for c, left in zip(cost, self.left, strict=True)]
        return True


def _cost(item: object) -> tuple[int, int, int]:
    """The points, texts and characters ``item`` would draw, found without reading its
    coordinates (a polygon's length is one call): so the caps bound the work, not just the
    drawing."""
    if not isinstance(item, Mapping):
        return 0, 0, 0
    texts = [t for t in (item.get("text"), item.get("label")) if isinstance(t, str)]
    chars = sum(min(len(t), MAX_TEXT) for t in texts)
    polygon = item.get("polygon")
    if isinstance(polygon, (list, tuple)):
        return len(polygon), len(texts), chars
    return (1 if "point" in item or "text" in item else 2), len(texts), chars


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
    # type(), not isinstance: a bool is not a number here. The range check also refuses NaN
    # (every comparison with it is false) and infinities. Called per coordinate: kept lean.
    if (type(v) is int or type(v) is float) and -MAX_COORD <= v <= MAX_COORD:
        return float(v)
    raise _Bad


def _numbers(v: object, n: int) -> list[float]:
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise _Bad
    return [_number(x) for x in v]


def _point(v: object) -> Point:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise _Bad
    return (_number(v[0]), _number(v[1]))


def _rect(v: object) -> tuple[Point, ...]:
    x, y, w, h = _numbers(v, 4)
    if w < 0 or h < 0:
        raise _Bad
    return ((x, y), (x + w, y + h))


def _line(v: object) -> tuple[Point, ...]:
    x1, y1, x2, y2 = _numbers(v, 4)
    return ((x1, y1), (x2, y2))


def _polygon(v: object) -> tuple[Point, ...]:
    if not isinstance(v, (list, tuple)) or len(v) < 2:  # its length is capped by MAX_POINTS
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


ORIGIN_KEY = "_origin"  # where shmview bridge says a mirrored frame comes from


def meta_fields(meta: object, overlay: Overlay | None = None, *, limit: int = 60) -> list[str]:
    """``key: value`` for the first MAX_FIELDS metadata keys (then "+N more keys"), keys and
    values cut to ``limit`` characters; the overlay as its shape count (and how many were
    skipped or not drawn). Its cost follows what is shown, not the metadata's size."""
    if not isinstance(meta, Mapping):
        return []
    fields = []
    # a mirrored frame's ``_origin`` is shown as "from HOST" in the status: not again as JSON
    hidden = ORIGIN_KEY if isinstance(meta, dict) and origin(meta) is not None else None
    shown = (item for item in meta.items() if item[0] != hidden)
    for key, value in itertools.islice(shown, MAX_FIELDS):
        if key == "overlay":
            value = overlay_summary(overlay if overlay is not None else parse_overlay(meta))
        elif not isinstance(value, str):
            value = _compact(value, limit)
        fields.append(f"{_cut(str(key), limit)}: {_cut(value, limit)}")
    keys = len(meta) - (hidden is not None)
    if keys > MAX_FIELDS:
        fields.append(f"+{keys - MAX_FIELDS:,} more keys")
    return fields


def overlay_summary(overlay: Overlay) -> str:
    n = len(overlay.shapes)
    text = f"{n:,} shape{'' if n == 1 else 's'}"
    text += f", {overlay.skipped:,} skipped" if overlay.skipped else ""
    return text + (f", {not_drawn_text(overlay)}" if overlay.not_drawn else "")


def not_drawn_text(overlay: Overlay) -> str:
    """What the image view says over an overlay cut by the caps ("" when it is whole)."""
    return f"+{overlay.not_drawn:,} not drawn" if overlay.not_drawn else ""


def _compact(value: Any, limit: int) -> str:
    """``value`` as compact JSON, about ``limit`` characters of it: encoded lazily (the
    pure-Python encoder, not the one-shot C one), so a 64 KiB list costs what its start does."""
    encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=True, default=str)
    text = ""
    try:
        for chunk in encoder.iterencode(value, _one_shot=False):
            text += chunk
            if len(text) > limit:
                break
    except (TypeError, ValueError):  # a cycle, say
        return reprlib.repr(value)
    return text


def origin(meta: dict[str, Any] | None) -> str | None:
    """Where a mirrored frame comes from ("robot1, jpeg"): the ``_origin`` key a
    ``shmview bridge`` puts into each frame's metadata; None for a local frame."""
    found = meta.get(ORIGIN_KEY) if isinstance(meta, dict) else None
    if not isinstance(found, dict) or not isinstance(found.get("host"), str):
        return None
    codec = found.get("codec")
    return f"{found['host']}, {codec}" if isinstance(codec, str) else found["host"]
