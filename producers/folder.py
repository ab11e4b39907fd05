"""A folder of images, in sorted order, decoded and fitted ahead of time by a thread pool.

OpenCV releases the GIL while decoding and resizing, so threads overlap that work. At most
``ahead`` frames are in flight, which bounds memory whatever the folder's size.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from producers.base import FrameSource
from viewer.errors import ConfigError, SourceError, SourceNotFoundError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}


class FolderSource(FrameSource):
    def __init__(self, path: str | Path, *, loop: bool = False, threads: int = 2, ahead: int | None = None):
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        self.path = Path(path)
        self.loop = loop
        self.threads = threads
        self.ahead = ahead or 2 * threads
        self.files: list[Path] = []
        self._next = 0
        self._pending: deque[tuple[Path, Future[np.ndarray | None]]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._ever_good = False
        self._skipped: set[Path] = set()

    def __str__(self) -> str:
        return f"folder {self.path}"

    def open(self) -> None:
        if self.path.is_file():
            raise SourceError(
                f"{self.path} is a file, not a folder: for a video use `shmview produce video --path {self.path}`",
                path=str(self.path),
            )
        if not self.path.is_dir():
            raise SourceNotFoundError(f"no folder {self.path}", path=str(self.path))
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise SourceError(f"no image files in {self.path}", path=str(self.path))
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="shmview-decode")
        self._fill()

    def _decode(self, path: Path) -> np.ndarray | None:
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            return None
        prepare = self.prepare  # known once the stream exists; the first frames are fitted later
        return prepare(image) if prepare is not None else image

    def _fill(self) -> None:
        assert self._pool is not None
        while len(self._pending) < self.ahead:
            if self._next == len(self.files):
                if not (self.loop and self._ever_good):
                    return
                self._next = 0
            path = self.files[self._next]
            self._next += 1
            self._pending.append((path, self._pool.submit(self._decode, path)))

    def read(self) -> np.ndarray | None:
        bad_in_a_row = 0
        while True:
            self._fill()  # may start over now that a readable image was seen
            if not self._pending or bad_in_a_row > len(self.files):
                break
            path, future = self._pending.popleft()
            image = future.result()
            if image is not None:
                self._ever_good = True
                return image
            bad_in_a_row += 1
            if path not in self._skipped:
                self._skipped.add(path)
                log.warning("skipping %s: not a readable image", path)
        if not self._ever_good or self.loop:
            raise SourceError(f"no readable image in {self.path}", path=str(self.path))
        return None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()
