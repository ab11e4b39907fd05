"""Pure pixel functions: exact sums, display conversion, levels."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.view.imaging import AutoLevels, display_image, pixel_sum, to_uint8


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("shape", [(480, 640, 3), (480, 640), (31, 17, 1), (100, 100, 4), (1080, 1920, 3)], ids=str)
def test_pixel_sum_is_exact(shape, dtype):
    image = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    total = pixel_sum(image)
    assert type(total) is int and total == int(image.sum(dtype=np.uint64))


def test_pixel_sum_of_the_largest_uint16_frame_fits_float64_exactly():
    image = np.full((4096, 4096, 4), 65535, np.uint16)  # the bound is per channel, far below 2**53
    assert pixel_sum(image) == 65535 * 4096 * 4096 * 4


def test_pixel_sum_of_float_frames_is_a_float():
    assert pixel_sum(np.full((3, 3), 0.5, np.float32)) == 4.5


@pytest.mark.parametrize(("fmt", "pixel"), [("BGR", (0, 0, 255)), ("RGB", (255, 0, 0)), ("RGBA", (255, 0, 0, 255))])
def test_colour_frames_become_bgra_for_qt_rgb32(fmt, pixel):
    image = np.full((2, 2, len(pixel)), pixel, np.uint8)
    out, qformat = display_image(image, fmt)
    assert qformat == "RGB32" and tuple(out[0, 0, :3]) == (0, 0, 255)  # B, G, R: red


def test_display_buffer_is_reused():
    image = np.zeros((4, 4, 3), np.uint8)
    first, _ = display_image(image, "BGR")
    second, _ = display_image(image, "BGR", first)
    assert second is first


def test_to_uint8_maps_levels_and_clips():
    assert to_uint8(np.array([-5.0, 0.0, 50.0, 100.0, 1e9, np.nan]), 0, 100).tolist() == [0, 0, 127, 255, 255, 0]


def test_auto_levels_ignore_noise_but_follow_real_changes():
    rng = np.random.default_rng(0)
    levels = AutoLevels()
    first = levels.update(rng.normal(1000, 50, (480, 640)))
    for _ in range(20):  # same scene, new noise: the levels must not move
        assert levels.update(rng.normal(1000, 50, (480, 640))) == first
    brighter = levels.update(rng.normal(3000, 50, (480, 640)))
    assert brighter[0] > first[1]  # the scene changed: the levels followed
