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
    QFontMetricsF,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
    QRegion,
    QResizeEvent,
    QStaticText,
    QTransform,
    QWheelEvent,
)
from PyQt6.QtWidgets import QSizePolicy, QWidget

from viewer.view.overlay import DEFAULT_COLOUR, Point, Shape

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
        self.not_drawn = ""  # "+N not drawn" when the frame's overlay passed a cap
        self._marks = _Marks(())
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

    def set_shapes(self, shapes: tuple[Shape, ...], not_drawn: str = "") -> None:
        """A frame's shapes (and what its overlay had beyond the caps): made into paths here,
        once per frame, so a repaint (zoom, pan, the mouse) only draws them."""
        if shapes is not self.shapes or not_drawn != self.not_drawn:
            self.shapes, self.not_drawn = shapes, not_drawn
            self._marks = _Marks(shapes)
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
            self._marks.paint(p, self.target(), self.scale())
            if self.not_drawn:
                corner = self.target().intersected(QRectF(self.rect())).bottomLeft()
                _outlined_text(p, corner + QPointF(6, -6), self.not_drawn, QColor(*DEFAULT_COLOUR))
        roi = self._selecting_rect() or self._roi_on_image()
        if roi is not None:
            pen = QPen(QColor(0, 230, 255), 1, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(self.to_widget(roi.left(), roi.top()), self.to_widget(roi.right(), roi.bottom())))

    def _roi_on_image(self) -> QRectF | None:
        """The ROI as its statistics see it: clipped to the image (None when nothing is left),
        never drawn out into the margins."""
        if self.roi is None or self.image is None:
            return None
        clipped = QRectF(*self.roi).intersected(QRectF(0, 0, self.image.width(), self.image.height()))
        return None if clipped.isEmpty() else clipped

    def _selecting_rect(self) -> QRectF | None:
        if self._selecting is None:
            return None
        return QRectF(*self._selecting).normalized()

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


_CHUNK = 64  # path elements per path: Qt strokes a path into one fill whose cost grows with
# every edge a scanline crosses; 2,000 frame-wide segments took 80 ms as one path, 5 ms in
# paths of 8 to 128 elements (and as 500 paths of one shape each)


class _Marks:
    """A frame's shapes made ready to paint, once per frame: rects, lines and polygons as paths
    in image coordinates (by colour, in chunks of _CHUNK elements), drawn through the view's
    transform with a cosmetic pen (2 screen pixels at any zoom), so zoom and pan need no
    rebuild; the point crosses (a fixed size on screen) rebuilt only when the scale changes;
    the texts. Paths, not drawPolygon(QPolygonF): see histview.polyline."""

    def __init__(self, shapes: tuple[Shape, ...]) -> None:
        self.outlines: dict[tuple[int, int, int], list[QPainterPath]] = {}
        self.points: dict[tuple[int, int, int], list[Point]] = {}
        self.texts: dict[tuple[int, int, int], list[tuple[float, float, QPointF, QStaticText]]] = {}
        for shape in shapes:
            self._add(shape)
        self._crosses: tuple[float, dict[tuple[int, int, int], QPainterPath]] = (0.0, {})

    def _add(self, shape: Shape) -> None:
        (x, y), colour = shape.points[0], shape.colour
        if shape.kind == "point":
            self.points.setdefault(colour, []).append((x, y))
        elif shape.kind == "rect":
            (x1, y1) = shape.points[1]
            self._polyline(colour, ((x, y), (x1, y), (x1, y1), (x, y1), (x, y)))
        elif shape.kind != "text":
            closed = shape.kind == "polygon"
            self._polyline(colour, (*shape.points, shape.points[0]) if closed else shape.points)
        if shape.text is not None:
            self.texts.setdefault(colour, []).append((x, y, QPointF(0, 0), QStaticText(shape.text)))
        if shape.label is not None:  # beside the shape: right of its first point, above it
            self.texts.setdefault(colour, []).append((x, y, QPointF(3, -4), QStaticText(shape.label)))

    def _polyline(self, colour: tuple[int, int, int], points: tuple[Point, ...]) -> None:
        paths = self.outlines.setdefault(colour, [QPainterPath()])
        path, room = paths[-1], _CHUNK - paths[-1].elementCount()
        for i, (x, y) in enumerate(points):
            if room <= 0:  # go on in a new path, from the last point
                path, room = QPainterPath(path.currentPosition() if i else QPointF(x, y)), _CHUNK - 1
                paths.append(path)
            if i == 0:
                path.moveTo(x, y)
            else:
                path.lineTo(x, y)
            room -= 1

    def paint(self, p: QPainter, target: QRectF, scale: float) -> None:
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.save()
        p.setTransform(QTransform(scale, 0, 0, scale, target.x(), target.y()))
        for colour, paths in self.outlines.items():
            p.setPen(_cosmetic(colour))
            for path in paths:
                p.drawPath(path)
        p.restore()
        for colour, path in self._crosses_at(target, scale).items():
            p.setPen(_cosmetic(colour))
            p.drawPath(path)
        self._paint_texts(p, target, scale)

    def _paint_texts(self, p: QPainter, target: QRectF, scale: float) -> None:
        """Every text's dark shadow first, then the texts a colour at a time: a pen change
        between two texts tripled the cost of drawing them. QStaticText keeps each layout."""
        top = QPointF(target.x(), target.y() - QFontMetricsF(p.font()).ascent())  # its top left, not baseline
        spots = {c: [(top + QPointF(x * scale, y * scale) + o, t) for x, y, o, t in ts] for c, ts in self.texts.items()}
        p.setPen(QColor(0, 0, 0))
        for texts in spots.values():
            for spot, text in texts:
                p.drawStaticText(spot + QPointF(1, 1), text)
        for colour, texts in spots.items():
            p.setPen(QColor(*colour))
            for spot, text in texts:
                p.drawStaticText(spot, text)

    def _crosses_at(self, target: QRectF, scale: float) -> dict[tuple[int, int, int], QPainterPath]:
        """The crosses in widget coordinates, 10 pixels wide whatever the zoom: built again
        only when the scale changed, and moved (one call a colour) when only the pan did."""
        if self._crosses[0] != scale:
            self._crosses = (scale, {colour: _crosses(points, scale) for colour, points in self.points.items()})
        return {colour: path.translated(target.topLeft()) for colour, path in self._crosses[1].items()}


def _crosses(points: list[Point], scale: float) -> QPainterPath:
    path = QPainterPath()
    for x, y in points:
        cx, cy = x * scale, y * scale
        path.moveTo(cx - 5, cy)
        path.lineTo(cx + 5, cy)
        path.moveTo(cx, cy - 5)
        path.lineTo(cx, cy + 5)
    return path


def _cosmetic(colour: tuple[int, int, int]) -> QPen:
    pen = QPen(QColor(*colour), 2)
    pen.setCosmetic(True)
    return pen
