"""Keeping the C libraries' chatter off a producer's stderr, but nothing else.

OpenCV and FFmpeg have log levels (set through the environment before cv2 loads). libjpeg
has none: OpenCV leaves its default message handler in place, which writes "Premature end
of JPEG file" and "Corrupt JPEG data: ..." straight to file descriptor 2 for every damaged
JPEG. So descriptor 2 becomes a pipe, a thread drops the known noise from it and passes
every other line on (a real error, a crash message, the resource tracker's report), and
Python's own stderr keeps writing to the terminal directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator

NOISE = re.compile(
    rb"^(\[ ?(WARN|INFO|DEBUG|VERBOSE|ERROR)[:\]]"  # OpenCV's logger: "[ WARN:0@0.046] ..."
    rb"|\[\w+ @ 0x[0-9a-f]+\]"  # FFmpeg's: "[mjpeg @ 0x55d...] unable to decode APP fields"
    rb"|Premature end of JPEG file|Corrupt JPEG data|Invalid SOS parameters"  # libjpeg warnings
    rb"|libpng warning:)"
)


def quiet_environment() -> None:
    """Log levels OpenCV and FFmpeg read when cv2 is first imported; the user's win."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def _forward(read_fd: int, out_fd: int) -> None:
    with os.fdopen(read_fd, "rb") as pipe:
        for line in pipe:
            if not NOISE.match(line):
                os.write(out_fd, line)


@contextlib.contextmanager
def native_noise_filtered() -> Iterator[None]:
    """Filter what C code writes to descriptor 2 while inside; Python's stderr is untouched."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # started now, it keeps the real stderr for its reports
    sys.stderr.flush()
    terminal = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    python_stderr, sys.stderr = sys.stderr, open(terminal, "w", buffering=1, closefd=False)  # noqa: SIM115
    handlers = [h for h in logging.root.handlers if getattr(h, "stream", None) is python_stderr]
    for h in handlers:
        h.setStream(sys.stderr)  # type: ignore[attr-defined]
    thread = threading.Thread(target=_forward, args=(read_fd, terminal), name="shmview-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)  # closes the pipe's last writer in this process: the thread ends
        for h in handlers:
            h.setStream(python_stderr)  # type: ignore[attr-defined]
        sys.stderr.close()  # the wrapper only: closefd=False
        sys.stderr = python_stderr
        thread.join(timeout=1.0)
        if not thread.is_alive():  # else a child still holds the pipe: leave its way out open
            os.close(terminal)
