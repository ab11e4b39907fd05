"""The Qt window, offscreen, against real streams. Ticks are driven by calling refresh()
where a test must know exactly how many happened, and by the window's timer elsewhere."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PyQt6.QtCore import QPoint, Qt
from PyQt6.QtGui import QColor

from viewer import FrameWriter
from viewer.headless import status_line
from viewer.window import ViewerWindow

H, W = 48, 64
MANUAL = 3_600_000  # a timer that never fires during a test: ticks come from refresh()


@pytest.fixture
def window(qtbot, tmp_path):
    def make(*names, interval_ms=MANUAL, **options):
        win = ViewerWindow(names, interval_ms=interval_ms, snapshot_dir=tmp_path, **options)
        qtbot.addWidget(win)
        with qtbot.waitActive(win):  # keyboard shortcuts go to the active window
            win.show()
            win.activateWindow()
        return win

    return make


def centre_colour(panel) -> QColor:
    img = panel.view.grab().toImage()
    return img.pixelColor(img.width() // 2, img.height() // 2)


def test_status_bar_follows_a_solid_stream(window, qtbot):
    with FrameWriter("follow", (H, W, 3)) as w:
        win = window("follow", interval_ms=20)
        status = win.panels[0].status
        for k in range(3):
            w.write(np.full((H, W, 3), k, np.uint8))
            expected = f"frame {k:,} · sum {k * H * W * 3:,}"
            qtbot.waitUntil(lambda expected=expected: expected in status.text(), timeout=10_000)
        assert "LIVE" in status.text() and "64x48" in status.text() and "3 ch uint8 BGR" in status.text()


def test_window_sum_matches_the_headless_viewer(window):
    with FrameWriter("same", (H, W, 3)) as w:
        w.write(np.random.default_rng(3).integers(0, 256, (H, W, 3), np.uint8))
        win = window("same")
        win.refresh()
        last = win.panels[0].last
        headless_sum = status_line(last).split("sum ")[1].split()[0]
        assert f"sum {headless_sum}" in win.panels[0].status.text()


def test_pause_stops_updates_and_space_resumes(window, qtbot):
    with FrameWriter("pause", (H, W, 3)) as w:
        w.write(np.zeros((H, W, 3), np.uint8))
        win = window("pause")
        qtbot.keyClick(win, Qt.Key.Key_Space)
        assert win.paused
        w.write(np.ones((H, W, 3), np.uint8))
        for _ in range(3):
            win.refresh()
        assert "frame 0 " in win.panels[0].status.text()
        qtbot.keyClick(win, Qt.Key.Key_Space)
        win.refresh()
        assert "frame 1 " in win.panels[0].status.text()


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_ctrl_s_saves_the_frame_at_full_resolution(window, qtbot, tmp_path, dtype):
    frame = np.random.default_rng(5).integers(0, np.iinfo(dtype).max, (H, W, 3), endpoint=True).astype(dtype)
    with FrameWriter("snap", (H, W, 3), dtype) as w:
        w.write(frame)
        win = window("snap")
        win.refresh()
        qtbot.keyClick(win, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    saved = tmp_path / "snap-000000.png"
    np.testing.assert_array_equal(cv2.imread(str(saved), cv2.IMREAD_UNCHANGED), frame)
    assert str(saved) in win.statusBar().currentMessage()


def test_snapshot_of_an_rgb_stream_is_stored_as_a_normal_png(window, tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 255  # red in RGB
    with FrameWriter("rgbsnap", (H, W, 3), pixel_format="RGB") as w:
        w.write(rgb)
        win = window("rgbsnap")
        win.refresh()
        (path,) = win.save_snapshots()
    assert tuple(cv2.imread(str(path))[0, 0]) == (0, 0, 255)  # cv2 reads BGR: red


@pytest.mark.parametrize(("fmt", "pixel"), [("BGR", (0, 0, 255)), ("RGB", (255, 0, 0))])
def test_red_is_red_whatever_the_channel_order(window, fmt, pixel):
    with FrameWriter(f"red{fmt}", (H, W, 3), pixel_format=fmt) as w:
        w.write(np.full((H, W, 3), pixel, np.uint8))
        win = window(f"red{fmt}")
        win.refresh()
        c = centre_colour(win.panels[0])
    assert (c.red(), c.green(), c.blue()) == (255, 0, 0)


@pytest.mark.parametrize(("shape", "dtype"), [((H, W), "uint8"), ((H, W), "uint16"), ((H, W, 3), "float32")])
def test_grey_uint16_and_float_streams_render(window, shape, dtype):
    ramp = np.linspace(0, 250 if dtype == "uint8" else 1000, W, dtype=np.float64)
    frame = np.broadcast_to(ramp, (H, W)).astype(dtype)
    if len(shape) == 3:
        frame = np.repeat(frame[..., None], 3, axis=2)
    with FrameWriter("levels", shape, dtype) as w:
        w.write(frame)
        win = window("levels")
        win.refresh()
        img = win.panels[0].view.grab().toImage()
        y = img.height() // 2
        left, right = img.pixelColor(img.width() // 2 - 20, y), img.pixelColor(img.width() // 2 + 20, y)
    assert right.value() > left.value()  # the ramp shows as a ramp: levels were applied
    assert left.red() == left.green() == left.blue()  # and as grey


def test_fixed_levels_stay_fixed(window):
    with FrameWriter("fixed", (H, W), "uint16") as w:
        w.write(np.full((H, W), 100, np.uint16))
        win = window("fixed", levels=(0.0, 200.0))
        win.refresh()
        first = centre_colour(win.panels[0]).value()
        w.write(np.full((H, W), 100, np.uint16))
        win.refresh()
        assert centre_colour(win.panels[0]).value() == first
    assert 120 < first < 135  # 100 of 0..200 is mid-grey, not auto-stretched


def test_stale_when_producer_stops_and_back_when_it_returns(window):
    w = FrameWriter("comeback", (H, W, 3))
    w.write(np.full((H, W, 3), 9, np.uint8))
    win = window("comeback")
    panel = win.panels[0]
    win.refresh()
    assert "LIVE" in panel.status.text()
    w.close()
    win.refresh()
    assert "STALE" in panel.status.text() and panel.view.image is not None  # last image stays
    with FrameWriter("comeback", (H // 2, W // 2)) as again:
        again.write(np.full((H // 2, W // 2), 1, np.uint8))
        win.refresh()  # one interval is enough to re-attach
        assert "LIVE" in panel.status.text() and "frame 0 " in panel.status.text()
        assert "32x24" in panel.status.text() and "1 ch uint8 GRAY" in panel.status.text()
        assert "comeback restarted as 24x32 uint8, was 48x64x3 uint8" in panel.pixel.text()


def test_waiting_stream_says_so(window):
    win = window("notyet")
    win.refresh()
    assert "WAITING" in win.panels[0].status.text()
    assert "waiting for stream 'notyet'" in win.panels[0].view.overlay


def test_stream_menu_lists_live_streams_and_switches(window):
    with FrameWriter("first", (H, W, 3)) as a, FrameWriter("second", (H, W, 3)) as b:
        a.write(np.zeros((H, W, 3), np.uint8))
        b.write(np.full((H, W, 3), 2, np.uint8))
        win = window("first")
        win.refresh()
        menu = win.menus["&Stream"]
        menu.aboutToShow.emit()
        actions = {a.text(): a for a in menu.actions()}
        assert {"first", "second"} <= set(actions) and actions["first"].isChecked()
        actions["second"].trigger()
        assert win.panels[0].name == "second"
        assert f"sum {2 * H * W * 3:,}" in win.panels[0].status.text()


def test_several_streams_each_with_a_status_line(window):
    with FrameWriter("one", (H, W, 3)) as a, FrameWriter("two", (H, W)) as b:
        a.write(np.ones((H, W, 3), np.uint8))
        b.write(np.ones((H, W), np.uint8))
        win = window("one", "two")
        win.refresh()
        texts = [p.status.text() for p in win.panels]
    assert "one" in texts[0] and f"sum {H * W * 3:,}" in texts[0]
    assert "two" in texts[1] and f"sum {H * W:,}" in texts[1]


def test_pixel_under_the_cursor(window, qtbot):
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:] = (10, 20, 30)
    with FrameWriter("hover", (H, W, 3)) as w:
        w.write(frame)
        win = window("hover")
        win.refresh()
        view = win.panels[0].view
        qtbot.mouseMove(view, QPoint(view.width() // 2, view.height() // 2))
        qtbot.waitUntil(lambda: "B=10 G=20 R=30" in win.panels[0].pixel.text())


def test_zoom_keys(window, qtbot):
    with FrameWriter("zoom", (H, W, 3)) as w:
        w.write(np.zeros((H, W, 3), np.uint8))
        win = window("zoom")
        win.refresh()
        view = win.panels[0].view
        qtbot.keyClick(win, Qt.Key.Key_1)
        assert view.scale() == 1.0
        qtbot.keyClick(win, Qt.Key.Key_Plus)
        assert view.scale() == 1.25
        qtbot.keyClick(win, Qt.Key.Key_Minus)
        assert view.scale() == 1.0
        qtbot.keyClick(win, Qt.Key.Key_F)
        assert view.zoom is None and view.scale() > 1  # fitted: 64x48 blown up


def test_corrupt_block_shows_a_message_not_a_crash(window):
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(create=True, size=4096)
    try:
        shm.buf[:8] = b"garbage!"
        win = window(shm.name)
        win.refresh()
        assert "no shmview header" in win.panels[0].view.overlay
    finally:
        win.close()
        shm.close()
        shm.unlink()


def test_geometry_is_remembered(window):
    first = window("geo")
    first.resize(640, 360)
    first.close()
    second = window("geo")
    assert (second.width(), second.height()) == (640, 360)


def test_a_snapshot_that_cannot_be_written_is_a_message_not_a_crash(qtbot, tmp_path):
    with FrameWriter("nowrite", (H, W, 3)) as w:
        w.write(np.zeros((H, W, 3), np.uint8))
        win = ViewerWindow(["nowrite"], interval_ms=MANUAL, snapshot_dir=tmp_path / "missing")
        qtbot.addWidget(win)
        win.refresh()
        assert win.save_snapshots() == []
        assert "snapshot failed" in win.statusBar().currentMessage()
