"""Fakes for hardware only. FakeCapture stands in for cv2.VideoCapture and fails the way
cameras do, on cue, so that a producer in another process can be steered by a test."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

SHAPE = (48, 64, 3)


class FakeCapture:
    """Numbered frames (every byte of frame n is n % 256) at about 60 fps.

    Cues are files in ``cue_dir``:
    - ``missing``: the device cannot be opened (isOpened() is False), like an unplugged camera;
    - ``stall``: read() waits a little and returns (False, None), like a USB camera that stops
      streaming or a network stream that drops; reopening does not help while it is there;
    - ``flicker``: each opening delivers one frame, then nothing, like a device that wakes on
      open and stalls again.
    Each opening that succeeds leaves a file ``opened-N`` there.
    """

    def __init__(self, target: int | str, cue_dir: str | Path) -> None:
        self.target = target
        self.cues = Path(cue_dir)
        self.opened = not (self.cues / "missing").exists()
        self.n = 0
        if self.opened:
            (self.cues / f"opened-{len(list(self.cues.glob('opened-*')))}").touch()
        self.settings: dict[int, float] = {}

    def isOpened(self) -> bool:
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.settings[prop] = value
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.opened:
            return False, None
        if (self.cues / "stall").exists() or ((self.cues / "flicker").exists() and self.n > 0):
            time.sleep(0.05)  # a real driver blocks in select() before giving up
            return False, None
        time.sleep(1 / 60)
        frame = np.full(SHAPE, self.n % 256, np.uint8)
        self.n += 1
        return True, frame

    def release(self) -> None:
        self.opened = False
