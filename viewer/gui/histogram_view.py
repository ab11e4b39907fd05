"""The histogram strip under a panel's image: one curve per channel, linear or log counts,
and for uint16 and float frames the display levels as two markers that can be dragged.
The numbers come from viewer/view/histogram.py; this only draws them."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from viewer.gui.image_view import BACKGROUND
from viewer.view.histogram import Histogram

CHANNEL_COLOUR = {
    "B": QColor(70, 130, 255),
    "G": QColor(60, 200, 60),
    "R": QColor(235, 60, 60),
    "A": QColor(200, 200, 200),
    "I": QColor(190, 190, 190),
}
MARKER = QColor(255, 235, 0)
GRAB_PX = 6  # how near a marker a press must be to take it


class HistogramView(QWidget):
    """Paints a Histogram. ``levels_dragged(lo, hi)`` while a level marker is dragged."""

    levels_dragged = pyqtSignal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.histogram: Histogram | None = None
        self.levels: tuple[float, float] | None = None  # drawn as markers; None for uint8
        self.log = False
        self._dragging: int | None = None  # 0: the low marker, 1: the high one

    def set_histogram(self, histogram: Histogram | None, levels: tuple[float, float] | None) -> None:
        self.histogram, self.levels = histogram, levels
        self.update()

    def set_log(self, log: bool) -> None:
        self.log = log
        self.update()

    def x_of(self, value: float) -> float:
        """The widget x of a sample value."""
        assert self.histogram is not None
        return self.histogram.bin_of(value) / self.histogram.counts.shape[1] * (self.width() - 1)

    def value_at(self, x: float) -> float:
        h = self.histogram
        assert h is not None
        return h.lo + min(max(x, 0.0), self.width() - 1.0) / (self.width() - 1) * (h.hi - h.lo)

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), BACKGROUND)
        h = self.histogram
        if h is not None:
            heights = np.log1p(h.counts) if self.log else h.counts.astype(np.float64)
            top = float(heights.max()) or 1.0
            xs = np.linspace(0, self.width() - 1, heights.shape[1])
            for c, row in enumerate(heights):
                ys = (self.height() - 2) - row / top * (self.height() - 4)
                p.setPen(QPen(CHANNEL_COLOUR.get(h.names[c] if c < len(h.names) else "I", CHANNEL_COLOUR["I"]), 1))
                p.drawPath(polyline(xs.tolist(), ys.tolist()))
            if self.levels is not None:
                p.setPen(QPen(MARKER, 1, Qt.PenStyle.DashLine))
                for value in self.levels:
                    x = self.x_of(value)
                    p.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        p.setPen(QColor(150, 150, 150))
        p.drawText(self.rect().adjusted(4, 2, -4, -2), Qt.AlignmentFlag.AlignRight, "log" if self.log else "linear")
        p.end()

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        assert event is not None
        if self.histogram is None or self.levels is None:
            return
        distances = [abs(self.x_of(v) - event.position().x()) for v in self.levels]
        nearest = int(np.argmin(distances))
        self._dragging = nearest if distances[nearest] <= GRAB_PX else None

    def mouseMoveEvent(self, event: QMouseEvent | None) -> None:
        assert event is not None
        if self._dragging is None or self.levels is None:
            return
        assert self.histogram is not None
        value = self.value_at(event.position().x())
        gap = (self.histogram.hi - self.histogram.lo) / self.histogram.counts.shape[1]  # one bin: LO < HI
        lo, hi = self.levels
        if self._dragging == 0:
            lo = min(value, hi - gap)
        else:
            hi = max(value, lo + gap)
        self.levels = (lo, hi)
        self.update()
        self.levels_dragged.emit(lo, hi)

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:
        self._dragging = None


def polyline(xs: list[float], ys: list[float]) -> QPainterPath:
    """A path through the points. Not QPainter.drawPolyline(QPolygonF): here (PyQt6 6.11) that
    call jumped to a null pointer, a segfault, in some runs of the test suite."""
    path = QPainterPath(QPointF(xs[0], ys[0]))
    for x, y in zip(xs[1:], ys[1:], strict=True):
        path.lineTo(x, y)
    return path
