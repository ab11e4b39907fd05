"""Fitting frames to a stream (producers/convert.py): channel order, grey, resize and
letterbox, dtype."""

from __future__ import annotations

import math

import numpy as np
import pytest

from producers.convert import Conformer, to_dtype
from viewer import SourceError


@pytest.mark.parametrize(
    ("value", "dtype", "expected"),
    [
        (0.5, "uint8", 128),
        (1.0, "uint16", 65535),
        (2.0, "uint8", 255),
        (math.nan, "uint8", 0),
        (4000, "uint8", 16),
        (255, "float32", 1.0),
        (65535, "float64", 1.0),
    ],
)
def test_one_dtype_convention_for_frames_of_another_dtype(value, dtype, expected):
    source_dtype = "uint16" if value == 4000 or value == 65535 else ("uint8" if value == 255 else "float32")
    frame = np.full((2, 2), value, source_dtype)
    converted = to_dtype(frame, dtype)
    assert converted.dtype == dtype and converted[0, 0] == pytest.approx(expected)


# Conversion -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "order", "expected"),
    [
        (np.full((4, 4), 7, np.uint8), "BGR", (7, 7, 7)),
        (np.full((4, 4, 1), 7, np.uint8), "BGR", (7, 7, 7)),
        (np.full((4, 4, 3), (1, 2, 3), np.uint8), "BGR", (1, 2, 3)),
        (np.full((4, 4, 4), (1, 2, 3, 9), np.uint8), "BGR", (1, 2, 3)),
        (np.full((4, 4, 3), (3, 2, 1), np.uint8), "RGB", (1, 2, 3)),
        (np.full((4, 4, 3), (257, 514, 771), np.uint16), "BGR", (1, 2, 3)),
    ],
    ids=["grey", "grey1", "bgr", "bgra", "rgb", "uint16-into-uint8"],
)
def test_conversion_to_bgr(frame, order, expected):
    out = Conformer(4, 4, "BGR", order)(frame)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8 and tuple(out[0, 0]) == expected


def test_conversion_to_grey_and_resize_and_letterbox():
    bgr = np.full((24, 32, 3), (255, 255, 255), np.uint8)
    assert Conformer(48, 64, "GRAY")(bgr).shape == (48, 64)
    boxed = Conformer(64, 64, "BGR", letterbox=True)(bgr)  # 4:3 into a square: bars top and bottom
    assert boxed.shape == (64, 64, 3) and boxed[0].max() == 0 and boxed[32].min() == 255
    with pytest.raises(SourceError, match="cam9 gave int32 frames"):
        Conformer(4, 4, source="cam9")(np.zeros((4, 4), np.int32))
    with pytest.raises(SourceError, match="cam9 gave a list, not a numpy array"):
        Conformer(4, 4, source="cam9")([[1, 2], [3, 4]])


@pytest.mark.parametrize("dtype", ["uint16", "float32", "float64"])
def test_conversion_keeps_the_first_frames_dtype(dtype):
    first = np.full((24, 24), 4095, dtype)  # 12 bits in uint16: must not turn near-black
    fit = Conformer.for_first(first, (64, 48), 3)
    out = fit(first)
    assert fit.dtype == dtype and out.dtype == dtype and out.shape == (48, 64, 3)
    assert out[24, 32].tolist() == [4095, 4095, 4095] and out[0, 0].tolist() == [0, 0, 0]  # letterboxed
    assert fit(np.full((24, 24, 3), 255, np.uint8)).dtype == dtype
