"""Cameras through cv2.VideoCapture: a device index, /dev/videoN, or an rtsp:// / http:// URL.

Capture runs on its own thread and keeps only the newest frame, so a slow camera never
stalls the writer and the writer never makes a camera's buffer back up. A camera that
stops delivering is reopened with back-off while the stream stays up: viewers see it go
stale, then live again when frames return.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from producers.base import FrameSource, NoFrameYet
from viewer.errors import SourceNotFoundError

log = logging.getLogger(__name__)

FAILURES_BEFORE_REOPEN = 3
BACKOFF_S = (0.5, 8.0)  # first and longest wait before reopening
BACK_AFTER_S = 1.0  # a camera that was lost is back once it delivered frames for this long


def device_path(device: str) -> str | None:
    """The file behind a camera: /dev/videoN for an index N, the path itself for a path;
    None for a URL or anything else OpenCV opens by name."""
    if device.isdigit():
        return f"/dev/video{int(device)}"
    return device if device.startswith("/") else None


def why_not_opened(device: str) -> str:
    """What is known about a camera OpenCV could not open: the device file is missing, or
    not ours to use, or it opens and still delivers no video (busy, or no capture device)."""
    path = device_path(device)
    if path is None:
        return "OpenCV could not open it (unreachable, or a stream no installed backend reads)"
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return f"no such device: {path} does not exist"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"permission denied on {path} (is this user in its group, often 'video'?)"
        if exc.errno == errno.EBUSY:
            return f"{path} is busy: another program is using it"
        return f"{path}: {exc.strerror}"
    os.close(fd)
    return f"{path} exists but gives no video: busy in another program, or not a capture device"


def _capture_class() -> Callable[..., Any]:
    import cv2

    return cv2.VideoCapture


class CameraSource(FrameSource):
    def __init__(
        self,
        device: str,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        capture: Callable[..., Any] | None = None,
        wait_s: float = 0.25,
    ) -> None:
        self.device = device
        self.size, self.fps, self.wait_s = size, fps, wait_s
        self._capture = capture  # cv2.VideoCapture unless a test hands in a fake
        self._cond = threading.Condition()
        self._latest: np.ndarray | None = None
        self._count = self._taken = 0
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def __str__(self) -> str:
        return f"camera {self.device}"

    def _open_capture(self) -> Any:
        make = self._capture or _capture_class()
        target: int | str = int(self.device) if self.device.isdigit() else self.device
        cap = make(target)
        if not cap.isOpened():
            cap.release()
            why = why_not_opened(self.device)
            raise SourceNotFoundError(f"cannot open camera {self.device!r}: {why}", device=self.device)
        import cv2

        if self.size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        return cap

    def open(self) -> None:
        cap = self._open_capture()  # fails here, at start, with a clear error
        self._thread = threading.Thread(target=self._capture_loop, args=(cap,), name="shmview-camera", daemon=True)
        self._thread.start()

    def _capture_loop(self, cap: Any) -> None:
        """Read frames until closed. A camera that stops delivering is reopened with a
        back-off that grows until it is back for real (BACK_AFTER_S of frames); both are
        said once: a device that gives a frame now and then must not flood the log."""
        failures, delay = 0, BACKOFF_S[0]
        lost_at: float | None = None  # when the camera stopped delivering, while it is gone
        back_since: float | None = None  # the first frame since the last reopen, while lost
        while not self._closing.is_set():
            ok, frame = cap.read() if cap is not None else (False, None)
            if ok and frame is not None:
                now = time.monotonic()
                if lost_at is not None:
                    back_since = back_since if back_since is not None else now
                    if now - back_since >= BACK_AFTER_S:
                        log.warning("%s is back after %.1f s", self, back_since - lost_at)
                        lost_at = back_since = None
                        delay = BACKOFF_S[0]
                with self._cond:
                    self._latest, self._count = frame, self._count + 1
                    self._cond.notify_all()
                failures = 0
                continue
            failures += 1
            if failures < FAILURES_BEFORE_REOPEN:
                continue
            if lost_at is None:
                lost_at = time.monotonic()
                log.warning("%s delivered no frame; reopening it until frames come again", self)
            log.debug("%s: reopening in %.1f s", self, delay)
            back_since = None
            if cap is not None:
                cap.release()
                cap = None
            if self._closing.wait(delay):
                break
            delay = min(delay * 2, BACKOFF_S[1])
            try:
                cap = self._open_capture()
                failures = 0
            except SourceNotFoundError:
                pass  # still gone: wait longer
        if cap is not None:
            cap.release()

    def read(self) -> np.ndarray:
        """The newest frame not yet handed out; NoFrameYet if none arrives within wait_s."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._count != self._taken, timeout=self.wait_s):
                raise NoFrameYet
            self._taken = self._count
            assert self._latest is not None
            return self._latest

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
