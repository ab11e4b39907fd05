"""The one status formatter (viewer/view/status.py): the window's status line and the text
viewer's line say the same words, each in its own order."""

from __future__ import annotations

import numpy as np
import pytest

from viewer import FrameWriter
from viewer.errors import ShmviewError
from viewer.gui.panel import status_fields
from viewer.stream import Frame, StreamInfo
from viewer.stream.frames import ERROR, LIVE, STALE
from viewer.view.headless import status_line
from viewer.view.monitor import Status
from viewer.view.overlay import meta_fields
from viewer.view.status import NO_REASON, reason, status_words, waiting_text

H, W = 48, 64


def look(image: np.ndarray, *, index: int | None = 1234, meta: dict | None = None, **changes: object) -> Status:
    pixel_format = "GRAY" if image.ndim == 2 else "BGR"
    info = StreamInfo("psm_x", image.shape, image.dtype.name, pixel_format, 3, 42, 1)
    total = float(image.sum(dtype=np.float64)) if image.dtype.kind == "f" else int(image.sum())
    fields: dict = dict(info=info, frame=Frame(image, index, 5, meta), sum=total, fps=30.0, latency_ms=0.4)
    return Status("cam0", LIVE, **(fields | changes))


def panel_line(s: Status, display_fps: float | None = None, *, paused: bool = False) -> str:
    first, rest = status_fields(s, display_fps, paused=paused)
    return " · ".join(first + rest)


def test_both_lines_say_the_same_words_in_their_own_order():
    s = look(np.full((H, W, 3), 2, np.uint8))
    assert status_line(s) == f"cam0  live  frame 1234  sum {2 * H * W * 3:,}  64x48 BGR uint8  30.0 fps  0.4 ms"
    first, rest = status_fields(s, 12.5)
    assert first == ["LIVE", "cam0", "frame 1234", f"sum {2 * H * W * 3:,}", "30.0 fps", "shown 12.5 fps"]
    assert rest == ["64x48 BGR uint8", "0.4 ms"]  # the size from the one describe()


def test_paused_and_before_any_frame():
    s = look(np.zeros((H, W), np.uint8))
    assert panel_line(s, 0.0, paused=True).startswith("LIVE · PAUSED · cam0 · frame 1234 · sum 0 · ")
    waiting = Status("cam0", "waiting")
    assert status_line(waiting) == "cam0  waiting" and panel_line(waiting) == "WAITING · cam0"


def test_a_mirrored_stream_says_where_from_and_that_its_latency_is_end_to_end():
    origin = {"_origin": {"host": "robot", "key": "shmview/robot/cam0", "codec": "jpeg", "index": 7}}
    s = look(np.zeros((H, W, 3), np.uint8), meta=origin, latency_ms=12.0)
    assert status_line(s).endswith("  end to end 12.0 ms  from robot, jpeg")
    assert panel_line(s).endswith(" · end to end 12.0 ms · from robot, jpeg")


def test_a_raw_block_has_no_frame_index():
    s = look(np.zeros((H, W), np.uint8), index=None, fps=None)
    assert "  frame -  sum 0  " in status_line(s)
    assert " · frame - · sum 0 · " in panel_line(s)


def test_a_float_frame_with_nan_and_infinity_counts_them_in_both():
    image = np.ones((H, W), np.float32)
    image[0, :3] = [np.nan, np.inf, -np.inf]
    s = look(image)
    assert "  sum nan (3 non-finite)  " in status_line(s)
    assert " · sum nan (3 non-finite) · " in panel_line(s)
    assert "sum 3,072  " in status_line(look(np.ones((H, W), np.float32)))  # finite: nothing counted


def test_float_sums_have_thousands_separators_like_integer_ones():
    big = np.full((H, W), 1000.25, np.float32)
    assert "  sum 3,072,768  " in status_line(look(big))
    assert " · sum 0.000768 · " in panel_line(look(np.full((H, W), 2.5e-7, np.float32)))
    assert "  sum 1.23457e+18  " in status_line(look(np.full((H, W), 1.23456789e18 / (H * W), np.float64)))


def test_the_error_state_is_the_reason_alone_in_both():
    s = Status("cam0", ERROR, error="corrupt header: slot count 0")
    assert status_line(s) == "cam0  error  corrupt header: slot count 0"
    assert panel_line(s) == "ERROR · cam0 · corrupt header: slot count 0"
    assert status_words(Status("cam0", ERROR)).error == NO_REASON
    assert status_words(Status("cam0", STALE, error="ignored")).error is None


@pytest.mark.parametrize(
    ("exc", "said"),
    [
        (ShmviewError("stream 'x' is gone"), "stream 'x' is gone"),
        (OSError(5, "Input/output error"), "OSError: [Errno 5] Input/output error"),
        (ValueError("first line\nsecond line"), "ValueError: first line"),
        (ShmviewError(""), "ShmviewError"),
        (KeyError(), "KeyError"),
    ],
)
def test_reason_is_one_line(exc, said):
    assert reason(exc) == said


def test_a_mirrored_frame_shows_its_origin_once_as_from_host_not_as_a_metadata_line():
    meta = {"_origin": {"host": "robot1", "codec": "jpeg", "index": 7}, "exposure": 3}
    s = look(np.zeros((H, W), np.uint8), meta=meta)
    assert "from robot1, jpeg" in status_line(s)
    assert meta_fields(meta) == ["exposure: 3"]
    assert meta_fields({"_origin": "not a mirror's"}) == ["_origin: not a mirror's"]  # not ours: shown


def test_a_viewer_waiting_says_after_a_few_seconds_what_is_live_instead(tmp_path):
    assert waiting_text("nope", 0.5) == "waiting for stream 'nope'…"
    assert waiting_text("nope", 3.0) == "waiting for stream 'nope'…\nno live streams; see shmview list"
    with FrameWriter("cam0", (4, 4)), FrameWriter("cam1", (4, 4)):
        assert waiting_text("nope", 3.0).endswith("\nlive streams: cam0, cam1")
    assert "no block 'psm_x' in /dev/shm yet" in waiting_text("psm_x", 3.0, block=True)
