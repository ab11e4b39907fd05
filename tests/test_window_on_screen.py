"""The window on a real X server (Xvfb): a producer and `shmview view` as separate
processes, and a screenshot of the screen that must show the frame's colours."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.helpers import CLI, producer, read_line, stop, wait_for

XVFB = shutil.which("Xvfb")
pytestmark = pytest.mark.skipif(
    XVFB is None and not os.environ.get("CI"), reason="Xvfb is not installed (scripts/bootstrap installs it)"
)
GRAB = Path(__file__).parent / "support" / "grab_screen.py"
# The `bars` pattern's colours as cv2 reads them (BGR): red, green, blue, yellow.
BARS = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0), "yellow": (0, 255, 255)}
LIVE_TEXT = (0x32, 0x7D, 0x2E)  # the status line's colour for LIVE, as cv2 reads it


@pytest.fixture
def display():
    """A private X server; yields its DISPLAY value."""
    assert XVFB, "CI must run this test: Xvfb is missing"
    read, write = os.pipe()
    server = subprocess.Popen(
        [XVFB, "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as ready:
        number = ready.readline().strip()  # Xvfb writes its display number once it accepts clients
    try:
        assert number, "Xvfb did not start"
        yield f":{number}"
    finally:
        stop(server)


def screenshot(env: dict, path: Path) -> np.ndarray | None:
    done = subprocess.run([sys.executable, str(GRAB), str(path)], env=env, capture_output=True, timeout=60)
    return cv2.imread(str(path)) if done.returncode == 0 else None


def colours_on(image: np.ndarray | None) -> dict[str, float]:
    """The bar colours on screen, each with the mean x of its pixels."""
    if image is None:
        return {}
    found = {}
    for name, bgr in BARS.items():
        xs = np.nonzero(np.all(image == bgr, axis=2))[1]
        if xs.size > 2000:
            found[name] = float(xs.mean())
    return found


def test_window_shows_the_stream_on_a_real_screen(display, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"} | {"DISPLAY": display}
    with producer("onscreen", pattern="bars"):
        viewer = subprocess.Popen([*CLI, "view", "onscreen"], env=env, stderr=subprocess.PIPE, text=True)
        try:
            shot = tmp_path / "screen.png"
            wait_for(lambda: set(colours_on(screenshot(env, shot))) == set(BARS), what="the bars", timeout=60)
            seen = colours_on(cv2.imread(str(shot)))
            # In the right places, too: swapped red and blue channels would still show both.
            assert seen["yellow"] < seen["green"] < seen["red"] < seen["blue"]
        finally:
            code, err = stop(viewer)
    assert code == 0, err
    assert "Traceback" not in err


def red_bars(image: np.ndarray | None, bgr: tuple[int, int, int] = BARS["red"]) -> list[tuple[float, float, int]]:
    """Each red bar on screen: its centre x, its bottom y, its width."""
    if image is None:
        return []
    mask = np.all(image == bgr, axis=2).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return [(x + w / 2, y + h, w) for x, y, w, h, area in stats[1:n].tolist() if area > 1000]


def test_a_2x2_grid_shows_every_status_line(display, tmp_path):
    """Four panels: each shows its bars and, under them, its status line in the LIVE colour
    (the offscreen tests check the words: state and sum come first and are never cut)."""
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"} | {"DISPLAY": display}
    names = [f"grid{i}" for i in range(4)]
    with ExitStack() as stack:
        for name in names:
            stack.enter_context(producer(name, pattern="bars"))
        viewer = subprocess.Popen([*CLI, "view", *names], env=env, stderr=subprocess.PIPE, text=True)
        try:
            shot = tmp_path / "grid.png"
            wait_for(lambda: len(red_bars(screenshot(env, shot))) == 4, what="four panels", timeout=60)
            image = cv2.imread(str(shot))
            text_ys, text_xs = np.nonzero(np.all(image == LIVE_TEXT, axis=2))
            for x, bottom, width in red_bars(image):
                below = (text_ys > bottom) & (text_ys < bottom + 80) & (np.abs(text_xs - x) < 4 * width)
                assert below.sum() > 50, f"no LIVE status line under the panel at x={x:.0f}"
        finally:
            code, err = stop(viewer)
    assert code == 0, err
    assert "Traceback" not in err


STATES_WINDOW = """
import sys
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication
from tests.support.helpers import producer
from viewer.gui.window import ShutdownSignals, ViewerWindow

def broken():
    raise OSError(5, "Input/output error")

with ShutdownSignals() as signals, producer("alive", pattern="bars"), producer("gone", pattern="bars") as (gone, _):
    app = QApplication(["states", "-platform", "xcb"])
    win = ViewerWindow(["alive", "gone", "broken"], interval_s=0.1)
    win.panels[2].monitor.poll = broken
    signals.connect(win.close)
    win.show()
    gone.terminate()
    def paused_and_stale():
        if win.panels[1].status.text().startswith("STALE"):
            win.toggle_pause()
            print("ready", flush=True)
        else:
            QTimer.singleShot(50, paused_and_stale)
    QTimer.singleShot(1000, paused_and_stale)
    app.exec()
"""
DIMMED_RED = (0, 0, 145)  # red under the stale panel's 110/255 black veil
STATE_TEXT = {"PAUSED": (0x00, 0x6E, 0x8D), "STALE": (0x28, 0x28, 0xC6), "ERROR": (0x57, 0x14, 0xAD)}  # BGR


def test_paused_stale_and_broken_panels_say_so_on_screen(display, tmp_path):
    """A paused window, one panel live, one whose producer died, one whose stream fails:
    the screen shows the bars still, the status lines in the state colours, and PAUSED."""
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"} | {"DISPLAY": display}
    window = subprocess.Popen(
        [sys.executable, "-c", STATES_WINDOW], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert window.stdout is not None and window.stdout.readline().strip() == "ready"
        shot = tmp_path / "states.png"

        def seen() -> set[str]:
            image = screenshot(env, shot)
            if image is None:
                return set()
            return {name for name, bgr in STATE_TEXT.items() if np.all(image == bgr, axis=2).sum() > 50}

        wait_for(lambda: seen() == set(STATE_TEXT), what="PAUSED, STALE and ERROR on screen", timeout=60)
        image = cv2.imread(str(shot))
        assert len(red_bars(image)) == 1  # the live panel's frozen image
        assert len(red_bars(image, DIMMED_RED)) == 1  # the stale panel's last image, dimmed
    finally:
        code, err = stop(window)
    assert code == 0, err
    assert "Traceback" not in err


# ---- metadata overlays on a real screen (issue 13) ------------------------------------------

OVERLAY_WINDOW = Path(__file__).parent / "support" / "overlay_window.py"
RED = (0, 0, 255)  # the overlay rect's colour as cv2 reads it


def red_box(image: np.ndarray | None) -> tuple[int, int, int, int] | None:
    """The bounding box (x0, y0, x1, y1) of the pure red pixels on screen."""
    if image is None:
        return None
    ys, xs = np.nonzero(np.all(image == RED, axis=2))
    return (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())) if xs.size > 100 else None


def test_a_metadata_rect_appears_in_place_and_colour_at_fit_and_at_200_percent(display, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"} | {"DISPLAY": display}
    args = [sys.executable, str(OVERLAY_WINDOW)]
    window = subprocess.Popen(
        args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert window.stdin is not None and window.stdout is not None
        shot = tmp_path / "overlay.png"
        for command in (None, "zoom 2"):
            if command:
                window.stdin.write(command + "\n")
                window.stdin.flush()
            where = json.loads(read_line(window, timeout=60))
            x0, y0, x1, y1 = where["rect"]
            if command:
                assert where["scale"] == 2.0
            expected = (x0, y0, x1, y1)

            def in_place(expected=expected):  # the 2 px pen straddles the rect's edges
                box = red_box(screenshot(env, shot))
                return box is not None and all(abs(a - b) <= 2 for a, b in zip(box, expected, strict=True))

            wait_for(in_place, what=f"the red rect at {expected} ({command or 'fit'})", timeout=60)
        window.stdin.write("quit\n")
        window.stdin.flush()
    finally:
        code, err = stop(window)
    assert code == 0, err
    assert "Traceback" not in err
