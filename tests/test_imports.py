"""What importing the package costs: `import viewer` loads neither Qt nor OpenCV."""

from __future__ import annotations

import subprocess
import sys


def test_import_viewer_pulls_in_neither_qt_nor_opencv():
    probe = "import sys, viewer; print(sorted(m for m in sys.modules if m.startswith(('PyQt6', 'cv2'))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
