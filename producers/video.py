"""Video files through cv2.VideoCapture, paced at the file's own frame rate."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from producers.base import FrameSource
from viewer.errors import SourceError, SourceNotFoundError


class VideoSource(FrameSource):
    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        self.path = Path(path)
        self.loop = loop
        self._cap: Any = None
        self.fps = 30.0  # the file's rate once opened
        self.loops = 0
        self._frame_shape: tuple[int, ...] | None = None  # what the file decodes to

    def __str__(self) -> str:
        return f"video {self.path}"

    def open(self) -> None:
        import cv2

        if self.path.is_dir():
            raise SourceError(
                f"{self.path} is a folder, not a video file: use `shmview produce folder --path {self.path}`",
                path=str(self.path),
            )
        if not self.path.is_file():
            raise SourceNotFoundError(f"no video file {self.path}", path=str(self.path))
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot decode video {self.path}", path=str(self.path))
        rate = cap.get(cv2.CAP_PROP_FPS)
        self.fps = rate if rate and math.isfinite(rate) and 0 < rate <= 1000 else 30.0
        self._cap = cap

    def read(self) -> np.ndarray | None:
        return self._next(None)

    def fills(self, shape: tuple[int, ...], dtype: np.dtype) -> bool:
        """Decoding straight into the slot works when the stream has the file's own frame
        size as BGR uint8 (no --size, --channels 1 or other dtype asked for)."""
        return shape == self._frame_shape and dtype == np.uint8

    def read_into(self, out: np.ndarray) -> bool:
        frame = self._next(out)
        if frame is None:
            return False
        if frame.ctypes.data != out.ctypes.data:  # OpenCV allocated after all: copy once
            np.copyto(out, frame)
        return True

    def _next(self, out: np.ndarray | None) -> np.ndarray | None:
        ok, frame = self._cap.read(image=out)
        if not ok and self.loop:
            import cv2

            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self.loops += 1
            ok, frame = self._cap.read(image=out)
        if ok and self._frame_shape is None:
            self._frame_shape = frame.shape
        return frame if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
