"""A window on a stream whose frames carry overlay metadata, for tests/test_window_on_screen.py and
for the README's screenshot. Run it under a real X server (DISPLAY set):

    python tests/support/overlay_window.py                        # prints where the red rect is, as JSON
    python tests/support/overlay_window.py --shot assets/overlays.png   # the README screenshot, then exits

It writes a frame every 100 ms with FrameWriter.write(frame, meta=...).

Commands on stdin, one a line: ``zoom Z`` (Z a factor, or ``fit``), ``quit``. After each, and
once the overlay is first on screen, it prints {"rect": [x0, y0, x1, y1], "scale": s}: the
red rect's edges in screen pixels.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from PyQt6.QtCore import QSocketNotifier, QTimer
from PyQt6.QtWidgets import QApplication

from viewer import FrameWriter
from viewer.gui.window import ShutdownSignals, ViewerWindow

H, W = 240, 320
RECT = (40, 30, 100, 60)  # x, y, w, h in image pixels
TEST_META = {"overlay": [{"rect": list(RECT), "colour": "#ff0000"}], "exposure_ms": 12.5}
DEMO_META = {
    "overlay": [
        {"rect": [150, 60, 90, 110], "colour": "#ff3030", "label": "car 0.93"},
        {"polygon": [[20, 200], [90, 150], [140, 215], [60, 230]], "colour": "#30ff60", "label": "lane"},
        {"line": [0, 120, 319, 100], "colour": "#40c0ff"},
        {"point": [200, 30], "label": "keypoint"},
        {"text": "frame from cam0", "at": [8, 16]},
        {"circle": [10, 10, 5]},
    ],
    "exposure_ms": 12.5,
    "gain_db": 3.0,
    "camera": "cam0",
}


def frame(k: int, demo: bool) -> np.ndarray:
    if not demo:
        return np.full((H, W, 3), 40, np.uint8)
    x = np.linspace(0, 1, W, dtype=np.float32)
    y = np.linspace(0, 1, H, dtype=np.float32)[:, None]
    image = np.stack([60 + 120 * y + 0 * x, 50 + 140 * x * y, 90 + 100 * (1 - x) + 0 * y], axis=2)
    return (image + (k % 8)).astype(np.uint8)


def where(win: ViewerWindow) -> dict:
    view = win.panels[0].view
    x, y, w, h = RECT
    a, b = view.mapToGlobal(view.to_widget(x, y)), view.mapToGlobal(view.to_widget(x + w, y + h))
    return {"rect": [a.x(), a.y(), b.x(), b.y()], "scale": view.scale()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shot")
    args = parser.parse_args()
    demo = bool(args.shot)
    meta = DEMO_META if demo else TEST_META
    with ShutdownSignals() as signals, FrameWriter("overlaid", (H, W, 3)) as writer:
        app = QApplication(["overlays", "-platform", "xcb"])
        win = ViewerWindow(["overlaid"], interval_s=0.1, roi=(170, 180, 110, 45) if demo else None)
        panel = win.panels[0]
        count = [0]

        def write() -> None:
            image = frame(count[0], demo)
            writer.write(image, meta=meta)
            count[0] += 1

        write()
        ticker = QTimer()
        ticker.timeout.connect(write)
        ticker.start(100)
        signals.connect(win.close)
        win.resize(760, 620)
        win.show()
        if demo:
            win.histogram_action.setChecked(True)

        def ready() -> None:
            if not (panel.view.shapes and panel.status.text().startswith("LIVE") and win.isVisible()):
                QTimer.singleShot(50, ready)
            elif demo:
                win.grab().save(args.shot)
                win.close()
            else:
                print(json.dumps(where(win)), flush=True)

        def command() -> None:
            line = sys.stdin.readline().split()
            if not line or line[0] == "quit":
                win.close()
            elif line[0] == "zoom":
                panel.view.set_zoom(None if line[1] == "fit" else float(line[1]))
                QTimer.singleShot(300, lambda: print(json.dumps(where(win)), flush=True))

        if not demo:
            notifier = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Type.Read)
            notifier.activated.connect(lambda *_: command())
        QTimer.singleShot(300, ready)
        app.exec()
        ticker.stop()


if __name__ == "__main__":
    main()
