"""One stream in the window: a StreamPanel shows its image with the metadata's shapes, its
status line coloured by state, the zoom and the pixel under the cursor, the frame's metadata,
a region's statistics and a histogram. It polls its stream when the window says so and never
lets an exception out of a slot: whatever goes wrong is shown in the panel."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PyQt6.QtGui import QColor, QImage, QPalette
from PyQt6.QtWidgets import QVBoxLayout, QWidget

from viewer.errors import ShmviewError
from viewer.gui.histogram_view import HistogramView
from viewer.gui.image_view import ImageView, TextLine
from viewer.stream.frames import ERROR, LIVE, STALE, WAITING, describe
from viewer.view import imaging
from viewer.view.histogram import histogram
from viewer.view.monitor import RateMeter, RawSpec, Status, StreamMonitor
from viewer.view.overlay import NO_OVERLAY, meta_fields, not_drawn_text, parse_overlay
from viewer.view.statistics import Roi, roi_stats, roi_text
from viewer.view.status import error_reason, reason, status_words, waiting_text

if TYPE_CHECKING:
    from viewer.outfiles import OutputFolder

logger = logging.getLogger(__name__)

_QFORMAT = {imaging.RGB32: QImage.Format.Format_RGB32, imaging.GRAY8: QImage.Format.Format_Grayscale8}
_UNSET = object()  # no frame shown yet: whatever the first frame's metadata, show it
_STATE_COLOUR: dict[str, str] = {LIVE: "#2e7d32", STALE: "#c62828", WAITING: "#8d6e00", ERROR: "#ad1457"}


class StreamPanel(QWidget):
    """One stream: its image and its status line. ``last`` is the newest look at the stream,
    ``on_screen`` the look whose frame is shown (a private copy while paused)."""

    def __init__(
        self,
        name: str,
        *,
        raw: RawSpec | None = None,
        block: bool = False,
        levels: tuple[float, float] | None = None,
        roi: Roi | None = None,
    ) -> None:
        super().__init__()
        self.view = ImageView(self)
        self.histogram = HistogramView(self)  # hidden until H
        self.status = TextLine(self, lines=2, bold=True)  # its colour is the stream's state
        self.pixel = TextLine(self)  # zoom, and the pixel under the cursor
        self.roi_line = TextLine(self)  # the ROI's numbers, a row per channel; hidden without an ROI
        self.meta_line = TextLine(self)  # the frame's metadata; hidden when it has none
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        for widget, stretch in (
            (self.view, 1),
            (self.histogram, 0),
            (self.status, 0),
            (self.pixel, 0),
            (self.roi_line, 0),
            (self.meta_line, 0),
        ):
            layout.addWidget(widget, stretch)
        for hidden in (self.histogram, self.roi_line, self.meta_line):
            hidden.hide()
        self.view.hovered.connect(self._show_pixel)
        self.view.zoom_changed.connect(self._show_zoom)
        self.view.roi_selected.connect(lambda *r: self.set_roi(r))
        self.histogram.levels_dragged.connect(self.set_levels)
        self.roi: Roi | None = None
        self.fixed_levels = levels
        self.levels: tuple[float, float] | None = None  # the display levels of the frame shown
        self.raw, self.block = raw, block
        self.paused = False
        self.monitor: StreamMonitor | None = None
        self._state = ""
        self._error: str | None = None
        self._zoom_text = self._pixel_text = self._note = ""
        self.attach(name)
        if roi is not None:
            self.set_roi(roi)

    def attach(self, name: str) -> None:
        """Follow another stream in this panel."""
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        self.name = name
        self.auto_levels = imaging.AutoLevels()
        self.last: Status | None = None
        self.on_screen: Status | None = None
        self._bgra: np.ndarray | None = None
        self.shown = 0
        self._display_rate = RateMeter()
        self._note = ""
        self._meta: object = _UNSET
        self.overlay = NO_OVERLAY
        self.view.set_image(None)
        self.view.set_shapes(())
        self._show_meta(None)
        self._waiting_since = time.monotonic()
        self._waiting: tuple[float, str] = (-1.0, "")  # (when, text): the hint is redone once a second
        self.view.set_overlay(self._waiting_text())
        self.monitor = StreamMonitor(name, raw=self.raw, block=self.block)

    def refresh(self) -> None:
        """Poll the stream once; show its new frame, unless paused, and its health always."""
        # A slot that raises aborts a PyQt6 program: whatever one stream does
        # wrong is shown in its panel, and the other panels go on.
        try:
            self._refresh()
        except Exception as exc:
            self.show_error(reason(exc))

    def _refresh(self) -> None:
        if self.monitor is None:
            return  # attaching failed: the panel says why already
        s = self.monitor.poll()
        if s.state == ERROR:
            self.last = s
            self.show_error(error_reason(s))
            return
        self._error = None
        if s.frame is not None and not self.paused and (s.new or self.on_screen is None):
            self._show(s)  # a new frame, or the current one again after an error cleared the view
        self._note_restart(s)
        self.last = s
        overlay = {STALE: "STALE: producer gone or silent"}
        text = self._waiting_text() if s.state == WAITING else overlay.get(s.state, "")
        self.view.set_overlay(text, dimmed=s.state == STALE and self.view.image is not None)
        self._set_status(s)

    def _waiting_text(self) -> str:
        """What the panel waits for, and after a few seconds what is live instead (the
        registry is read at most once a second for it)."""
        now = time.monotonic()
        if now - self._waiting[0] >= 1.0:
            by_block = self.block or self.raw is not None
            self._waiting = (now, waiting_text(self.name, now - self._waiting_since, block=by_block))
        return self._waiting[1]

    def below_image(self) -> int:
        """The height the panel's lines and histogram take under its image (fixed heights)."""
        layout = self.layout()
        assert layout is not None
        spacing = max(0, layout.spacing())
        shown = [
            w for w in (self.histogram, self.status, self.pixel, self.roi_line, self.meta_line) if not w.isHidden()
        ]
        return sum(w.minimumHeight() + spacing for w in shown)

    def pad_below(self, pixels: int) -> None:
        """Empty room under the lines, so that panels side by side have images of one height."""
        layout = self.layout()
        assert layout is not None
        if layout.contentsMargins().bottom() != 2 + pixels:
            layout.setContentsMargins(2, 2, 2, 2 + pixels)

    def set_paused(self, paused: bool) -> None:
        """Freeze the image (keep polling the health). The monitor reuses its two frame
        buffers, so a frozen frame must be a copy of its own."""
        self.paused = paused
        try:
            if paused and self.on_screen is not None and self.on_screen.frame is not None:
                frame = self.on_screen.frame
                frozen = dataclasses.replace(frame, image=frame.image.copy())
                self._show(dataclasses.replace(self.on_screen, frame=frozen), count=False)
            elif not paused and self.last is not None and self.last.frame is not None and not self._error:
                self._show(self.last, count=False)  # the newest frame, at once
            if self.last is not None and not self._error:
                self._set_status(self.last)
        except Exception as exc:  # called from a slot: an escaping exception aborts PyQt6
            self.show_error(reason(exc))

    def show_error(self, why: str) -> None:
        """The stream cannot be used: say why in the panel and its status line."""
        if why != self._error:  # once, not every refresh
            logger.warning("%s", why if self.name in why else f"{self.name}: {why}")
            self._error = why
        if not self.paused:
            self.view.set_image(None)
            self.view.set_shapes(())
            self.on_screen = None
        self.view.set_overlay(why, dimmed=self.view.image is not None)
        self.status.set_fields(*status_fields(Status(self.name, ERROR, error=why), None))
        self._colour(ERROR)

    def _note_restart(self, s: Status) -> None:
        previous = self.last.info if self.last else None
        if previous and s.info and (previous.shape, previous.dtype) != (s.info.shape, s.info.dtype):
            # the producer came back with another format: say so plainly
            now, was = (describe(i.shape, i.dtype, i.pixel_format) for i in (s.info, previous))
            self._note = f"{self.name} restarted as {now}, was {was}"  # WxH, as everywhere people read sizes
            self._update_pixel_line()

    def _set_status(self, s: Status) -> None:
        shown_fps = self._display_rate.add(time.monotonic(), self.shown)
        if s.state == WAITING:
            shown_fps = None
        elif self.paused or s.state != LIVE:
            shown_fps = 0.0  # nothing is being shown: say so now, not over the next second
        shown = self.on_screen if self.paused else None
        if shown is not None:  # the frozen frame's numbers, the stream's health
            s = dataclasses.replace(s, info=shown.info, frame=shown.frame, sum=shown.sum, latency_ms=shown.latency_ms)
        elif self.paused:
            s = dataclasses.replace(s, frame=None, sum=None, latency_ms=None)
        self.status.set_fields(*status_fields(s, shown_fps, paused=self.paused))
        self._colour(s.state)

    def _colour(self, state: str) -> None:
        if self._state != state:  # recolour only when the state changes
            self._state = state
            palette = self.status.palette()
            palette.setColor(QPalette.ColorRole.WindowText, QColor(_STATE_COLOUR.get(state, "#c62828")))
            self.status.setPalette(palette)

    def _show(self, s: Status, *, count: bool = True) -> None:
        assert s.frame is not None and s.info is not None
        image = s.frame.image
        self.levels = None
        if image.dtype != np.uint8:
            self.levels = lo, hi = self.fixed_levels or self.auto_levels.update(image)
            image = imaging.to_uint8(image, lo, hi)
        pixels, fmt = imaging.display_image(image, s.info.pixel_format, self._bgra)
        if fmt == imaging.RGB32:
            self._bgra = pixels
        h, w = pixels.shape[:2]
        # no copy: QImage wraps the buffer (its stubs want bytes, PyQt6 takes any buffer)
        qimage = QImage(pixels.data, w, h, pixels.strides[0], _QFORMAT[fmt])  # type: ignore[call-overload]
        qimage.ndarray = pixels  # keep the pixels alive with it
        self.on_screen = s
        self.view.set_image(qimage)
        self._show_meta(s.frame.meta)
        self._update_stats()
        self.shown += count
        if self.view.under_mouse():
            self.view.emit_hovered()  # the value under a still mouse changed with the frame

    # ---- metadata, ROI and histogram: computed on the frame shown, when it is shown ----

    def _show_meta(self, meta: object) -> None:
        """The metadata line and the overlay's shapes, redone only when the metadata changed."""
        if meta is self._meta or meta == self._meta:  # most often None is None: nothing to do
            return
        self._meta = meta
        self.overlay = parse_overlay(meta)
        self.view.set_shapes(self.overlay.shapes, not_drawn_text(self.overlay))
        fields = meta_fields(meta, self.overlay)
        self.meta_line.set_fields(fields, [])
        if self.meta_line.isHidden() == bool(fields):  # a re-layout only when it comes or goes
            self.meta_line.setVisible(bool(fields))

    def set_roi(self, roi: Roi | None) -> None:
        """Show the statistics of ``roi`` (x, y, w, h in image pixels) on every frame; None: no ROI."""
        try:
            self.roi = roi
            self.view.set_roi(roi)
            self.roi_line.setVisible(roi is not None)
            self._update_stats()
        except Exception as exc:  # called from slots: an escaping exception aborts PyQt6
            self.show_error(reason(exc))

    def set_histogram_visible(self, visible: bool) -> None:
        self.histogram.setVisible(visible)
        try:
            self._update_stats()
        except Exception as exc:  # called from a slot: an escaping exception aborts PyQt6
            self.show_error(reason(exc))

    def set_levels(self, lo: float, hi: float) -> None:
        """Fixed display levels from now on, as --levels sets them; the frame shown is redrawn."""
        self.fixed_levels = (lo, hi)
        try:
            if self.on_screen is not None and self.on_screen.frame is not None:
                self._show(self.on_screen, count=False)
        except Exception as exc:  # a slot: an exception escaping it aborts PyQt6
            self.show_error(reason(exc))

    def _update_stats(self) -> None:
        """The ROI's numbers and the histogram of the frame on screen. Only here, at once:
        the monitor reuses its frame buffers, so nothing keeps a frame for later."""
        s = self.on_screen
        if s is None or s.frame is None or s.info is None:
            if self.roi is not None:
                x, y, w, h = self.roi
                self.roi_line.set_rows([f"roi {x},{y},{w}x{h}: no frame"])
            return
        if self.roi is not None:
            self.roi_line.set_rows(roi_text(roi_stats(s.frame.image, self.roi, s.info.pixel_format)))
        if not self.histogram.isHidden():  # isVisible() is False too while the window is
            self.histogram.set_histogram(histogram(s.frame.image, s.info.pixel_format, self.levels), self.levels)

    def _show_pixel(self, x: int, y: int) -> None:
        self._pixel_text = ""
        s = self.on_screen
        if x >= 0 and s is not None and s.frame is not None and s.info is not None:
            try:
                self._pixel_text = pixel_text(s.frame.image, x, y, s.info.pixel_format)
            except Exception as exc:  # a slot: an exception escaping it aborts PyQt6
                self._pixel_text = reason(exc)
        self._update_pixel_line()

    def _show_zoom(self) -> None:
        self._zoom_text = self.view.zoom_text()
        self._update_pixel_line()

    def _update_pixel_line(self) -> None:
        self.pixel.set_fields([p for p in (self._zoom_text, self._pixel_text or self._note) if p], [])

    def snapshot(self, folder: OutputFolder) -> Path | None:
        """Save the frame on screen at full resolution as a new file in ``folder``; None if
        there is none. A name that exists is refused (OutputError), never replaced."""
        import cv2

        s = self.on_screen
        if s is None or s.frame is None or s.info is None:
            return None
        pixels = imaging.snapshot_array(s.frame.image, s.info.pixel_format)
        suffix = ".tiff" if pixels.dtype.kind == "f" else ".png"  # PNG holds 8 and 16 bits only
        index = s.frame.index if s.frame.index is not None else int(time.time())
        name = f"{self.name}-{index:06d}{suffix}"
        ok, data = cv2.imencode(suffix, pixels)
        if not ok:
            raise ShmviewError(f"could not encode {name}")
        return folder.write_new(name, data.tobytes())  # not cv2.imwrite: it opens the path itself

    def close_stream(self) -> None:
        if self.monitor is None:
            return
        try:
            self.monitor.close()
        except Exception as exc:  # called from closeEvent: an exception there aborts PyQt6
            logger.warning("%s: closing: %s", self.name, reason(exc))


def pixel_text(image: np.ndarray, x: int, y: int, pixel_format: str) -> str:
    values = np.atleast_1d(image[y, x]).tolist()
    names = imaging.channel_names(pixel_format)
    return f"x={x} y={y}  " + " ".join(f"{c}={v:g}" for c, v in zip(names, values, strict=False))


def status_fields(s: Status, display_fps: float | None, *, paused: bool = False) -> tuple[list[str], list[str]]:
    """The status line, what matters most first: state, stream, frame, exact sum, rates;
    then size, type and latency, which may wrap or be cut when the panel is narrow. In the
    error state: the state, the stream and why."""
    words = status_words(s)
    if words.error is not None:
        return [words.state.upper(), words.stream], [words.error]
    shown = None if display_fps is None else f"shown {display_fps:.1f} fps"
    first = [words.state.upper(), "PAUSED" if paused else None, words.stream, words.frame, words.sum, words.fps, shown]
    rest = [words.size, words.latency, words.source]
    return [f for f in first if f is not None], [f for f in rest if f is not None]
