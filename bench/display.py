"""Display: a new frame's refresh, painted offscreen (shmview's panel against QLabel + sum and
pyqtgraph), and the CPU a real viewer window takes on a 30 fps stream."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
from harness import frames_for, per_refresh

from viewer import FrameReader, FrameWriter

# ---- display, offscreen -------------------------------------------------------------------


def display_costs(shape, rounds, seconds):
    """Seconds per refresh of a new frame, painted: shmview's panel, QLabel+sum, pyqtgraph."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtGui import QImage, QPixmap
    from PyQt6.QtWidgets import QApplication, QLabel

    from viewer.gui.window import StreamPanel

    app = QApplication.instance() or QApplication([])
    h, w = shape[:2]
    frames = frames_for(shape)
    out: dict[str, float] = {}
    with FrameWriter("bench-display", shape) as writer:
        k = [0]

        def next_frame() -> None:
            writer.write(frames[k[0] % 4])
            k[0] += 1

        panel = StreamPanel("bench-display")
        panel.view.setFixedSize(w, h)  # 1:1, as the QLabel shows it
        panel.show()

        def shmview_refresh() -> None:
            panel.refresh()
            panel.view.repaint()

        out["shmview"] = per_refresh(next_frame, shmview_refresh, rounds, seconds)
        assert panel.last is not None and panel.last.sum == int(panel.last.frame.image.sum(dtype=np.uint64))
        panel.close_stream()

        with FrameReader("bench-display") as reader:
            label = QLabel()
            label.setFixedSize(w, h)
            label.show()
            buf = np.empty(shape, np.uint8)

            def qlabel_refresh() -> None:
                reader.read(buf)
                int(buf.sum())
                img = QImage(buf.data, w, h, buf.strides[0], QImage.Format.Format_BGR888)
                label.setPixmap(QPixmap.fromImage(img))
                label.repaint()

            out["qlabel"] = per_refresh(next_frame, qlabel_refresh, rounds, seconds)
            try:
                import cv2
                import pyqtgraph as pg
            except ImportError:
                pass
            else:

                class CountingImageItem(pg.ImageItem):
                    paints = 0

                    def paint(self, *args: object) -> None:
                        CountingImageItem.paints += 1
                        super().paint(*args)

                glw = pg.GraphicsLayoutWidget()
                glw.setFixedSize(w, h)
                vb = glw.addViewBox(lockAspect=True, invertY=True)
                item = CountingImageItem(axisOrder="row-major")
                vb.addItem(item)
                glw.show()
                item.setImage(np.zeros_like(buf), autoLevels=False)
                vb.autoRange(padding=0)  # the image fills the view, as in the other two
                for _ in range(3):
                    app.processEvents()  # let the scene lay out before timing

                rgb = np.empty_like(buf)

                def pyqtgraph_refresh() -> None:  # its fastest path: contiguous RGB uint8, no levels
                    reader.read(buf)
                    int(buf.sum())
                    item.setImage(cv2.cvtColor(buf, cv2.COLOR_BGR2RGB, dst=rgb), autoLevels=False)
                    glw.viewport().repaint()  # a QGraphicsView paints through its viewport

                out["pyqtgraph"] = per_refresh(next_frame, pyqtgraph_refresh, rounds, seconds)
                assert CountingImageItem.paints > 0, "pyqtgraph never painted: the comparison would be void"
                glw.close()
            label.close()
        panel.close()
    app.processEvents()
    return out


# ---- idle CPU of a real viewer process ----------------------------------------------------


def viewer_cpu(seconds: float) -> tuple[float, float]:
    """% of one core used by `shmview view` (300 ms) and by a 30 fps producer over `seconds`."""
    import psutil

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    cli = [sys.executable, "-m", "viewer"]
    producer = subprocess.Popen(
        [*cli, "produce", "synthetic", "--name", "bench-idle", "--pattern", "solid", "--fps", "30"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert producer.stdout is not None and "ready" in producer.stdout.readline()
    viewer = subprocess.Popen([*cli, "view", "bench-idle"], env=env, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3.0)  # start-up: imports, first paint
        procs = [psutil.Process(viewer.pid), psutil.Process(producer.pid)]
        before = [sum(p.cpu_times()[:2]) for p in procs]
        time.sleep(seconds)
        after = [sum(p.cpu_times()[:2]) for p in procs]
    finally:
        for p in (viewer, producer):
            p.terminate()
            p.wait(30)
    return tuple(100 * (a - b) / seconds for a, b in zip(after, before, strict=True))  # type: ignore[return-value]
