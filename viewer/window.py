"""The Qt window: panels that show streams, one QTimer, one refresh(). Drawing only;
following streams is viewer/monitor.py's job and pixel conversion viewer/imaging.py's."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, QSettings, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import (
    QAction,
    QColor,
    QImage,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QRegion,
    QWheelEvent,
)
from PyQt6.QtWidgets import QGridLayout, QMainWindow, QSizePolicy, QVBoxLayout, QWidget

from viewer import imaging
from viewer.errors import ShmviewError
from viewer.monitor import LIVE, STALE, WAITING, RateMeter, RawSpec, Status, StreamMonitor

_QFORMAT = {imaging.RGB32: QImage.Format.Format_RGB32, imaging.GRAY8: QImage.Format.Format_Grayscale8}
_STATE_COLOUR = {LIVE: "#2e7d32", STALE: "#c62828", WAITING: "#8d6e00"}
_BACKGROUND = QColor(24, 24, 24)
ZOOM_STEP = 1.25


class ImageView(QWidget):
    """Paints one QImage, fitted (aspect kept) or at a zoom factor, with an overlay text."""

    hovered = pyqtSignal(int, int)  # image pixel under the cursor, or (-1, -1)

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

    def set_image(self, image: QImage | None) -> None:
        self.image = image
        self.update()

    def set_overlay(self, text: str, *, dimmed: bool = False) -> None:
        if (text, dimmed) != (self.overlay, self.dimmed):
            self.overlay, self.dimmed = text, dimmed
            self.update()

    def set_zoom(self, zoom: float | None) -> None:
        self.zoom, self._pan = zoom, QPointF(0, 0)
        self.update()

    def scale(self) -> float:
        if self.image is None or self.image.isNull():
            return 1.0
        if self.zoom is not None:
            return self.zoom
        return min(self.width() / self.image.width(), self.height() / self.image.height())

    def target(self) -> QRectF:
        """Where the image lands in widget coordinates."""
        assert self.image is not None
        s = self.scale()
        w, h = self.image.width() * s, self.image.height() * s
        return QRectF((self.width() - w) / 2 + self._pan.x(), (self.height() - h) / 2 + self._pan.y(), w, h)

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        if self.image is None:
            p.fillRect(self.rect(), _BACKGROUND)
        else:
            target = self.target()
            p.setClipRegion(QRegion(self.rect()) - QRegion(target.toAlignedRect()))
            p.fillRect(self.rect(), _BACKGROUND)  # only the margins around the image
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
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.overlay)
        p.end()

    def mouseMoveEvent(self, event: QMouseEvent | None) -> None:
        assert event is not None
        if self._drag is not None and self.zoom is not None:
            self._pan += event.position() - self._drag
            self._drag = event.position()
            self.update()
        if self.image is None:
            return
        r, pos = self.target(), event.position()
        x, y = int((pos.x() - r.x()) / self.scale()), int((pos.y() - r.y()) / self.scale())
        inside = 0 <= x < self.image.width() and 0 <= y < self.image.height()
        self.hovered.emit(*((x, y) if inside else (-1, -1)))

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        assert event is not None
        self._drag = event.position()

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:
        self._drag = None

    def wheelEvent(self, event: QWheelEvent | None) -> None:
        assert event is not None
        step = ZOOM_STEP if event.angleDelta().y() > 0 else 1 / ZOOM_STEP
        self.set_zoom(self.scale() * step)

    def leaveEvent(self, event: object) -> None:
        self.hovered.emit(-1, -1)


class StreamPanel(QWidget):
    """One stream: its image and its status line."""

    def __init__(self, name: str, *, raw: RawSpec | None = None, levels: tuple[float, float] | None = None):
        super().__init__()
        self.view = ImageView(self)
        self.status = TextLine(self)  # its colour is the stream's state
        self.pixel = TextLine(self)  # the pixel under the cursor
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.pixel)
        self.view.hovered.connect(self._show_pixel)
        self.fixed_levels = levels
        self.raw = raw
        self.last: Status | None = None
        self._state = ""
        font = self.status.font()
        font.setBold(True)
        self.status.setFont(font)
        self.status.setFixedHeight(self.status.fontMetrics().height() + 4)
        self.attach(name)

    def attach(self, name: str) -> None:
        """Follow another stream in this panel."""
        if getattr(self, "monitor", None) is not None:
            self.monitor.close()
        self.name = name
        self.monitor = StreamMonitor(name, raw=self.raw)
        self.auto_levels = imaging.AutoLevels()
        self.last, self._bgra, self.shown = None, None, 0
        self._display_rate = RateMeter()
        self.view.set_image(None)
        self.view.set_overlay(f"waiting for stream '{name}'…")

    def refresh(self) -> None:
        """Poll the stream once and repaint if a new frame arrived."""
        try:
            s = self.monitor.poll()
        except ShmviewError as exc:  # a corrupt or foreign block: say so, try again next tick
            self.view.set_image(None)
            self.view.set_overlay(str(exc))
            self._set_status(f"{self.name} · UNUSABLE", STALE)
            return
        if s.new and s.frame is not None:
            self._show(s)
        previous = self.last.info if self.last else None
        if previous and s.info and (previous.shape, previous.dtype) != (s.info.shape, s.info.dtype):
            self.pixel.setText(  # the producer came back with another format: say so plainly
                f"{self.name} restarted as {_describe(s.info.shape, s.info.dtype)}, "
                f"was {_describe(previous.shape, previous.dtype)}"
            )
        self.last = s
        overlay = {WAITING: f"waiting for stream '{self.name}'…", STALE: "STALE: producer gone or silent"}
        self.view.set_overlay(overlay.get(s.state, ""), dimmed=s.state == STALE and s.frame is not None)
        self._set_status(status_text(s, self._display_rate.add(time.monotonic(), self.shown)), s.state)

    def _set_status(self, text: str, state: str) -> None:
        self.status.setText(text)
        if self._state != state:  # recolour only when the state changes
            self._state = state
            palette = self.status.palette()
            palette.setColor(QPalette.ColorRole.WindowText, QColor(_STATE_COLOUR[state]))
            self.status.setPalette(palette)

    def _show(self, s: Status) -> None:
        assert s.frame is not None and s.info is not None
        image = s.frame.image
        if image.dtype != np.uint8:
            lo, hi = self.fixed_levels or self.auto_levels.update(image)
            image = imaging.to_uint8(image, lo, hi)
        pixels, fmt = imaging.display_image(image, s.info.pixel_format, self._bgra)
        if fmt == imaging.RGB32:
            self._bgra = pixels
        h, w = pixels.shape[:2]
        qimage = QImage(pixels.data, w, h, pixels.strides[0], _QFORMAT[fmt])
        qimage.ndarray = pixels  # type: ignore[attr-defined]  # keep the pixels alive with it
        self.view.set_image(qimage)
        self.shown += 1

    def _show_pixel(self, x: int, y: int) -> None:
        frame = self.last.frame if self.last else None
        if x < 0 or frame is None or self.last is None or self.last.info is None:
            self.pixel.setText("")
            return
        value = frame.image[y, x]
        names = imaging.channel_names(self.last.info.pixel_format)
        values = np.atleast_1d(value)
        text = " ".join(f"{c}={v:g}" for c, v in zip(names, values.tolist(), strict=False))
        self.pixel.setText(f"x={x} y={y}  {text}")

    def snapshot(self, folder: Path) -> Path | None:
        """Save the current frame at full resolution; None if there is none."""
        import cv2

        frame = self.last.frame if self.last else None
        if frame is None or self.last is None or self.last.info is None:
            return None
        pixels = imaging.snapshot_array(frame.image, self.last.info.pixel_format)
        suffix = ".tiff" if pixels.dtype.kind == "f" else ".png"  # PNG holds 8 and 16 bits only
        index = frame.index if frame.index is not None else int(time.time())
        path = folder / f"{self.name}-{index:06d}{suffix}"
        if not cv2.imwrite(str(path), pixels):
            raise ShmviewError(f"could not write {path}")
        return path

    def close_stream(self) -> None:
        self.monitor.close()


def _describe(shape: tuple[int, ...], dtype: str) -> str:
    return "x".join(map(str, shape)) + f" {dtype}"


class TextLine(QWidget):
    """One line of text that changes every refresh. Unlike a QLabel, setting its text never
    asks the window to lay itself out again: it only repaints its own strip."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(self.fontMetrics().height() + 4)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.update()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        p.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        p.drawText(self.rect().adjusted(2, 0, -2, 0), Qt.AlignmentFlag.AlignVCenter, self._text)
        p.end()


def status_text(s: Status, display_fps: float | None) -> str:
    """The status line: stream, size, type, frame, exact sum, rates, latency, state."""
    parts = [s.stream]
    if s.info is not None:
        h, w = s.info.shape[:2]
        channels = s.info.shape[2] if len(s.info.shape) == 3 else 1
        parts += [f"{w}x{h}", f"{channels} ch {s.info.dtype} {s.info.pixel_format}"]
    if s.frame is not None:
        parts.append(f"frame {s.frame.index:,}" if s.frame.index is not None else "raw")
        parts.append(f"sum {s.sum:,}" if isinstance(s.sum, int) else f"sum {s.sum:.6g}")
    if s.fps is not None:
        parts.append(f"{s.fps:.1f} fps")
    if display_fps is not None:
        parts.append(f"shown {display_fps:.1f} fps")
    if s.latency_ms is not None:
        parts.append(f"{s.latency_ms:.1f} ms")
    parts.append(s.state.upper())
    return " · ".join(parts)


class ViewerWindow(QMainWindow):
    """Several stream panels in a grid, refreshed together by one timer."""

    def __init__(
        self,
        names: Sequence[str],
        *,
        interval_ms: int = 300,
        raw: RawSpec | None = None,
        levels: tuple[float, float] | None = None,
        snapshot_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("shmview: " + ", ".join(names))
        self.snapshot_dir = snapshot_dir or Path.cwd()
        self.panels = [StreamPanel(n, raw=raw, levels=levels) for n in names]
        self.current = self.panels[0]  # the panel the stream menu switches
        grid = QWidget(self)
        layout = QGridLayout(grid)
        columns = math.ceil(math.sqrt(len(self.panels)))
        for i, panel in enumerate(self.panels):
            layout.addWidget(panel, i // columns, i % columns)
        self.setCentralWidget(grid)
        self.paused = False
        self._build_menus()
        self.resize(900, 700)
        self._settings = QSettings("shmview", "viewer")
        geometry = self._settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(interval_ms)
        self.refresh()

    def _action(self, menu_name: str, text: str, keys: Sequence[str], slot: object) -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.triggered.connect(slot)
        self.menus[menu_name].addAction(action)
        self.addAction(action)  # shortcuts work even when the menu bar is hidden
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        assert bar is not None
        self.menus = {n: bar.addMenu(n) for n in ("&File", "&View", "&Stream")}
        self.snapshot_action = self._action("&File", "Save snapshot", ["Ctrl+S"], self.save_snapshots)
        self._action("&File", "Quit", ["Ctrl+Q"], self.close)
        self.pause_action = self._action("&View", "Pause", ["Space"], self.toggle_pause)
        self.pause_action.setCheckable(True)
        self._action("&View", "Zoom to fit", ["F"], lambda: self._zoom(None))
        self._action("&View", "Actual size (100 %)", ["1"], lambda: self._zoom(1.0))
        self._action("&View", "Zoom in", ["+", "="], lambda: self._zoom(ZOOM_STEP))
        self._action("&View", "Zoom out", ["-"], lambda: self._zoom(1 / ZOOM_STEP))
        streams = self.menus["&Stream"]
        streams.aboutToShow.connect(self._fill_stream_menu)

    def _fill_stream_menu(self) -> None:
        from viewer.registry import live_records

        menu = self.menus["&Stream"]
        menu.clear()
        names = [r.name for r in live_records()]
        for name in names:
            action = menu.addAction(name)
            assert action is not None
            action.setCheckable(True)
            action.setChecked(name == self.current.name)
            action.triggered.connect(lambda _=False, n=name: self.switch_stream(n))
        if not names:
            none = menu.addAction("(no live streams)")
            assert none is not None
            none.setEnabled(False)

    def switch_stream(self, name: str) -> None:
        self.current.attach(name)
        self.setWindowTitle("shmview: " + ", ".join(p.name for p in self.panels))
        self.current.refresh()

    def refresh(self) -> None:
        if self.paused:
            return
        for panel in self.panels:
            panel.refresh()

    def toggle_pause(self) -> None:
        self.paused = not self.paused
        self.pause_action.setChecked(self.paused)
        self.statusBar().showMessage("paused (Space resumes)" if self.paused else "resumed", 0 if self.paused else 2000)

    def _zoom(self, factor: float | None) -> None:
        for panel in self.panels:
            if factor is None or factor == 1.0:
                panel.view.set_zoom(factor)
            else:
                panel.view.set_zoom(panel.view.scale() * factor)

    def save_snapshots(self) -> list[Path]:
        # A slot that raises aborts a PyQt6 program: a snapshot that fails is a message.
        try:
            saved = [p for p in (panel.snapshot(self.snapshot_dir) for panel in self.panels) if p]
        except (ShmviewError, OSError) as exc:
            self.statusBar().showMessage(f"snapshot failed: {exc}", 10000)
            return []
        self.statusBar().showMessage("saved " + ", ".join(map(str, saved)) if saved else "no frame to save", 5000)
        return saved

    def closeEvent(self, event: object) -> None:
        self.timer.stop()
        self._settings.setValue("geometry", self.saveGeometry())
        for panel in self.panels:
            panel.close_stream()
        super().closeEvent(event)  # type: ignore[arg-type]


def run(names: Sequence[str], **options: object) -> int:
    """Open the window and run until it is closed, or SIGINT / SIGTERM / SIGHUP arrives."""
    import signal

    from PyQt6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["shmview"])
    imaging.single_threaded_opencv()
    window = ViewerWindow(names, **options)  # type: ignore[arg-type]
    window.show()
    # Python runs signal handlers between bytecodes; the refresh timer gives it the chance.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: window.close())
    return int(app.exec())
