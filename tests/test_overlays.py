"""Overlay shapes and fields from a frame's metadata (issue 13): the Qt-free parsing, its
caps, and where a mirrored frame comes from."""

from __future__ import annotations

import math

import pytest

from viewer.view.overlay import (
    DEFAULT_COLOUR,
    MAX_CHARS,
    MAX_FIELDS,
    MAX_POINTS,
    MAX_SHAPES,
    MAX_TEXT,
    MAX_TEXTS,
    meta_fields,
    overlay_summary,
    parse_overlay,
)

# ---- overlay shapes --------------------------------------------------------------------------


def test_every_shape_kind_is_read_with_its_points_colour_and_label():
    overlay = parse_overlay(
        {
            "overlay": [
                {"rect": [10, 20, 30, 40], "colour": "#ff0000", "label": "car"},
                {"line": [1, 2, 3.5, 4]},
                {"point": [5, 6], "color": "#00FF80"},
                {"polygon": [[0, 0], [10, 0], [5, 8]]},
                {"text": "hello", "at": [7, 9]},
            ]
        }
    )
    assert overlay.skipped == 0
    rect, line, point, polygon, text = overlay.shapes
    assert (rect.kind, rect.points, rect.colour, rect.label) == ("rect", ((10, 20), (40, 60)), (255, 0, 0), "car")
    assert (line.kind, line.points, line.colour) == ("line", ((1, 2), (3.5, 4)), DEFAULT_COLOUR)
    assert (point.points, point.colour) == (((5, 6),), (0, 255, 128))
    assert polygon.points == ((0, 0), (10, 0), (5, 8))
    assert (text.kind, text.text, text.points) == ("text", "hello", ((7, 9),))


BAD_SHAPES = [
    {"circle": [1, 2, 3]},  # unknown
    {"rect": [1, 2, 3]},  # too few numbers
    {"rect": [1, 2, -3, 4]},  # negative width
    {"rect": [1, 2, 3, float("nan")]},
    {"rect": [1, 2, 3, 1e300]},
    {"rect": ["1", 2, 3, 4]},
    {"rect": [True, 2, 3, 4]},
    {"line": [1, 2, 3, 4], "colour": "red"},  # not #rrggbb
    {"point": [1, 2], "colour": "#12345"},
    {"polygon": [[1, 2]]},  # one vertex
    {"polygon": [[1, 2], [3]]},
    {"text": "no place"},
    {"text": 5, "at": [1, 2]},
    {"rect": [1, 2, 3, 4], "label": 7},
    {"rect": [1, 2, 3, 4], "line": [1, 2, 3, 4]},  # which one?
    "rect",
    None,
    [1, 2, 3, 4],
]


def test_malformed_and_unknown_shapes_are_skipped_and_counted():
    overlay = parse_overlay({"overlay": [*BAD_SHAPES, {"point": [1, 2]}]})
    assert overlay.skipped == len(BAD_SHAPES)
    assert [s.kind for s in overlay.shapes] == ["point"]


@pytest.mark.parametrize(
    ("meta", "skipped"),
    [
        (None, 0),
        ({}, 0),
        ({"exposure": 3}, 0),
        ("text", 0),
        ({"overlay": "rect"}, 1),
        ({"overlay": {"rect": [1, 2, 3, 4]}}, 1),
    ],
)
def test_no_overlay_or_one_that_is_not_a_list(meta, skipped):
    overlay = parse_overlay(meta)
    assert overlay.shapes == () and overlay.skipped == skipped


def test_past_max_shapes_the_rest_is_not_drawn_and_counted():
    overlay = parse_overlay({"overlay": [{"point": [1, 1]}] * (MAX_SHAPES + 5)})
    assert len(overlay.shapes) == MAX_SHAPES and (overlay.skipped, overlay.not_drawn) == (0, 5)
    assert overlay_summary(overlay) == f"{MAX_SHAPES} shapes, +5 not drawn"


def test_malformed_shapes_count_against_the_cap_too():
    overlay = parse_overlay({"overlay": [{"circle": 1}] * MAX_SHAPES + [{"point": [1, 1]}] * 3})
    assert (overlay.shapes, overlay.skipped, overlay.not_drawn) == ((), MAX_SHAPES, 3)
    assert overlay_summary(overlay) == f"0 shapes, {MAX_SHAPES} skipped, +3 not drawn"


def test_the_issues_2000_polygons_of_24_points_are_cut_at_max_points():
    polygon = {"polygon": [[i, i % 7] for i in range(24)]}
    overlay = parse_overlay({"overlay": [polygon] * 2000})
    assert len(overlay.shapes) == MAX_POINTS // 24 and overlay.not_drawn == 2000 - MAX_POINTS // 24
    assert sum(len(s.points) for s in overlay.shapes) <= MAX_POINTS


def test_points_count_one_for_a_point_two_for_a_rect_or_line_and_the_first_misfit_stops_the_rest():
    polygon = {"polygon": [[i, 0] for i in range(MAX_POINTS - 3)]}
    items = [polygon, {"rect": [0, 0, 1, 1]}, {"line": [0, 0, 1, 1]}, {"point": [1, 1]}]
    overlay = parse_overlay({"overlay": items})  # the line needs 2 of the 1 point left: it and the rest wait
    assert [s.kind for s in overlay.shapes] == ["polygon", "rect"] and overlay.not_drawn == 2
    assert [s.kind for s in parse_overlay({"overlay": [polygon, {"point": [1, 1]}] * 2}).shapes] == ["polygon", "point"]


def test_labels_and_texts_are_cut_at_max_texts_and_max_chars():
    overlay = parse_overlay({"overlay": [{"point": [1, 1], "label": "car"}] * (MAX_TEXTS + 3)})
    assert len(overlay.shapes) == MAX_TEXTS and overlay.not_drawn == 3
    label = "x" * 50
    overlay = parse_overlay({"overlay": [{"point": [1, 1], "label": label}] * 40})
    assert len(overlay.shapes) == min(MAX_CHARS // 50, MAX_TEXTS) and overlay.not_drawn == 40 - len(overlay.shapes)
    long_text = {"text": "y" * 10_000, "at": [1, 1]}  # counts MAX_TEXT: it is cut to that
    overlay = parse_overlay({"overlay": [long_text] * 40})
    assert len(overlay.shapes) == MAX_CHARS // MAX_TEXT and overlay.shapes[0].text == "y" * (MAX_TEXT - 1) + "…"


def test_one_polygon_bigger_than_the_cap_is_not_drawn_not_skipped():
    huge = {"polygon": [[0, 0]] * (MAX_POINTS + 1)}
    overlay = parse_overlay({"overlay": [{"point": [1, 1]}, huge, {"point": [2, 2]}]})
    assert [s.points for s in overlay.shapes] == [((1, 1),)] and (overlay.skipped, overlay.not_drawn) == (0, 2)


class Untouchable(dict):
    """A shape the parser must not look at: any look inside it fails the test."""

    def _touched(self, *args: object) -> None:
        raise AssertionError("the parser looked past its cap")

    __getitem__ = get = __contains__ = keys = items = values = __iter__ = _touched


class Sealed(list):
    """A polygon whose length may be asked, but not its vertices."""

    def __iter__(self):
        raise AssertionError("the parser read the vertices of a polygon past its cap")

    __getitem__ = __iter__


def test_the_parser_does_not_look_past_the_caps():
    """Parsing costs what is drawn, however much metadata came: the shapes after the cap,
    and the vertices of a polygon that passes it, are counted without being read."""
    past_shapes = [{"point": [1, 1]}] * MAX_SHAPES + [Untouchable()] * 10_000
    overlay = parse_overlay({"overlay": past_shapes})
    assert len(overlay.shapes) == MAX_SHAPES and overlay.not_drawn == 10_000
    past_points = [{"point": [1, 1]}, {"polygon": Sealed([[0, 0]] * MAX_POINTS)}, *[Untouchable()] * 10]
    overlay = parse_overlay({"overlay": past_points})
    assert len(overlay.shapes) == 1 and overlay.not_drawn == 11
    assert overlay_summary(overlay) == "1 shape, +11 not drawn"


def test_metadata_fields_cost_what_they_show():
    class Exploding:
        def __str__(self) -> str:
            raise AssertionError("encoded a value past what the line shows")

    fields = meta_fields({"boxes": [1] * 100 + [Exploding()], **{f"k{i}": i for i in range(2 * MAX_FIELDS)}})
    assert fields[0].startswith("boxes: [1,1,1,") and fields[0].endswith("…")
    assert len(fields) == MAX_FIELDS + 1 and fields[-1] == f"+{MAX_FIELDS + 1:,} more keys"
    assert meta_fields({"k" * 500: 1})[0] == "k" * 59 + "…: 1"


def test_metadata_as_key_value_fields_long_values_cut():
    fields = meta_fields(
        {
            "exposure_ms": 12.5,
            "camera": "cam0",
            "overlay": [{"point": [1, 2]}, {"bad": 1}],
            "matrix": list(range(100)),
            "nan": math.nan,
        }
    )
    assert fields[:3] == ["exposure_ms: 12.5", "camera: cam0", "overlay: 1 shape, 1 skipped"]
    assert fields[3].startswith("matrix: [0,1,2,") and fields[3].endswith("…") and len(fields[3]) <= 70
    assert fields[4] == "nan: NaN"
    assert meta_fields(None) == [] and meta_fields([1, 2]) == []


def test_a_mirrored_frame_says_where_it_comes_from():
    from viewer.view.overlay import origin

    assert origin({"_origin": {"host": "robot1", "key": "shmview/robot1/cam0", "codec": "jpeg"}}) == "robot1, jpeg"
    assert origin({"_origin": {"host": "robot1"}}) == "robot1"
    assert origin({"_origin": "forged"}) is None and origin({"a": 1}) is None and origin(None) is None
