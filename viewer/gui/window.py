"""The Qt window: stream panels in a grid, one QTimer, one refresh(), menus and keys, and a
shutdown on SIGINT / SIGTERM / SIGHUP that never runs inside a signal handler."""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from PyQt6.QtCore import QSettings, QSocketNotifier, QTimer
from PyQt6.QtGui import QAction, QCloseEvent, QKeySequence
from PyQt6.QtWidgets import QGridLayout, QLabel, QMainWindow, QMenu, QStatusBar, QWidget

from viewer.gui.image_view import ZOOM_STEP, ImageView, TextLine
from viewer.gui.panel import StreamPanel
from viewer.outfiles import OutputFolder
from viewer.signals import STOP_SIGNALS, SignalStop
from viewer.view import imaging
from viewer.view.monitor import RawSpec
from viewer.view.statistics import Roi
from viewer.view.status import reason

__all__ = ["ImageView", "StreamPanel", "TextLine", "ViewerWindow", "run"]


class ViewerWindow(QMainWindow):
    """Several stream panels in a grid, refreshed together by one timer every ``interval_s``."""

    def __init__(
        self,
        names: Sequence[str],
        *,
        interval_s: float = 0.3,
        raw: RawSpec | None = None,
        block: bool = False,
        levels: tuple[float, float] | None = None,
        snapshot_dir: Path | None = None,
        roi: Roi | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("shmview: " + ", ".join(names))
        self.snapshot_dir = snapshot_dir or Path.cwd()
        self.panels = [StreamPanel(n, raw=raw, block=block, levels=levels, roi=roi) for n in names]
        self.current = self.panels[0]  # the last panel clicked: keys and the stream menu act on it
        grid = QWidget(self)
        layout = QGridLayout(grid)
        columns = math.ceil(math.sqrt(len(self.panels)))
        for i, panel in enumerate(self.panels):
            layout.addWidget(panel, i // columns, i % columns)
            panel.view.clicked.connect(lambda p=panel: setattr(self, "current", p))
        self.setCentralWidget(grid)
        self.paused = False
        self.paused_label = QLabel("PAUSED")
        self.paused_label.setStyleSheet("font-weight: bold; color: #8d6e00; padding: 0 6px")
        self.status_bar = QStatusBar(self)  # what statusBar() would make; held, as it is never None
        self.setStatusBar(self.status_bar)
        self.status_bar.addPermanentWidget(self.paused_label)
        self.paused_label.hide()
        self._build_menus()
        self.resize(900, 700)
        self._settings = QSettings("shmview", "viewer")
        geometry = self._settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(round(interval_s * 1000))  # QTimer counts whole milliseconds
        self.refresh()

    def _action(self, menu_name: str, text: str, keys: Sequence[str], slot: Callable[[], object]) -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.triggered.connect(lambda _=False: slot())
        self.menus[menu_name].addAction(action)
        self.addAction(action)  # shortcuts work even when the menu bar is hidden
        return action

    def _toggle(self, text: str, key: str, on: bool, act: Callable[[StreamPanel, bool], object]) -> QAction:
        """A checkable View entry that does ``act(panel, checked)`` to every panel."""
        action = self._action("&View", text, [key], lambda: None)
        action.setCheckable(True)
        action.setChecked(on)
        action.toggled.connect(lambda checked: self._to_every_panel(act, checked))
        return action

    def _to_every_panel(self, act: Callable[[StreamPanel, bool], object], on: bool) -> None:
        try:
            for panel in self.panels:
                act(panel, on)
        except Exception as exc:  # a slot: an exception escaping it aborts PyQt6
            self.status_bar.showMessage(reason(exc), 10000)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        assert bar is not None
        self.menus: dict[str, QMenu] = {}
        for name in ("&File", "&View", "&Stream"):
            menu = bar.addMenu(name)
            assert menu is not None
            self.menus[name] = menu
        self.snapshot_action = self._action("&File", "Save snapshot", ["Ctrl+S"], self.save_snapshots)
        self._action("&File", "Quit", ["Ctrl+Q"], self.close)
        self.pause_action = self._action("&View", "Pause", ["Space"], self.toggle_pause)
        self.pause_action.setCheckable(True)
        self._action("&View", "Zoom to fit", ["F"], lambda: self._zoom(None))
        self._action("&View", "Actual size (100 %)", ["1"], lambda: self._zoom(1.0))
        self._action("&View", "Zoom in", ["+", "="], lambda: self._zoom(ZOOM_STEP))
        self._action("&View", "Zoom out", ["-"], lambda: self._zoom(1 / ZOOM_STEP))
        self.menus["&View"].addSeparator()
        self.overlay_action = self._toggle(
            "Overlays (metadata shapes)", "O", True, lambda p, on: p.view.set_show_shapes(on)
        )
        self.histogram_action = self._toggle("Histogram", "H", False, lambda p, on: p.set_histogram_visible(on))
        self.log_action = self._toggle("Histogram: log counts", "L", False, lambda p, on: p.histogram.set_log(on))
        self._action(
            "&View",
            "Clear ROI (Shift-drag or right-drag selects one)",
            ["Esc"],
            lambda: self.target_panel().set_roi(None),
        )
        streams = self.menus["&Stream"]
        streams.aboutToShow.connect(self._fill_stream_menu)

    def _fill_stream_menu(self) -> None:
        from viewer.stream.registry import live_records

        menu = self.menus["&Stream"]
        menu.clear()
        try:
            names = [r.name for r in live_records()]
        except Exception as exc:  # an unreadable registry folder: say so (a slot must not raise)
            self._disabled_entry(f"cannot list streams: {reason(exc)}")
            return
        for name in names:
            action = menu.addAction(name)
            assert action is not None
            action.setCheckable(True)
            action.setChecked(name == self.current.name)
            action.triggered.connect(lambda _=False, n=name: self.switch_stream(n))
        if not names:
            self._disabled_entry("(no live streams)")

    def _disabled_entry(self, text: str) -> None:
        entry = self.menus["&Stream"].addAction(text)
        assert entry is not None
        entry.setEnabled(False)

    def switch_stream(self, name: str) -> None:
        try:
            self.current.attach(name)
        except Exception as exc:  # a slot: an exception escaping it aborts PyQt6
            self.current.show_error(reason(exc))
            return
        self.setWindowTitle("shmview: " + ", ".join(p.name for p in self.panels))
        self.current.refresh()

    def refresh(self) -> None:
        """Every panel polls its stream, paused or not: pause freezes images, not health.
        Each panel catches and shows its own stream's failures."""
        for panel in self.panels:
            panel.refresh()
        self.align_panels()

    def align_panels(self) -> None:
        """Give every panel's image the same height: a panel whose metadata, ROI or
        histogram lines take less room gets that much empty room under them."""
        if len(self.panels) > 1:
            below = [panel.below_image() for panel in self.panels]
            for panel, own in zip(self.panels, below, strict=True):
                panel.pad_below(max(below) - own)

    def toggle_pause(self) -> None:
        self.paused = not self.paused
        self.pause_action.setChecked(self.paused)
        for panel in self.panels:
            panel.set_paused(self.paused)
        self.paused_label.setVisible(self.paused)
        self.status_bar.showMessage("paused (Space resumes)" if self.paused else "resumed", 3000)

    def target_panel(self) -> StreamPanel:
        """The panel under the mouse, or else the last one clicked."""
        return next((p for p in self.panels if p.view.under_mouse()), self.current)

    def _zoom(self, factor: float | None) -> None:
        view = self.target_panel().view
        view.set_zoom(factor if factor is None or factor == 1.0 else view.scale() * factor)

    def save_snapshots(self) -> list[Path]:
        """Each panel's frame as a new file in the snapshot folder (viewer/outfiles.py says
        which folders and names are refused); what was saved and what was not goes to the
        status bar. A slot that raises aborts a PyQt6 program: nothing escapes."""
        saved: list[Path] = []
        failed: list[str] = []
        try:
            with OutputFolder(self.snapshot_dir, create=True) as folder:
                for panel in self.panels:  # one panel's refusal does not stop the others
                    try:
                        if (path := panel.snapshot(folder)) is not None:
                            saved.append(path)
                    except Exception as exc:
                        failed.append(reason(exc))
        except Exception as exc:  # the folder itself
            failed.append(reason(exc))
        said = [f"saved {', '.join(map(str, saved))}"] if saved else []
        said += [f"snapshot failed: {'; '.join(failed)}"] if failed else []
        self.status_bar.showMessage("; ".join(said) or "no frame to save", 10000 if failed else 5000)
        return saved

    def closeEvent(self, event: QCloseEvent | None) -> None:
        self.timer.stop()
        self._settings.setValue("geometry", self.saveGeometry())
        for panel in self.panels:
            panel.close_stream()
        super().closeEvent(event)


class ShutdownSignals:
    """SIGINT, SIGTERM and SIGHUP close the window from the event loop, never from the
    handler: a handler runs between any two bytecodes, also in the middle of a refresh, and
    closing a stream under a running copy is a segfault (numpy views do not pin an mmap).
    The signals, their handlers (a flag) and the wakeup pipe are viewer.signals.SignalStop's;
    a QSocketNotifier on the pipe wakes the event loop at once, whatever the refresh
    interval, to run ``on_signal`` after the current refresh has returned."""

    SIGNALS = STOP_SIGNALS

    def __init__(self) -> None:
        self._notifier: QSocketNotifier | None = None
        self._installed = contextlib.ExitStack()

    def __enter__(self) -> ShutdownSignals:
        self.stop = self._installed.enter_context(SignalStop.installed())
        return self

    def connect(self, on_signal: Callable[[], object]) -> None:
        """Call ``on_signal`` from the event loop when one of the signals arrives (also one
        that arrived before this call). Needs a QApplication."""
        # PyQt6 takes the descriptor as an int; its stubs only know sip.voidptr
        self._notifier = QSocketNotifier(self.stop.fileno(), QSocketNotifier.Type.Read)  # type: ignore[call-overload]
        self._notifier.activated.connect(lambda *_: self._woken(on_signal))

    def _woken(self, on_signal: Callable[[], object]) -> None:
        self.stop.drain()
        if self.stop.is_set():
            on_signal()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._notifier is not None:
            self._notifier.setEnabled(False)
        self._installed.close()


def run(
    names: Sequence[str],
    *,
    interval_s: float = 0.3,
    raw: RawSpec | None = None,
    block: bool = False,
    levels: tuple[float, float] | None = None,
    snapshot_dir: Path | None = None,
    roi: Roi | None = None,
) -> int:
    """Open the window on ``names``, refreshed every ``interval_s``, and run until it is
    closed, or SIGINT / SIGTERM / SIGHUP arrives. The other arguments are ViewerWindow's.
    Returns the Qt event loop's exit code."""
    from PyQt6.QtWidgets import QApplication

    with ShutdownSignals() as signals:  # first, so that no signal is lost while Qt starts
        install_qt_message_filter()
        app = QApplication.instance() or QApplication(["shmview"])
        imaging.single_threaded_opencv()
        window = ViewerWindow(
            names, interval_s=interval_s, raw=raw, block=block, levels=levels, snapshot_dir=snapshot_dir, roi=roi
        )
        signals.connect(window.close)
        window.show()
        return int(app.exec())


# Qt's messages that say nothing to a user: the offscreen platform (QT_QPA_PLATFORM=offscreen)
# warns about every window it shows that it cannot pass size hints on.
QT_NOISE = ("This plugin does not support propagateSizeHints()",)


def install_qt_message_filter() -> None:
    """Drop QT_NOISE; every other Qt message goes to stderr as Qt itself writes it."""
    from PyQt6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler

    def handler(kind: QtMsgType, context: QMessageLogContext, message: str | None) -> None:
        if message is None or message in QT_NOISE:
            return
        category = context.category
        print(message if category in (None, "default") else f"{category}: {message}", file=sys.stderr, flush=True)

    _KEPT.append(handler)  # Qt calls it as long as the program runs: keep it alive
    qInstallMessageHandler(handler)


_KEPT: list[Callable[..., None]] = []
