"""The window's small widgets: an image view with zoom, pan, an overlay text, metadata shapes
and a region of interest, and text lines that fit their width. They know nothing about
streams."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PyQt6.QtCore import QEvent, QPointF, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import (
    QColor,
    QFontMetrics,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
    QRegion,
    QResizeEvent,
    QWheelEvent,
)
from PyQt6.QtWidgets import QSizePolicy, QWidget

from viewer.overlay import Shape

BACKGROUND = QColor(24, 24, 24)
ZOOM_STEP = 1.25
SEPARATOR = " · "


class ImageView(QWidget):
    """Paints one QImage, fitted (aspect kept) or at a zoom factor, with an overlay text."""

    hovered = pyqtSignal(int, int)  # image pixel under the cursor, or (-1, -1)
    zoom_changed = pyqtSignal()  # the scale may have changed: zoom, resize, another image size
    clicked = pyqtSignal()
    roi_selected = pyqtSignal(int, int, int, int)  # x, y, w, h in image pixels, after a Shift- or right-drag

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setMinimumSize(160, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # paintEvent covers every pixel
        self.image: QImage | None = None
        self.overlay = ""
        self.dimmed = False
        self.zoom: float | None = None  # None: fit to the widget
        self._pan = QPointF(0, 0)
        self._drag: QPointF | None = None
        self._cursor: QPointF | None = None  # last mouse position while the mouse is over us
        self.shapes: tuple[Shape, ...] = ()
        self.show_shapes = True
        self.roi: tuple[int, int, int, int] | None = None
        self._selecting: tuple[QPointF, QPointF] | None = None  # a drag's two corners, in image pixels

    def set_image(self, image: QImage | None) -> None:
        if image is None and self.image is None:
            return  # an error repeated every tick costs nothing
        resized = image is None or self.image is None or image.size() != self.image.size()
        self.image = image
        self.update()
        if resized:
            self._view_changed()

    def set_overlay(self, text: str, *, dimmed: bool = False) -> None:
        if (text, dimmed) != (self.overlay, self.dimmed):
            self.overlay, self.dimmed = text, dimmed
            self.update()

    def set_shapes(self, shapes: tuple[Shape, ...]) -> None:
        if shapes is not self.shapes:
            self.shapes = shapes
            if self.show_shapes:
                self.update()

    def set_show_shapes(self, show: bool) -> None:
        self.show_shapes = show
        self.update()

    def set_roi(self, roi: tuple[int, int, int, int] | None) -> None:
        if roi != self.roi:
            self.roi = roi
            self.update()

    def set_zoom(self, zoom: float | None) -> None:
        self.zoom, self._pan = zoom, QPointF(0, 0)
        self.update()
        self._view_changed()

    def scale(self) -> float:
        if self.image is None or self.image.isNull():
            return 1.0
        if self.zoom is not None:
            return self.zoom
        return min(self.width() / self.image.width(), self.height() / self.image.height())

    def zoom_text(self) -> str:
        """'fit 87 %' or '200 %'; empty with no image."""
        if self.image is None:
            return ""
        percent = f"{self.scale() * 100:.0f} %"
        return f"fit {percent}" if self.zoom is None else percent

    def under_mouse(self) -> bool:
        return self._cursor is not None

    def target(self) -> QRectF:
        """Where the image lands in widget coordinates."""
        assert self.image is not None
        s = self.scale()
        w, h = self.image.width() * s, self.image.height() * s
        return QRectF((self.width() - w) / 2 + self._pan.x(), (self.height() - h) / 2 + self._pan.y(), w, h)

    def to_widget(self, x: float, y: float) -> QPointF:
        """Image coordinates (pixel centres at +0.5) to widget coordinates, through the
        same fit, zoom and pan the image is drawn with."""
        r, s = self.target(), self.scale()
        return QPointF(r.x() + x * s, r.y() + y * s)

    def to_image(self, pos: QPointF) -> QPointF:
        r, s = self.target(), self.scale()
        return QPointF((pos.x() - r.x()) / s, (pos.y() - r.y()) / s)

    def emit_hovered(self) -> None:
        """Say which pixel is under the last cursor position: after a move, and also after a
        zoom, a resize or a new image, when the pixel under a still mouse changes."""
        if self._cursor is None or self.image is None:
            self.hovered.emit(-1, -1)
            return
        r, s = self.target(), self.scale()
        x, y = int((self._cursor.x() - r.x()) / s), int((self._cursor.y() - r.y()) / s)
        inside = 0 <= x < self.image.width() and 0 <= y < self.image.height()
        self.hovered.emit(*((x, y) if inside else (-1, -1)))

    def _view_changed(self) -> None:
        self.zoom_changed.emit()
        self.emit_hovered()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        if self.image is None:
            p.fillRect(self.rect(), BACKGROUND)
        else:
            target = self.target()
            p.setClipRegion(QRegion(self.rect()) - QRegion(target.toAlignedRect()))
            p.fillRect(self.rect(), BACKGROUND)  # only the margins around the image
            p.setClipping(False)
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.scale() < 1)
            p.drawImage(target, self.image)
            self._paint_marks(p)
        if self.dimmed:
            p.fillRect(self.rect(), QColor(0, 0, 0, 110))
        if self.overlay:
            p.setPen(QColor(255, 220, 120))
            font = p.font()
            font.setPointSize(14)
            font.setBold(True)
            p.setFont(font)
            flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
            p.drawText(self.rect().adjusted(8, 8, -8, -8), flags, self.overlay)
        p.end()

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        super().resizeEvent(event)
        self._view_changed()

    def mouseMoveEvent(self, event: QMouseEvent | None) -> None:
        assert event is not None
        if self._selecting is not None:
            self._selecting = (self._selecting[0], self._clamped(event.position()))
            self.update()
        elif self._drag is not None and self.zoom is not None:
            self._pan += event.position() - self._drag
            self._drag = event.position()
            self.update()
        self._cursor = event.position()
        self.emit_hovered()

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        assert event is not None
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if self.image is not None and (event.button() == Qt.MouseButton.RightButton or shift):
            corner = self._clamped(event.position())
            self._selecting = (corner, corner)
        else:
            self._drag = event.position()
        self.clicked.emit()

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:
        self._drag = None
        if self._selecting is not None:
            a, b = self._selecting
            self._selecting = None
            self.update()
            x0, y0 = math.floor(min(a.x(), b.x())), math.floor(min(a.y(), b.y()))
            x1, y1 = math.ceil(max(a.x(), b.x())), math.ceil(max(a.y(), b.y()))
            if a != b and x1 > x0 and y1 > y0:  # a click without a drag selects nothing
                self.roi_selected.emit(x0, y0, x1 - x0, y1 - y0)

    def _clamped(self, pos: QPointF) -> QPointF:
        """The image point under ``pos``, held inside the image."""
        assert self.image is not None
        p = self.to_image(pos)
        return QPointF(min(max(p.x(), 0.0), self.image.width()), min(max(p.y(), 0.0), self.image.height()))

    # ---- shapes and the ROI over the image ----

    def _paint_marks(self, p: QPainter) -> None:
        if self.show_shapes:
            for shape in self.shapes:
                self._paint_shape(p, shape)
        roi = self._selecting_rect() or (QRectF(*self.roi) if self.roi else None)
        if roi is not None:
            pen = QPen(QColor(0, 230, 255), 1, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(self.to_widget(roi.left(), roi.top()), self.to_widget(roi.right(), roi.bottom())))

    def _selecting_rect(self) -> QRectF | None:
        if self._selecting is None:
            return None
        return QRectF(*self._selecting).normalized()

    def _paint_shape(self, p: QPainter, shape: Shape) -> None:
        colour = QColor(*shape.colour)
        p.setPen(QPen(colour, 2))
        p.setBrush(Qt.BrushStyle.NoBrush)
        points = [self.to_widget(x, y) for x, y in shape.points]
        if shape.kind == "rect":
            p.drawRect(QRectF(points[0], points[1]))
        elif shape.kind == "line":
            p.drawLine(points[0], points[1])
        elif shape.kind == "polygon":  # a path, not drawPolygon(QPolygonF): see histview.polyline
            path = QPainterPath(points[0])
            for point in points[1:]:
                path.lineTo(point)
            path.closeSubpath()
            p.drawPath(path)
        elif shape.kind == "point":
            c = points[0]
            p.drawLine(c + QPointF(-5, 0), c + QPointF(5, 0))
            p.drawLine(c + QPointF(0, -5), c + QPointF(0, 5))
        if shape.text is not None:
            _outlined_text(p, points[0], shape.text, colour)
        if shape.label is not None:  # beside the shape: right of its first point, above it
            _outlined_text(p, points[0] + QPointF(3, -4), shape.label, colour)

    def wheelEvent(self, event: QWheelEvent | None) -> None:
        assert event is not None
        self._cursor = event.position()
        step = ZOOM_STEP if event.angleDelta().y() > 0 else 1 / ZOOM_STEP
        self.set_zoom(self.scale() * step)

    def leaveEvent(self, event: QEvent | None) -> None:
        self._cursor = None
        self.hovered.emit(-1, -1)


class TextLine(QWidget):
    """Text that changes every refresh, elided to its width (the whole text is its tooltip).
    Unlike a QLabel, setting its text never asks the window to lay itself out again: it only
    repaints its own strip. The elided lines are worked out when painted, so a text that
    does not change costs nothing, and one that does costs a few font measurements."""

    def __init__(self, parent: QWidget | None = None, *, lines: int = 1, bold: bool = False) -> None:
        super().__init__(parent)
        self._text = ""
        self._fields: tuple[Sequence[str], Sequence[str]] = ((), ())
        self._laid_out: tuple[tuple[str, int], list[str]] | None = None  # (text, width) -> lines
        self._rows: list[str] | None = None  # set_rows(): one line each, as given
        self._lines = lines
        if bold:
            font = self.font()
            font.setBold(True)
            self.setFont(font)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(lines * self.fontMetrics().height() + 4)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:
        self.set_fields([text], [])

    def set_fields(self, first: Sequence[str], rest: Sequence[str]) -> None:
        """Fields joined by ' · '. With two lines, ``first`` fills the first line as far as it
        fits, and what does not fit goes on the second, before ``rest``: put the fields that
        must always show first."""
        text = SEPARATOR.join([*first, *rest])
        if text != self._text or self._rows is not None:
            self._text, self._fields, self._rows = text, (first, rest), None
            self.setToolTip(text)
            self.update()

    def set_rows(self, rows: Sequence[str]) -> None:
        """One line per row, each elided to the width; the height follows the row count
        (which re-lays out the window: only when the count changes)."""
        text = "\n".join(rows)
        if text == self._text and self._rows is not None:
            return
        self._text, self._rows = text, list(rows)
        self.setToolTip(text)
        if len(rows) != self._lines:
            self._lines = len(rows)
            self.setFixedHeight(self._lines * self.fontMetrics().height() + 4)
        self.update()

    def shown_lines(self) -> list[str]:
        """The lines as painted, elided to the current width."""
        width = self.width() - 4
        key = (self._text, width)
        if self._laid_out is None or self._laid_out[0] != key:
            self._laid_out = (key, self._layout(width))
        return self._laid_out[1]

    def _layout(self, width: int) -> list[str]:
        metrics = self.fontMetrics()
        if self._rows is not None:
            return [_elide(metrics, row, width) for row in self._rows]
        first, rest = (list(f) for f in self._fields)
        if self._lines == 1:
            return [_elide(metrics, SEPARATOR.join(first + rest), width)]
        taken: list[str] = []
        while first and (not taken or metrics.horizontalAdvance(SEPARATOR.join([*taken, first[0]])) <= width):
            taken.append(first.pop(0))
        return [_elide(metrics, SEPARATOR.join(taken), width), _elide(metrics, SEPARATOR.join(first + rest), width)]

    def changeEvent(self, event: QEvent | None) -> None:
        super().changeEvent(event)
        if event is not None and event.type() == QEvent.Type.FontChange:
            self._laid_out = None
            self.setFixedHeight(self._lines * self.fontMetrics().height() + 4)

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        p.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        step = self.fontMetrics().height()
        for i, line in enumerate(self.shown_lines()):
            p.drawText(QRectF(2, 2 + i * step, self.width() - 4, step), Qt.AlignmentFlag.AlignVCenter, line)
        p.end()


def _elide(metrics: QFontMetrics, text: str, width: int) -> str:
    return metrics.elidedText(text, Qt.TextElideMode.ElideRight, width)


def _outlined_text(p: QPainter, at: QPointF, text: str, colour: QColor) -> None:
    """Text with a dark shadow, readable over light and dark images alike."""
    p.setPen(QColor(0, 0, 0))
    p.drawText(at + QPointF(1, 1), text)
    p.setPen(colour)
    p.drawText(at, text)
