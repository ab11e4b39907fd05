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
from viewer.view.imaging import number_text

CHANNEL_COLOUR = {
    "B": QColor(70, 130, 255),
    "G": QColor(60, 200, 60),
    "R": QColor(235, 60, 60),
    "A": QColor(200, 200, 200),
    "I": QColor(190, 190, 190),
}
MARKER = QColor(255, 235, 0)
GRAB_PX = 6  # how near a marker a press must be to take it
MARGIN = 6.0  # pixels left and right of the bins
TOP_ROOM = 14.0  # pixels above the highest bin: the legend


def channel_groups(h: Histogram) -> list[tuple[list[str], np.ndarray]]:
    """The channels' names and counts, with channels of equal counts together, in order."""
    groups: list[tuple[list[str], np.ndarray]] = []
    for c, row in enumerate(h.counts):
        name = h.names[c] if c < len(h.names) else "I"
        same = next((g for g in groups if np.array_equal(g[1], row)), None)
        if same is not None:
            same[0].append(name)
        else:
            groups.append(([name], row))
    return groups


def mixed(names: list[str]) -> QColor:
    """The mean of the channels' colours: B, G and R together are a grey."""
    colours = [CHANNEL_COLOUR.get(n, CHANNEL_COLOUR["I"]) for n in names]
    r, g, b = (sum(getattr(c, part)() for c in colours) // len(colours) for part in ("red", "green", "blue"))
    return QColor(r, g, b)


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
        return MARGIN + self.histogram.bin_of(value) / self.histogram.counts.shape[1] * self._plot_width()

    def value_at(self, x: float) -> float:
        h = self.histogram
        assert h is not None
        return h.lo + min(max(x - MARGIN, 0.0), self._plot_width()) / self._plot_width() * (h.hi - h.lo)

    def _plot_width(self) -> float:
        """The bins' span: MARGIN pixels are kept free on each side, so a spike in the first
        or last bin (a flat frame, black or white bars) stands clear of the edges."""
        return max(1.0, self.width() - 2.0 * MARGIN)

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), BACKGROUND)
        h = self.histogram
        if h is not None:
            self._paint_curves(p, h)
            if self.levels is not None:
                self._paint_levels(p)
        p.setPen(QColor(150, 150, 150))
        p.drawText(self.rect().adjusted(4, 2, -4, -2), Qt.AlignmentFlag.AlignRight, "log" if self.log else "linear")
        p.end()

    def _paint_curves(self, p: QPainter, h: Histogram) -> None:
        """Each bin a step as wide as the bin. Channels with equal counts (a grey picture
        in BGR) are one curve in their mixed colour, named together in the legend ("B=G=R"):
        drawn one over the other, only the last would show."""
        heights = np.log1p(h.counts) if self.log else h.counts.astype(np.float64)
        top = float(heights.max()) or 1.0
        bins = heights.shape[1]
        edges = MARGIN + np.arange(bins + 1) * (self._plot_width() / bins)
        xs = np.repeat(edges, 2)[1:-1].tolist()
        base, room = self.height() - 2.0, self.height() - 4.0 - TOP_ROOM
        legend_x = 4.0
        for names, row in channel_groups(h):
            ys = np.repeat(base - row / top * room, 2).tolist()
            colour = mixed(names)
            p.setPen(QPen(colour, 1))
            p.drawPath(polyline([xs[0], *xs, xs[-1]], [base, *ys, base]))
            label = "=".join(names)
            p.drawText(QPointF(legend_x, 12), label)
            legend_x += p.fontMetrics().horizontalAdvance(label + "  ")

    def _paint_levels(self, p: QPainter) -> None:
        """The two markers; while one is dragged, its value beside it."""
        assert self.levels is not None
        p.setPen(QPen(MARKER, 1, Qt.PenStyle.DashLine))
        for value in self.levels:
            x = self.x_of(value)
            p.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        if text := self.drag_text():
            assert self._dragging is not None
            x = self.x_of(self.levels[self._dragging])
            width = p.fontMetrics().horizontalAdvance(text)
            left = x + 4 if x + 4 + width <= self.width() - 2 else x - 4 - width  # stay inside
            p.setPen(MARKER)
            p.drawText(QPointF(left, self.height() / 2), text)

    def drag_text(self) -> str:
        """The value shown beside the marker being dragged; empty when none is."""
        if self._dragging is None or self.levels is None:
            return ""
        return f"{('low', 'high')[self._dragging]} {number_text(self.levels[self._dragging])}"

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
        if self._dragging is not None:
            self._dragging = None
            self.update()  # the value shown while dragging goes


def polyline(xs: list[float], ys: list[float]) -> QPainterPath:
    """A path through the points. Not QPainter.drawPolyline(QPolygonF): here (PyQt6 6.11) that
    call jumped to a null pointer, a segfault, in some runs of the test suite."""
    path = QPainterPath(QPointF(xs[0], ys[0]))
    for x, y in zip(xs[1:], ys[1:], strict=True):
        path.lineTo(x, y)
    return path
