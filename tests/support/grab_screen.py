"""Save a screenshot of the whole X screen: python tests/support/grab_screen.py OUT.png (DISPLAY set).

A separate process because a test process already runs Qt offscreen, and Qt has one
platform per process.
"""

import sys

from PyQt6.QtGui import QGuiApplication

if __name__ == "__main__":
    app = QGuiApplication(["grab", "-platform", "xcb"])
    screen = app.primaryScreen()
    assert screen is not None
    ok = screen.grabWindow(0).save(sys.argv[1])
    sys.exit(0 if ok else 1)
