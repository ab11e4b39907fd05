"""The window's small widgets: an image view with zoom, pan and an overlay, and text lines
that fit their width. They know nothing about streams."""

from __future__ import annotations

from collections.abc import Sequence

from PyQt6.QtCore import QEvent, QPointF, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import (
    QColor,
    QFontMetrics,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QRegion,
    QResizeEvent,
    QWheelEvent,
)
from PyQt6.QtWidgets import QSizePolicy, QWidget

BACKGROUND = QColor(24, 24, 24)
ZOOM_STEP = 1.25
SEPARATOR = " · "


class ImageView(QWidget):
    """Paints one QImage, fitted (aspect kept) or at a zoom factor, with an overlay text."""

    hovered = pyqtSignal(int, int)  # image pixel under the cursor, or (-1, -1)
    zoom_changed = pyqtSignal()  # the scale may have changed: zoom, resize, another image size
    clicked = pyqtSignal()

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
        if self._drag is not None and self.zoom is not None:
            self._pan += event.position() - self._drag
            self._drag = event.position()
            self.update()
        self._cursor = event.position()
        self.emit_hovered()

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        assert event is not None
        self._drag = event.position()
        self.clicked.emit()

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:
        self._drag = None

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
        if text != self._text:
            self._text, self._fields = text, (first, rest)
            self.setToolTip(text)
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
