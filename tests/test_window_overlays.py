"""Overlay drawing is bounded (issue 18), in the window, offscreen: a frame whose metadata
holds far more shapes than the caps shows the caps' worth and says "+N not drawn"; shapes are
parsed and made into paths once per new frame, not per repaint."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from PyQt6.QtCore import Qt

from viewer import FrameWriter
from viewer.gui import panel as panel_module
from viewer.gui.window import ViewerWindow
from viewer.view.overlay import MAX_SHAPES

H, W = 120, 160
MANUAL = 3600.0  # seconds: a timer that never fires during a test: ticks come from refresh()
META_BYTES = 65536


def flood(k: int = 0) -> dict:
    """Nearly 64 KiB of red frame-wide lines, every one within the accepted range."""
    lines = [{"line": [0, (i + k) % H, W, H - (i + k) % H], "colour": "#ff0000"} for i in range(1500)]
    meta = {"overlay": lines}
    assert len(orjson.dumps(meta)) <= META_BYTES
    return meta


@pytest.fixture
def window(qtbot, tmp_path):
    def make(name: str) -> ViewerWindow:
        win = ViewerWindow([name], interval_s=MANUAL, snapshot_dir=tmp_path)
        qtbot.addWidget(win)
        win.resize(640, 520)
        with qtbot.waitActive(win):  # keyboard shortcuts go to the active window
            win.show()
            win.activateWindow()
        return win

    return make


def yellow_in_corner(view) -> int:
    """How many pixels of the default overlay yellow the bottom-left corner of the image
    shows, where the view writes "+N not drawn"."""
    img = view.grab().toImage().convertToFormat(view.grab().toImage().Format.Format_RGB888)
    rgb = np.frombuffer(img.constBits().asarray(img.sizeInBytes()), np.uint8)
    rgb = rgb.reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3].reshape(img.height(), -1, 3)
    r = view.target().intersected(view.rect().toRectF())
    corner = rgb[int(r.bottom()) - 30 : int(r.bottom()), int(r.left()) : int(r.left()) + 160].astype(int)
    return int(np.count_nonzero((corner[..., 0] > 200) & (corner[..., 1] > 190) & (corner[..., 2] < 80)))


def test_a_flood_of_shapes_is_cut_at_the_cap_and_says_how_many_were_not_drawn(window, qtbot):
    with FrameWriter("flood", (H, W, 3), meta_bytes=META_BYTES) as w:
        w.write(np.full((H, W, 3), 40, np.uint8), meta=flood())
        win = window("flood")
        win.refresh()
        panel = win.panels[0]
        note = f"+{1500 - MAX_SHAPES:,} not drawn"
        assert len(panel.view.shapes) == MAX_SHAPES and panel.view.not_drawn == note
        assert panel.meta_line.text() == f"overlay: {MAX_SHAPES} shapes, {note}"
        assert yellow_in_corner(panel.view) > 20  # the note, over the image
        qtbot.keyClick(win, Qt.Key.Key_O)  # O hides the shapes and their note together
        assert not win.overlay_action.isChecked() and yellow_in_corner(panel.view) == 0
        qtbot.keyClick(win, Qt.Key.Key_O)
        w.write(np.full((H, W, 3), 40, np.uint8), meta={"overlay": flood()["overlay"][:3]})
        win.refresh()  # an overlay within the caps: no note
        assert len(panel.view.shapes) == 3 and panel.view.not_drawn == "" and yellow_in_corner(panel.view) == 0
        assert panel.meta_line.text() == "overlay: 3 shapes"


def test_shapes_are_parsed_and_made_into_paths_once_per_frame_not_per_repaint(window, monkeypatch):
    parsed = []
    parse = panel_module.parse_overlay

    def counted(meta: object) -> object:
        if meta is not None:  # a panel clears its shapes with None when it attaches
            parsed.append(meta)
        return parse(meta)

    monkeypatch.setattr(panel_module, "parse_overlay", counted)
    with FrameWriter("once", (H, W, 3), meta_bytes=META_BYTES) as w:
        w.write(np.zeros((H, W, 3), np.uint8), meta=flood(0))
        win = window("once")
        win.refresh()
        view = win.panels[0].view
        marks = view._marks
        assert len(parsed) == 1
        for zoom in (2.0, 0.5, None):  # zoom, pan and repaint: the same paths, no parse
            view.set_zoom(zoom)
            view.repaint()
        win.resize(500, 400)
        view.repaint()
        win.refresh()  # no new frame: nothing new
        assert len(parsed) == 1 and view._marks is marks
        w.write(np.zeros((H, W, 3), np.uint8), meta=flood(0))  # a new frame, the same metadata
        win.refresh()
        assert len(parsed) == 1 and view._marks is marks
        w.write(np.zeros((H, W, 3), np.uint8), meta=flood(1))
        win.refresh()
        assert len(parsed) == 2 and view._marks is not marks


def test_shapes_drawn_through_paths_land_on_the_same_pixels_at_any_zoom(window):
    """A polygon and a point cross, drawn from the cached paths, follow fit and zoom."""
    meta = {
        "overlay": [
            {"polygon": [[20, 20], [60, 20], [60, 50]], "colour": "#ff0000"},
            {"point": [100, 80], "colour": "#ff0000"},
        ]
    }
    with FrameWriter("paths", (H, W, 3), meta_bytes=META_BYTES) as w:
        w.write(np.full((H, W, 3), 40, np.uint8), meta=meta)
        win = window("paths")
        win.refresh()
        view = win.panels[0].view
        for zoom in (None, 3.0):
            view.set_zoom(zoom)
            img = view.grab().toImage()
            for x, y in ((40, 20), (60, 35), (100, 80), (50, 30)):  # edges and the cross's centre; not inside
                at = view.to_widget(x, y).toPoint()
                red = img.pixelColor(at).getRgb()[:3] == (255, 0, 0)
                assert red == ((x, y) != (50, 30)), (zoom, x, y)
