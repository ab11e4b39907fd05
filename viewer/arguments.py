"""What every command group of the command line shares: argument types, exit codes and
the epilog that lists them. Every number and size is checked by the parser, so a bad one is
a usage error (exit 2) before anything runs.

Here, below viewer/cli/, viewer/net/cli.py and viewer/recording/cli.py, so that each of them
can register its commands the same way without importing another's folder."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from viewer.errors import UsageError as UsageError  # defined in viewer.errors; the commands import it here
from viewer.stream.protocol import MAX_CHANNELS, MAX_SIDE, MAX_SLOTS


def number(
    kind: Callable[[str], float], low: float | None = None, high: float | None = None, *, above: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number of ``kind`` in [low, high] (above: > low)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and (value <= low if above else value < low):
            raise argparse.ArgumentTypeError(f"must be {'above' if above else 'at least'} {low:g}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:g}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


_ANY_RATE = number(float, 0)


def FPS(text: str) -> float:
    """0 (as fast as possible), or at least one frame every 1,000 s."""
    value = _ANY_RATE(text)
    if 0 < value < 0.001:
        raise argparse.ArgumentTypeError(f"must be 0 (as fast as possible) or at least 0.001, got {text}")
    return value


SLOTS = number(int, 1, MAX_SLOTS)
POSITIVE = number(int, 0, above=True)


def size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480 (WIDTHxHEIGHT), got {text!r}") from None
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        raise argparse.ArgumentTypeError(f"size {text!r} is out of range (1 to {MAX_SIDE} each way)")
    return w, h


def shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must look like 480,640,3 (H,W[,C]), got {text!r}") from None
    if len(shape) not in (2, 3) or min(shape) < 1 or max(shape[:2]) > MAX_SIDE or shape[2:3] > (MAX_CHANNELS,):
        raise argparse.ArgumentTypeError(
            f"shape must be H,W or H,W,C with sides 1 to {MAX_SIDE} and 1 to {MAX_CHANNELS} channels, got {text!r}"
        )
    return shape


def levels(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"levels must look like 0,4095, got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise argparse.ArgumentTypeError(f"levels need finite LO < HI, got {text!r}")
    return lo, hi


def roi(text: str) -> tuple[int, int, int, int]:
    """x,y,w,h in image pixels: the region [y:y+h, x:x+w], clipped to each frame later."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"roi must look like 10,20,64,48 (x,y,w,h), got {text!r}") from None
    if x < 0 or y < 0 or w < 1 or h < 1 or max(x + w, y + h) > 2 * MAX_SIDE:
        raise argparse.ArgumentTypeError(f"roi needs x,y at least 0 and w,h at least 1 inside the frame, got {text!r}")
    return x, y, w, h


EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3

EXIT_CODES = """exit codes:
  0  success
  1  any other error (a corrupt block, a name already in use, no room in /dev/shm, ...)
  2  usage error (bad arguments, invalid stream name)
  3  stream, device, file or folder not there"""
