"""Functions that test processes run (spawned, so each has its own interpreter)."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from viewer import FrameReader, FrameWriter


def flood(name: str, shape, ready, stop) -> None:
    """Write `solid` frames (every byte = index % 256) as fast as possible until `stop`."""
    frames = [np.full(shape, v, np.uint8) for v in range(256)]
    with FrameWriter(name, shape) as w:
        ready.set()
        k = 0
        while not stop.is_set():
            w.write(frames[k % 256])
            k += 1


def read_many(name: str, reads: int, results) -> None:
    """Read `reads` frames as fast as possible; report torn frames and distinct indices."""
    torn, seen = 0, set()
    with FrameReader(name) as r:
        done = 0
        while done < reads:
            f = r.read()
            if f is None:
                continue
            done += 1
            img = f.image
            if img.min() != img.max() or int(img.flat[0]) != f.index % 256:
                torn += 1
            seen.add(f.index)
    results.put({"reads": done, "torn": torn, "distinct": len(seen)})


def flood_meta(name: str, shape, ready, stop) -> None:
    """Like flood, with metadata of the same frame: its index, and a list whose length
    changes every frame (so the metadata's size changes too)."""
    frames = [np.full(shape, v, np.uint8) for v in range(256)]
    with FrameWriter(name, shape) as w:
        ready.set()
        k = 0
        while not stop.is_set():
            w.write(frames[k % 256], meta={"k": k, "pad": list(range(k % 97))})
            k += 1


@contextmanager
def flooding(target: Callable[..., None], name: str, shape) -> Iterator[mp.Process]:
    """Run a flooding writer (``flood`` or ``flood_meta``) in a spawned process while the
    block runs; it is stopped and joined afterwards (check its exitcode then)."""
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    writer = ctx.Process(target=target, args=(name, shape, ready, stop))
    writer.start()
    try:
        assert ready.wait(60), "the writer did not start"
        yield writer
    finally:
        stop.set()
        writer.join(60)
