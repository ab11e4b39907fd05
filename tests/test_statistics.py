"""ROI statistics and histograms (issue 13), checked against numpy, and `view --roi` in
headless lines."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from tests.support.helpers import cli, json_lines
from viewer import FrameWriter
from viewer.arguments import roi as parse_roi
from viewer.view.histogram import histogram, row_step
from viewer.view.statistics import clip_roi, roi_dict, roi_stats, roi_text

# ---- ROI statistics against numpy -------------------------------------------------------------


def numpy_stats(region: np.ndarray) -> list[tuple]:
    region = region.reshape(region.shape[0], region.shape[1], -1)
    out = []
    for c in range(region.shape[2]):
        v = region[..., c].astype(np.float64)
        total = int(region[..., c].sum(dtype=np.uint64)) if region.dtype.kind != "f" else float(v.sum())
        out.append((v.min(), v.max(), v.mean(), v.std(), total))
    return out


@pytest.mark.parametrize(
    ("shape", "dtype", "fmt"),
    [
        ((60, 80, 3), "uint8", "BGR"),
        ((60, 80), "uint16", "GRAY"),
        ((60, 80, 4), "uint8", "RGBA"),
        ((60, 80, 3), "float32", "BGR"),
        ((60, 80), "float64", "GRAY"),
    ],
)
def test_roi_statistics_match_numpy_on_the_same_region(shape, dtype, fmt):
    rng = np.random.default_rng(7)
    image = (
        rng.integers(0, 65535 if dtype == "uint16" else 255, shape) if dtype[0] == "u" else rng.normal(100, 30, shape)
    ).astype(dtype)
    stats = roi_stats(image, (11, 5, 37, 23), fmt)
    assert stats.roi == (11, 5, 37, 23)
    assert [c.name for c in stats.channels] == list("I" if fmt == "GRAY" else fmt)
    for got, (lo, hi, mean, std, total) in zip(stats.channels, numpy_stats(image[5:28, 11:48]), strict=True):
        assert (got.min, got.max) == (lo, hi)
        assert got.mean == pytest.approx(mean, rel=1e-12) and got.std == pytest.approx(std, rel=1e-9)
        if dtype[0] == "u":
            assert isinstance(got.sum, int) and got.sum == total  # exact
        else:
            assert got.sum == pytest.approx(total, rel=1e-12)


def test_roi_is_clipped_to_the_frame_and_outside_is_empty():
    image = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    assert clip_roi((25, 15, 10, 10), image.shape) == (25, 15, 5, 5)
    stats = roi_stats(image, (25, 15, 10, 10), "GRAY")
    assert stats.channels[0].sum == int(image[15:, 25:].sum())
    outside = roi_stats(image, (40, 40, 5, 5), "GRAY")
    assert outside.roi[2:] == (0, 0) and outside.channels == ()
    assert roi_text(outside) == ["roi 30,20,0x0 (outside the frame)"]


def test_one_nan_in_a_float_roi_is_left_out_and_counted_not_null_everywhere():
    image = np.ones((10, 10), np.float32)
    image[2, 2] = np.nan
    d = roi_dict(roi_stats(image, (0, 0, 5, 5), "GRAY"))
    assert d["channels"][0] == {
        "name": "I",
        "min": 1.0,
        "max": 1.0,
        "mean": 1.0,
        "std": 0.0,
        "sum": 24.0,
        "nonfinite": 1,
    }
    json.dumps(d, allow_nan=False)
    assert roi_text(roi_stats(image, (0, 0, 5, 5), "GRAY"))[1] == "I min 1 max 1 mean 1 std 0 sum 24 (1 non-finite)"
    clean = roi_dict(roi_stats(image, (5, 5, 5, 5), "GRAY"))["channels"][0]
    assert clean == {"name": "I", "min": 1.0, "max": 1.0, "mean": 1.0, "std": 0.0, "sum": 25.0, "nonfinite": 0}


def test_a_float_roi_with_infinities_has_no_warning_and_numbers_of_the_finite_rest():
    image = np.ones((10, 10, 3), np.float32)
    image[1, 1, 0], image[2, 2, 0] = np.inf, -np.inf
    image[3, 3, 0] = 3.0
    channel = roi_dict(roi_stats(image, (0, 0, 5, 5), "BGR"))["channels"][0]  # warnings are errors here
    finite = np.delete(image[:5, :5, 0].ravel(), [6, 12]).astype(np.float64)
    assert (channel["min"], channel["max"], channel["nonfinite"]) == (1.0, 3.0, 2)
    assert channel["mean"] == pytest.approx(finite.mean()) and channel["std"] == pytest.approx(finite.std())
    nothing = np.full((4, 4), np.nan, np.float32)
    only_nan = roi_dict(roi_stats(nothing, (0, 0, 4, 4), "GRAY"))["channels"][0]
    assert only_nan["mean"] is None and only_nan["nonfinite"] == 16


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_a_flat_integer_roi_has_std_0_and_an_exact_mean(dtype):
    # cv2.meanStdDev said std 2.697e-06 and mean 221.99999999999997 on this
    image = np.full((480, 640, 3), 222, dtype)
    c = roi_stats(image, (13, 17, 301, 207), "BGR").channels[0]
    assert (c.mean, c.std) == (222.0, 0.0)
    assert json.loads(json.dumps(roi_dict(roi_stats(image, (13, 17, 301, 207), "BGR"))))["channels"][0]["mean"] == 222
    rng = np.random.default_rng(3)
    noisy = rng.integers(0, 65535 if dtype == "uint16" else 255, (97, 89), dtype=dtype)
    c = roi_stats(noisy, (0, 0, 89, 97), "GRAY").channels[0]
    wide = noisy.astype(np.float64)
    assert c.mean == pytest.approx(wide.mean(), rel=1e-15) and c.std == pytest.approx(wide.std(), rel=1e-12)


def test_roi_means_and_float_sums_have_thousands_separators():
    image = np.full((100, 100), 12345.5, np.float32)
    line = roi_text(roi_stats(image, (0, 0, 100, 100), "GRAY"))[1]
    assert line == "I min 12,345.5 max 12,345.5 mean 12,346 std 0 sum 123,455,000"
    wide = np.full((200, 200), 60000, np.uint16)
    assert "mean 60,000 std 0 sum 2,400,000,000" in roi_text(roi_stats(wide, (0, 0, 200, 200), "GRAY"))[1]


def test_roi_text_reads_like_the_issue():
    image = np.zeros((50, 60, 3), np.uint8)
    image[10:50, 10:60] = (0, 128, 255)
    lines = roi_text(roi_stats(image, (10, 10, 50, 40), "BGR"))
    assert lines[0] == "roi 10,10,50x40"
    assert lines[3] == "R min 255 max 255 mean 255 std 0 sum 510,000"


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "-1,0,5,5", "0,0,0,5", "0,0,5,-5", "1.5,0,5,5"])
def test_bad_roi_arguments_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="roi"):
        parse_roi(text)


# ---- histograms against numpy -----------------------------------------------------------------


def test_uint8_histogram_is_one_bin_per_value_per_channel():
    image = np.random.default_rng(1).integers(0, 256, (120, 90, 3), np.uint8)
    h = histogram(image, "BGR")
    assert (h.lo, h.hi, h.names, h.row_step) == (0, 256, "BGR", 1)
    for c in range(3):
        np.testing.assert_array_equal(h.counts[c], np.bincount(image[..., c].ravel(), minlength=256))


def test_uint16_histogram_spans_the_data_and_the_levels():
    image = np.random.default_rng(2).integers(1000, 3000, (100, 100), np.uint16)
    h = histogram(image, "GRAY", levels=(0.0, 4095.0))
    assert (h.lo, h.hi) == (0.0, 4096.0)  # the levels reach further than the data
    expected, _ = np.histogram(image, bins=256, range=(h.lo, h.hi))
    np.testing.assert_array_equal(h.counts[0], expected)
    assert h.bin_of(4095) < 256 and h.bin_of(0) == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_histogram_matches_numpy_and_leaves_out_nan_and_inf(dtype):
    image = np.random.default_rng(3).normal(0.5, 0.2, (80, 70, 3)).astype(dtype)
    image[0, 0, 0], image[1, 1, 1] = np.nan, np.inf
    h = histogram(image, "RGB", levels=(0.0, 1.0))
    for c in range(3):
        values = image[..., c][np.isfinite(image[..., c])].astype(np.float32)
        expected, _ = np.histogram(values, bins=256, range=(h.lo, h.hi))
        np.testing.assert_array_equal(h.counts[c], expected)
    assert h.counts[0].sum() == 80 * 70 - 1


def test_float64_beyond_float32_is_left_out_without_a_warning():
    image = np.zeros((10, 10), np.float64)
    image[0, 0] = 1e300
    h = histogram(image, "GRAY")
    assert h.counts[0].sum() == 99 and (h.lo, h.hi) == (0.0, pytest.approx(1.0, abs=1e-5))


def test_a_big_frame_is_histogrammed_on_every_kth_row():
    image = np.random.default_rng(4).integers(0, 4096, (1080, 1920, 3), np.uint16)
    h = histogram(image, "BGR", levels=(0.0, 4095.0))
    assert h.row_step == row_step(image) > 1
    expected, _ = np.histogram(image[:: h.row_step, :, 1], bins=256, range=(h.lo, h.hi))
    np.testing.assert_array_equal(h.counts[1], expected)


# ---- view --roi in headless lines ---------------------------------------------------------------


def test_view_roi_prints_the_same_statistics_as_numpy_in_text_and_json():
    frame = np.random.default_rng(5).integers(0, 256, (48, 64, 3), np.uint8)
    with FrameWriter("roicli", frame.shape) as w:
        w.write(frame)
        as_json = cli("view", "roicli", "--roi", "50,40,30,30", "--json", "--count", "1")
        as_text = cli("view", "roicli", "--roi", "50,40,30,30", "--headless", "--count", "1")
    assert as_json.returncode == 0, as_json.stderr
    roi = json_lines(as_json.stdout)[0]["roi"]
    assert (roi["x"], roi["y"], roi["w"], roi["h"]) == (50, 40, 14, 8)  # clipped to the frame
    for got, (lo, hi, mean, std, total) in zip(roi["channels"], numpy_stats(frame[40:, 50:]), strict=True):
        assert (got["min"], got["max"], got["sum"]) == (lo, hi, total)
        assert got["mean"] == pytest.approx(mean) and got["std"] == pytest.approx(std)
    b = roi["channels"][0]
    assert f"roi 50,40,14x8  B min {b['min']} max {b['max']} " in as_text.stdout
    assert f"sum {b['sum']:,}" in as_text.stdout


def test_view_without_roi_has_no_roi_key_and_a_bad_roi_is_a_usage_error():
    with FrameWriter("noroi", (8, 8)) as w:
        w.write(np.zeros((8, 8), np.uint8))
        assert "roi" not in json_lines(cli("view", "noroi", "--json", "--count", "1").stdout)[0]
        bad = cli("view", "noroi", "--roi", "1,2,3", "--json", "--count", "1")
    assert bad.returncode == 2 and "--roi" in bad.stderr
