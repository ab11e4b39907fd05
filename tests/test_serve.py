"""serve() from a program of one's own: a source as a named stream in a thread, stopped from
another thread, closing what it opens."""

from __future__ import annotations

import io
import os
import re
import threading

import numpy as np
import pytest

from producers import FrameSource, serve
from tests.support.helpers import wait_for
from viewer import FrameReader, SourceError, StreamNotFoundError

# serve() from a program of one's own ------------------------------------------------------


class Constant(FrameSource):
    """The same frame forever (or ``count`` times), as a user's source might."""

    def __init__(self, frame: object, count: int | None = None) -> None:
        self.frame, self.count = frame, count

    def __str__(self) -> str:
        return "constant source"

    def read(self) -> object:
        if self.count is not None:
            if self.count == 0:
                return None
            self.count -= 1
        return self.frame


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_serve_in_a_thread_closes_what_it_opens():
    def serve_twice() -> None:
        for k in range(2):
            serve(Constant(np.zeros((4, 4), np.uint8), count=2), f"threaded{k}", fps=0, out=io.StringIO())

    serve_twice()  # once first: the resource tracker keeps a pipe open for the process's life
    before = _open_fds()
    for _ in range(5):
        thread = threading.Thread(target=serve_twice)
        thread.start()
        thread.join(60)
    assert _open_fds() == before


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_serve_keeps_the_dtype_and_stops_when_asked_from_another_thread(dtype):
    frame = np.full((24, 32), 4095, dtype)  # 12-bit data in uint16 stays as it is
    stop, out, result = threading.Event(), io.StringIO(), []
    thread = threading.Thread(target=lambda: result.append(serve(Constant(frame), "kept", fps=100, out=out, stop=stop)))
    thread.start()
    try:
        with wait_for(lambda: _attach("kept"), what="the stream") as reader:
            got = wait_for(reader.read, what="a frame")
        assert got.image.dtype == dtype and got.image.tolist() == frame.tolist()
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive() and result[0] > 0
    last = out.getvalue().splitlines()[-1]
    assert re.fullmatch(rf"stream kept stopped after {result[0]:,} frames?: asked to stop", last)


def _attach(name: str) -> FrameReader | None:
    try:
        return FrameReader(name)
    except StreamNotFoundError:
        return None


def test_serve_names_the_source_of_a_frame_that_is_not_an_array():
    with pytest.raises(SourceError, match="constant source gave a str, not a numpy array"):
        serve(Constant("not a frame"), "notarray", out=io.StringIO())
