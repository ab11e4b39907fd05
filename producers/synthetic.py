"""Synthetic test patterns: frames whose content is known, for checking a pipeline."""

from __future__ import annotations

import numpy as np

from producers.base import FrameSource
from viewer.errors import ConfigError

PATTERNS = ("solid", "gradient", "bars", "noise", "counter")

# SMPTE-like colour bars, BGR: white, yellow, cyan, green, magenta, red, blue
_BARS = np.array(
    [[255, 255, 255], [0, 255, 255], [255, 255, 0], [0, 255, 0], [255, 0, 255], [0, 0, 255], [255, 0, 0]],
    np.uint8,
)


class SyntheticSource(FrameSource):
    """Frame k of each pattern:

    - solid: every byte equals k % 256, so the frame's sum is (k % 256) * h * w * c
    - gradient: a diagonal ramp moving by k
    - bars: seven colour bars with a marker moving across them
    - noise: uniform random bytes
    - counter: the number k drawn large (needs OpenCV)
    """

    def __init__(self, pattern: str, width: int = 640, height: int = 480, channels: int = 3):
        if pattern not in PATTERNS:
            raise ConfigError(f"unknown pattern {pattern!r}; choose from {', '.join(PATTERNS)}")
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {channels}")
        self.pattern = pattern
        self.shape: tuple[int, ...] = (height, width) if channels == 1 else (height, width, 3)
        self.index = 0
        self._rng = np.random.default_rng(0)
        self._draw = getattr(self, f"_{pattern}")
        self._ramp: np.ndarray | None = None

    def read(self) -> np.ndarray:
        frame = self._draw(self.index)
        self.index += 1
        return frame

    def fills(self, shape: tuple[int, ...], dtype: np.dtype) -> bool:
        return shape == self.shape and dtype == np.uint8

    def read_into(self, out: np.ndarray) -> bool:
        """Draw frame k straight into the stream's slot where the pattern allows it."""
        k = self.index
        draw_into = getattr(self, f"_{self.pattern}_into", None)
        if draw_into is None:
            np.copyto(out, self._draw(k))
        else:
            draw_into(k, out)
        self.index += 1
        return True

    def _solid_into(self, k: int, out: np.ndarray) -> None:
        out.fill(k % 256)

    def _gradient_into(self, k: int, out: np.ndarray) -> None:
        ramp = self._ramp_of()
        shift = np.uint8(k % 256)
        if out.ndim == 2:
            np.add(ramp, shift, out=out)
            return
        np.add(ramp, shift, out=out[:, :, 0])
        np.add(ramp[:, ::-1], shift, out=out[:, :, 1])
        out[:, :, 2] = (k * 3) % 256

    def _color(self, bgr: np.ndarray) -> np.ndarray:
        """A full-size frame from an (h, w, 3) BGR picture, as grey if the stream is 1-channel."""
        if len(self.shape) == 3:
            return bgr
        return (bgr @ np.array([0.114, 0.587, 0.299])).astype(np.uint8)

    def _solid(self, k: int) -> np.ndarray:
        return np.full(self.shape, k % 256, np.uint8)

    def _ramp_of(self) -> np.ndarray:
        if self._ramp is None:
            h, w = self.shape[:2]
            self._ramp = np.add.outer(np.arange(h) % 256, np.arange(w) % 256).astype(np.uint8)
        return self._ramp

    def _gradient(self, k: int) -> np.ndarray:
        base = self._ramp_of() + np.uint8(k % 256)  # uint8 arithmetic wraps, so it scrolls
        if len(self.shape) == 2:
            return base
        return np.dstack([base, base[:, ::-1], np.full_like(base, (k * 3) % 256)])

    def _bars(self, k: int) -> np.ndarray:
        h, w = self.shape[:2]
        columns = _BARS[np.arange(w) * len(_BARS) // w]
        bgr = np.broadcast_to(columns, (h, w, 3)).copy()
        x = (k * 4) % w
        bgr[h * 3 // 4 :, max(0, x - 8) : x + 8] = 0  # moving marker: the stream is alive
        return self._color(bgr)

    def _noise(self, k: int) -> np.ndarray:
        return self._rng.integers(0, 256, self.shape, np.uint8)

    def _counter(self, k: int) -> np.ndarray:
        import cv2

        h, w = self.shape[:2]
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = (40, 40, 40)
        text = str(k)
        scale, font = h / 80, cv2.FONT_HERSHEY_SIMPLEX
        thick = max(1, int(scale * 2))
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        cv2.putText(img, text, ((w - tw) // 2, (h + th) // 2), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
        return self._color(img)
