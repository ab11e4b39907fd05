"""The Qt window, offscreen, against real streams. Ticks are driven by calling refresh()
where a test must know exactly how many happened, and by the window's timer elsewhere."""

from __future__ import annotations

from contextlib import contextmanager

import cv2
import numpy as np
import pytest
from PyQt6.QtCore import QPoint, Qt
from PyQt6.QtGui import QColor

from viewer import FrameWriter
from viewer.gui.window import ViewerWindow
from viewer.view.headless import status_line

H, W = 48, 64
MANUAL = 3600.0  # seconds: a timer that never fires during a test: ticks come from refresh()


@pytest.fixture
def window(qtbot, tmp_path):
    def make(*names, interval_s=MANUAL, **options):
        win = ViewerWindow(names, interval_s=interval_s, snapshot_dir=tmp_path, **options)
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
        win = window("follow", interval_s=0.02)
        status = win.panels[0].status
        for k in range(3):
            w.write(np.full((H, W, 3), k, np.uint8))
            expected = f"frame {k:,} · sum {k * H * W * 3:,}"
            qtbot.waitUntil(lambda expected=expected: expected in status.text(), timeout=10_000)
        assert "LIVE" in status.text() and "64x48 BGR uint8" in status.text()


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
        assert "32x24 GRAY uint8" in panel.status.text()
        assert "comeback restarted as 32x24 GRAY uint8, was 64x48 BGR uint8" in panel.pixel.text()


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
        win = window(shm.name, block=True)
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


def test_snapshot_into_a_missing_folder_creates_it(window, tmp_path):
    with FrameWriter("mkdir", (H, W, 3)) as w:
        w.write(np.zeros((H, W, 3), np.uint8))
        win = window("mkdir")
        win.snapshot_dir = tmp_path / "not" / "yet"
        win.refresh()
        (path,) = win.save_snapshots()
    assert path == tmp_path / "not" / "yet" / "mkdir-000000.png" and path.is_file()


def test_a_snapshot_that_cannot_be_written_says_why(window, tmp_path):
    (tmp_path / "a-file").write_text("")
    with FrameWriter("nowrite", (H, W, 3)) as w:
        w.write(np.zeros((H, W, 3), np.uint8))
        win = window("nowrite")
        win.snapshot_dir = tmp_path / "a-file" / "sub"  # a folder inside a file: even root cannot
        win.refresh()
        assert win.save_snapshots() == []
        message = win.statusBar().currentMessage()
    assert "snapshot failed" in message and "Not a directory" in message


# ---- one bad stream never takes the window down (issue 9) ----------------------------------


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), ValueError("bad header"), OverflowError("huge")])
def test_a_panel_whose_poll_raises_shows_the_error_and_the_others_go_on(window, error):
    with FrameWriter("good", (H, W, 3)) as w, FrameWriter("bad", (H, W, 3)) as b:
        b.write(np.zeros((H, W, 3), np.uint8))
        win = window("good", "bad")
        good, bad = win.panels

        def broken():
            raise error

        bad.monitor.poll = broken
        for k in range(3):
            w.write(np.full((H, W, 3), k, np.uint8))
            win.refresh()  # the window's slot: it must not raise
            assert f"frame {k:,} · sum {k * H * W * 3:,}" in good.status.text()
        assert bad.status.text().startswith("ERROR · bad · ")
        assert str(error.args[-1]) in bad.status.text() and str(error.args[-1]) in bad.view.overlay


def test_a_corrupt_stream_next_to_a_good_one(window):
    with FrameWriter("fine", (H, W, 3)) as w, FrameWriter("mangled", (H, W, 3)) as bad:
        with open(f"/dev/shm/{bad.block_name.lstrip('/')}", "r+b") as block:
            block.write(b"garbage!")  # over the header's magic: a foreign or corrupt block
        win = window("fine", "mangled")
        for k in range(2):
            w.write(np.full((H, W, 3), k, np.uint8))
            win.refresh()
            assert f"frame {k:,}" in win.panels[0].status.text() and "LIVE" in win.panels[0].status.text()
        assert win.panels[1].status.text().startswith("ERROR · mangled")
        assert "header" in win.panels[1].view.overlay
        win.close()


def test_the_monitors_error_state_is_shown_like_a_failure(window):
    import dataclasses
    from types import SimpleNamespace

    from viewer.gui.panel import ERROR
    from viewer.view.monitor import Status

    def error_status():  # the contract's Status(error=...); built by hand before the core has it
        if "error" in {f.name for f in dataclasses.fields(Status)}:
            return Status("errs", ERROR, error="corrupt header: slot count 0")  # type: ignore[call-arg]
        return SimpleNamespace(
            stream="errs",
            state=ERROR,
            error="corrupt header: slot count 0",
            info=None,
            frame=None,
            new=False,
            sum=None,
            fps=None,
            latency_ms=None,
        )

    with FrameWriter("good2", (H, W, 3)) as w:
        win = window("good2", "errs")
        win.panels[1].monitor.poll = error_status
        w.write(np.full((H, W, 3), 1, np.uint8))
        win.refresh()
    assert "LIVE" in win.panels[0].status.text()
    assert win.panels[1].status.text() == "ERROR · errs · corrupt header: slot count 0"
    assert "corrupt header" in win.panels[1].view.overlay


def test_an_unreadable_registry_is_a_disabled_menu_entry(window, tmp_path, monkeypatch):
    win = window("nothing")
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("SHMVIEW_REGISTRY", str(tmp_path / "not-a-folder"))
    menu = win.menus["&Stream"]
    menu.aboutToShow.emit()
    (entry,) = menu.actions()
    assert entry.text().startswith("cannot list streams: ") and "not-a-folder" in entry.text()
    assert not entry.isEnabled()


# ---- the status line, pause, zoom (issue 10) -----------------------------------------------


@pytest.mark.parametrize("count", [4, 6])
def test_state_and_sum_stay_visible_with_many_panels_in_a_small_window(window, count):
    names = [f"cam{i}" for i in range(count)]
    writers = [FrameWriter(n, (480, 640, 3)) for n in names]
    try:
        for w in writers:
            w.write(np.full((480, 640, 3), 200, np.uint8))
        win = window(*names)
        win.resize(400, 300)  # the panels' minimum sizes win: as small as the window goes
        win.refresh()
        win.refresh()
        for panel in win.panels:
            shown = "\n".join(panel.status.shown_lines())
            assert shown.startswith("LIVE · cam"), shown
            assert f"sum {200 * 480 * 640 * 3:,}" in shown, shown
            assert panel.status.toolTip() == panel.status.text()  # the whole line, hovering
    finally:
        for w in writers:
            w.close()


def test_pause_freezes_the_image_but_not_the_health(window, qtbot):
    with FrameWriter("frozen", (H, W)) as w:  # grey: the image is drawn straight from the frame buffer
        w.write(np.full((H, W), 0, np.uint8))
        win = window("frozen")
        win.refresh()
        panel = win.panels[0]
        qtbot.keyClick(win, Qt.Key.Key_Space)
        for k in range(1, 4):  # the monitor takes new frames into the buffers it reuses
            w.write(np.full((H, W), 50 * k, np.uint8))
            win.refresh()
        assert panel.last.frame.index == 3  # still polling
        text = panel.status.text()
        assert text.startswith("LIVE · PAUSED · frozen · frame 0 · sum 0 · ") and win.paused_label.isVisible()
        assert centre_colour(panel).value() == 0 and int(panel.on_screen.frame.image.max()) == 0
    win.refresh()  # its producer is gone
    text = panel.status.text()
    assert text.startswith("STALE · PAUSED · frozen · frame 0 · sum 0 · 0.0 fps · shown 0.0 fps"), text
    qtbot.keyClick(win, Qt.Key.Key_Space)
    assert f"frame 3 · sum {150 * H * W:,}" in panel.status.text() and not win.paused_label.isVisible()
    assert int(panel.on_screen.frame.image.max()) == 150 and centre_colour(panel).value() > 0  # dimmed: stale


def test_a_stale_stream_shows_0_fps_at_once(window):
    w = FrameWriter("fading", (H, W, 3))
    win = window("fading")
    for k in range(10):
        w.write(np.full((H, W, 3), k, np.uint8))
        win.refresh()
    assert " 0.0 fps" not in win.panels[0].status.text()
    w.close()
    win.refresh()
    text = win.panels[0].status.text()
    assert "STALE" in text and "· 0.0 fps · shown 0.0 fps" in text


@contextmanager
def two_black_panels(window, first: str, second: str):
    """A window on two live black streams, refreshed once."""
    with FrameWriter(first, (H, W, 3)) as a, FrameWriter(second, (H, W, 3)) as b:
        a.write(np.zeros((H, W, 3), np.uint8))
        b.write(np.zeros((H, W, 3), np.uint8))
        win = window(first, second)
        win.refresh()
        yield win


def test_zoom_acts_on_the_panel_under_the_mouse_and_shows_its_percent(window, qtbot):
    with two_black_panels(window, "left", "right") as win:
        left, right = win.panels
        qtbot.mouseMove(right.view, QPoint(10, 10))
        qtbot.waitUntil(lambda: win.target_panel() is right)
        qtbot.keyClick(win, Qt.Key.Key_1)
        qtbot.keyClick(win, Qt.Key.Key_Plus)
        assert right.view.scale() == 1.25 and left.view.zoom is None
        assert right.pixel.text().startswith("125 %") and left.pixel.text().startswith("fit ")
        qtbot.keyClick(win, Qt.Key.Key_F)
        assert right.view.zoom is None
        percent = round(right.view.scale() * 100)
        assert right.pixel.text().startswith(f"fit {percent} %")


def test_the_last_panel_clicked_takes_the_keys_when_the_mouse_is_elsewhere(window, qtbot):
    win = window("first", "second")
    second = win.panels[1]
    qtbot.mouseClick(second.view, Qt.MouseButton.LeftButton)
    second.view.leaveEvent(None)  # the mouse went to the menu bar, say
    assert win.target_panel() is second and win.current is second


def test_pixel_readout_follows_zoom_and_resize_without_moving_the_mouse(window, qtbot):
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, :, 0] = np.arange(640) % 256  # blue = x
    with FrameWriter("still", (480, 640, 3)) as w:
        w.write(frame)
        win = window("still")
        win.refresh()
        panel = win.panels[0]
        qtbot.mouseMove(panel.view, QPoint(panel.view.width() // 4, panel.view.height() // 2))
        qtbot.waitUntil(lambda: "x=" in panel.pixel.text())
        before = panel.pixel.text()
        qtbot.keyClick(win, Qt.Key.Key_1)  # 100 %: a quarter of the way across is now another pixel
        after_zoom = panel.pixel.text()
        assert after_zoom.startswith("100 %") and "x=" in after_zoom and after_zoom != before
        win.resize(win.width() + 200, win.height())
        qtbot.waitUntil(lambda: panel.pixel.text() != after_zoom)


def test_the_wheel_zooms_the_panel_under_it(window):
    from PyQt6.QtCore import QPointF
    from PyQt6.QtGui import QWheelEvent
    from PyQt6.QtWidgets import QApplication

    with two_black_panels(window, "wa", "wb") as win:
        left, right = win.panels
        fitted = right.view.scale()
        at = QPointF(20, 20)
        wheel = QWheelEvent(
            at,
            right.view.mapToGlobal(at),
            QPoint(0, 0),
            QPoint(0, 120),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(right.view, wheel)
        assert right.view.scale() == pytest.approx(fitted * 1.25) and left.view.zoom is None
        assert right.pixel.text().startswith(f"{fitted * 125:.0f} %")


def test_a_panel_recovers_from_a_failing_poll_with_its_image(window):
    with FrameWriter("flaky", (H, W, 3)) as w:
        w.write(np.full((H, W, 3), 7, np.uint8))
        win = window("flaky")
        panel = win.panels[0]
        real_poll = panel.monitor.poll

        def broken():
            raise OSError(5, "Input/output error")

        panel.monitor.poll = broken
        win.refresh()
        assert panel.status.text().startswith("ERROR") and panel.view.image is None
        panel.monitor.poll = real_poll
        win.refresh()  # no new frame since: the current one comes back all the same
        assert panel.status.text().startswith("LIVE") and panel.view.image is not None
        assert panel.view.overlay == ""


# ---- metadata overlays, ROI statistics, histogram (issue 13) -------------------------------

RED_RECT = {"overlay": [{"rect": [8, 6, 20, 16], "colour": "#ff0000"}, {"circle": [1, 1, 1]}], "exposure_ms": 12.5}


def red_pixels(widget) -> np.ndarray:
    """(ys, xs) of the pure red pixels the widget shows."""
    img = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_RGB888)
    pixels = np.frombuffer(img.constBits().asarray(img.sizeInBytes()), np.uint8)
    pixels = pixels.reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3].reshape(img.height(), -1, 3)
    return np.nonzero(np.all(pixels == (255, 0, 0), axis=2))


def shift_drag(qtbot, view, a, b, button=Qt.MouseButton.LeftButton):
    shift = Qt.KeyboardModifier.ShiftModifier if button == Qt.MouseButton.LeftButton else Qt.KeyboardModifier.NoModifier
    qtbot.mousePress(view, button, shift, a)
    qtbot.mouseMove(view, b)
    qtbot.mouseRelease(view, button, shift, b)


def roi_rows_expected(image, roi, names):
    x, y, w, h = roi
    region = image[y : y + h, x : x + w].reshape(h, w, -1)
    rows = [f"roi {x},{y},{w}x{h}"]
    for c, name in enumerate(names):
        v = region[..., c].astype(np.float64)
        rows.append(
            f"{name} min {int(v.min()):,} max {int(v.max()):,} mean {v.mean():.4g} std {v.std():.4g} "
            f"sum {int(region[..., c].sum(dtype=np.uint64)):,}"
        )
    return rows


def test_a_shift_drag_selects_an_roi_whose_numbers_match_numpy_on_every_frame_and_esc_clears_it(window, qtbot):
    rng = np.random.default_rng(11)
    frames = [rng.integers(0, 256, (H, W, 3), np.uint8) for _ in range(2)]
    with FrameWriter("roi", (H, W, 3)) as w:
        w.write(frames[0])
        win = window("roi")
        win.refresh()
        panel, view = win.panels[0], win.panels[0].view
        a, b = view.to_widget(10.3, 5.3).toPoint(), view.to_widget(40.6, 30.6).toPoint()
        shift_drag(qtbot, view, a, b)
        assert panel.roi is not None and panel.view.roi == panel.roi
        x, y, rw, rh = panel.roi
        assert abs(x - 10) <= 1 and abs(y - 5) <= 1 and abs(x + rw - 41) <= 1 and abs(y + rh - 31) <= 1
        assert panel.roi_line.text().split("\n") == roi_rows_expected(frames[0], panel.roi, "BGR")
        assert not panel.roi_line.isHidden()
        w.write(frames[1])
        win.refresh()  # the numbers follow the frame
        assert panel.roi_line.text().split("\n") == roi_rows_expected(frames[1], panel.roi, "BGR")
        qtbot.mouseMove(view, b)
        qtbot.keyClick(win, Qt.Key.Key_Escape)
        assert panel.roi is None and panel.view.roi is None and panel.roi_line.isHidden()


def test_a_right_drag_selects_too_and_a_click_selects_nothing(window, qtbot):
    frame = np.arange(H * W, dtype=np.uint16).reshape(H, W)
    with FrameWriter("rdrag", (H, W), "uint16") as w:
        w.write(frame)
        win = window("rdrag")
        win.refresh()
        panel, view = win.panels[0], win.panels[0].view
        here = view.to_widget(3.5, 3.5).toPoint()
        shift_drag(qtbot, view, here, here, Qt.MouseButton.RightButton)
        assert panel.roi is None
        shift_drag(
            qtbot,
            view,
            view.to_widget(2.5, 2.5).toPoint(),
            view.to_widget(12.5, 9.5).toPoint(),
            Qt.MouseButton.RightButton,
        )
        assert panel.roi is not None
        assert panel.roi_line.text().split("\n") == roi_rows_expected(frame, panel.roi, "I")


def test_the_roi_option_sets_it_in_every_panel(window):
    frame = np.random.default_rng(12).integers(0, 256, (H, W), np.uint8)
    with FrameWriter("roiopt", (H, W)) as w:
        w.write(frame)
        win = window("roiopt", roi=(60, 40, 30, 30))
        win.refresh()
        assert win.panels[0].roi_line.text().split("\n") == roi_rows_expected(frame, (60, 40, 4, 8), "I")


def test_overlay_shapes_are_drawn_where_the_metadata_says_and_o_toggles_them(window, qtbot):
    with FrameWriter("shapes", (H, W, 3)) as w:
        win = window("shapes")
        panel = win.panels[0]
        w.write(np.full((H, W, 3), 40, np.uint8), meta=RED_RECT)
        win.refresh()
        view = panel.view
        assert len(view.shapes) == 1 and panel.overlay.skipped == 1
        assert panel.meta_line.text() == "overlay: 1 shape, 1 skipped · exposure_ms: 12.5"
        for zoom in (None, 2.0):
            view.set_zoom(zoom)
            ys, xs = red_pixels(view)
            left, top = view.to_widget(8, 6).x(), view.to_widget(8, 6).y()
            right, bottom = view.to_widget(28, 22).x(), view.to_widget(28, 22).y()
            assert abs(xs.min() - left) <= 2 and abs(xs.max() - right) <= 2, (zoom, xs.min(), xs.max(), left, right)
            assert abs(ys.min() - top) <= 2 and abs(ys.max() - bottom) <= 2
        qtbot.keyClick(win, Qt.Key.Key_O)
        assert not win.overlay_action.isChecked() and red_pixels(view)[0].size == 0
        qtbot.keyClick(win, Qt.Key.Key_O)
        assert red_pixels(view)[0].size > 0
    win.refresh()  # the producer is gone: the shapes stay with the last frame
    assert panel.status.text().startswith("STALE") and len(view.shapes) == 1


def test_metadata_written_by_the_producer_reaches_the_panel(window):
    with FrameWriter("metaflow", (H, W, 3)) as w:
        w.write(np.zeros((H, W, 3), np.uint8), meta=RED_RECT)
        win = window("metaflow")
        win.refresh()
        panel = win.panels[0]
        assert panel.meta_line.text() == "overlay: 1 shape, 1 skipped · exposure_ms: 12.5"
        assert red_pixels(panel.view)[0].size > 0
        w.write(np.zeros((H, W, 3), np.uint8))  # a frame without metadata: no shapes, no line
        win.refresh()
        assert panel.view.shapes == () and panel.meta_line.isHidden()


def test_h_toggles_a_histogram_whose_counts_match_numpy_and_l_its_log_scale(window, qtbot):
    frame = np.random.default_rng(13).integers(0, 256, (H, W, 3), np.uint8)
    with FrameWriter("hist", (H, W, 3)) as w:
        w.write(frame)
        win = window("hist")
        win.refresh()
        panel = win.panels[0]
        assert panel.histogram.isHidden() and panel.histogram.histogram is None  # off: nothing computed
        qtbot.keyClick(win, Qt.Key.Key_H)
        assert panel.histogram.isVisible()
        h = panel.histogram.histogram
        for c in range(3):
            np.testing.assert_array_equal(h.counts[c], np.bincount(frame[..., c].ravel(), minlength=256))
        assert panel.histogram.levels is None  # uint8: no level markers
        qtbot.keyClick(win, Qt.Key.Key_L)
        assert panel.histogram.log
        w.write(frame[::-1].copy())
        win.refresh()
        assert panel.histogram.histogram is not h  # updated on the refresh
        qtbot.keyClick(win, Qt.Key.Key_H)
        assert panel.histogram.isHidden()


def test_dragging_a_level_marker_sets_the_levels(window, qtbot):
    with FrameWriter("drag", (H, W), "uint16") as w:
        w.write(np.full((H, W), 500, np.uint16))
        win = window("drag", levels=(0.0, 1000.0))
        win.refresh()
        panel = win.panels[0]
        before = centre_colour(panel).value()
        qtbot.keyClick(win, Qt.Key.Key_H)
        hist = panel.histogram
        assert hist.levels == (0.0, 1000.0)
        start, end = QPoint(round(hist.x_of(1000.0)), 40), QPoint(round(hist.x_of(600.0)), 40)
        qtbot.mousePress(hist, Qt.MouseButton.LeftButton, pos=start)
        qtbot.mouseMove(hist, end)
        qtbot.mouseRelease(hist, Qt.MouseButton.LeftButton, pos=end)
        lo, hi = panel.fixed_levels
        assert lo == 0.0 and hi == pytest.approx(600.0, abs=2 * (hist.histogram.hi - hist.histogram.lo) / hist.width())
        assert centre_colour(panel).value() > before  # 500 of 0..600 is brighter than of 0..1000


# ---- the window's answers to a new user (issue 21) ------------------------------------------


def test_an_roi_past_the_image_is_drawn_clipped_like_its_statistics(window):
    from PyQt6.QtCore import QRectF

    with FrameWriter("clipped", (H, W, 3)) as w:
        w.write(np.zeros((H, W, 3), np.uint8))
        win = window("clipped", roi=(40, 30, 100, 100))
        win.refresh()
        view = win.panels[0].view
        assert view._roi_on_image() == QRectF(40, 30, W - 40, H - 30)
        img = view.grab().toImage()
        right, bottom = view.target().right(), view.target().bottom()
        outside = [
            (x, y)
            for x in range(0, img.width(), 2)
            for y in range(0, img.height(), 2)
            if (x > right + 2 or y > bottom + 2) and img.pixelColor(x, y).getRgb()[:3] == (0, 230, 255)
        ]
        assert outside == []  # nothing drawn into the letterbox


def test_a_flat_grey_uint8_histogram_is_one_grey_curve_clear_of_the_edges(window, qtbot):
    from viewer.gui.histogram_view import MARGIN, channel_groups

    with FrameWriter("flatgrey", (H, W, 3)) as w:
        w.write(np.zeros((H, W, 3), np.uint8))
        win = window("flatgrey")
        win.refresh()
        qtbot.keyClick(win, Qt.Key.Key_H)
        hist = win.panels[0].histogram
        assert [names for names, _ in channel_groups(hist.histogram)] == [["B", "G", "R"]]
        assert hist.x_of(0.0) >= MARGIN and hist.x_of(256.0) <= hist.width() - MARGIN
        img = hist.grab().toImage()
        edge = round(hist.x_of(0.0))  # the spike's left side: a vertical line from the base up
        spike = [img.pixelColor(x, y) for x in (edge - 1, edge, edge + 1) for y in range(20, hist.height() - 4)]
        assert all(abs(c.red() - c.green()) < 20 and abs(c.green() - c.blue()) < 20 for c in spike)
        assert any(c.value() > 80 for c in spike)  # the spike itself, grey, not the red curve


def test_dragging_a_level_marker_shows_its_value_until_released(window, qtbot):
    with FrameWriter("dragvalue", (H, W), "uint16") as w:
        w.write(np.full((H, W), 500, np.uint16))
        win = window("dragvalue", levels=(0.0, 1000.0))
        win.refresh()
        qtbot.keyClick(win, Qt.Key.Key_H)
        hist = win.panels[0].histogram
        start, end = QPoint(round(hist.x_of(1000.0)), 40), QPoint(round(hist.x_of(600.0)), 40)
        assert hist.drag_text() == ""
        qtbot.mousePress(hist, Qt.MouseButton.LeftButton, pos=start)
        qtbot.mouseMove(hist, end)
        text = hist.drag_text()
        assert text.startswith("high ") and float(text.split()[1].replace(",", "")) == pytest.approx(600, abs=10)
        qtbot.mouseRelease(hist, Qt.MouseButton.LeftButton, pos=end)
        assert hist.drag_text() == ""


def test_panels_side_by_side_have_images_of_one_height_whatever_their_lines(window, qtbot):
    with FrameWriter("plain", (H, W)) as a, FrameWriter("tagged", (H, W)) as b:
        a.write(np.zeros((H, W), np.uint8))
        b.write(np.zeros((H, W), np.uint8), meta={"exposure": 3})
        win = window("plain", "tagged")
        win.refresh()
        plain, tagged = win.panels
        assert tagged.meta_line.isVisible() and plain.meta_line.isHidden()
        qtbot.waitUntil(lambda: plain.view.height() == tagged.view.height(), timeout=10_000)


def test_a_panel_waiting_for_a_stream_says_what_is_live_instead(window, qtbot):
    with FrameWriter("cam0", (H, W)):
        win = window("nope", interval_s=0.05)
        view = win.panels[0].view
        assert view.overlay == "waiting for stream 'nope'…"
        qtbot.waitUntil(lambda: "live streams: cam0" in view.overlay, timeout=10_000)
    assert view.overlay.startswith("waiting for stream 'nope'…\n")


def test_qt_chatter_about_size_hints_is_dropped_and_other_messages_pass(capfd):
    from PyQt6.QtCore import qInstallMessageHandler, qWarning

    from viewer.gui.window import install_qt_message_filter

    previous = qInstallMessageHandler(None)
    try:
        install_qt_message_filter()
        qWarning(b"This plugin does not support propagateSizeHints()")
        qWarning(b"something that matters")
    finally:
        qInstallMessageHandler(previous)
    err = capfd.readouterr().err
    assert "propagateSizeHints" not in err and "something that matters" in err
