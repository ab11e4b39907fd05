"""Frames between two processes, lock-step and flooding: one-way latency through shmview,
pyzmq, mp.Pipe and mp.Queue; a writer and a reader each as fast as they can (torn frames
counted); a paced producer with readers flooding it."""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from harness import ACK, SPAWN, start

from viewer import FrameReader, FrameWriter

# ---- two-process transports ----------------------------------------------------------------
# Each receiver runs in a spawned process: it gets `count` frames, acking each with its own
# CLOCK_MONOTONIC time when it holds a usable array (lock-step), or counts what it gets in
# `seconds` (flood).


def _queue_rx(q, ack, count):
    for _ in range(count):
        q.get()
        ack.send_bytes(ACK.pack(time.monotonic_ns()))


def _pipe_rx(rx, ack, count, nbytes):
    buf = bytearray(nbytes)
    for _ in range(count):
        rx.recv_bytes_into(buf)
        np.frombuffer(buf, np.uint8)
        ack.send_bytes(ACK.pack(time.monotonic_ns()))


def _zmq_rx(address, ack, count, shape):
    import zmq

    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.set_hwm(2)
    sock.connect(address)
    ack.send_bytes(ACK.pack(0))  # connected
    for _ in range(count):
        msg = sock.recv(copy=False)
        np.frombuffer(msg.buffer, np.uint8).reshape(shape)
        ack.send_bytes(ACK.pack(time.monotonic_ns()))
    sock.close()


def _shm_rx(name, ack, count):
    with FrameReader(name) as reader:
        out = np.empty(reader.layout.shape, reader.layout.dtype)  # as a fast consumer would
        seen = 0
        ack.send_bytes(ACK.pack(0))  # attached
        for _ in range(count):
            while reader.frames_written == seen:
                pass  # spin: the writer does not signal readers, they poll
            reader.read(out)
            seen = reader.frames_written
            ack.send_bytes(ACK.pack(time.monotonic_ns()))


def lock_step(
    start_rx: Callable[[object, int], mp.Process],
    send: Callable[[np.ndarray], None],
    frames: list[np.ndarray],
    count: int,
    handshake: bool = False,
) -> list[float]:
    ack_rx, ack_tx = SPAWN.Pipe(duplex=False)
    proc = start_rx(ack_tx, count)
    if handshake:
        ack_rx.recv_bytes()
    lat = []
    for i in range(count):
        t0 = time.monotonic_ns()
        send(frames[i % len(frames)])
        t1 = ACK.unpack(ack_rx.recv_bytes())[0]
        lat.append((t1 - t0) / 1e3)
    proc.join(30)
    return lat[count // 10 :]  # the first tenth is warm-up


def latency_queue(frames, count):
    q = SPAWN.Queue(maxsize=4)
    return lock_step(lambda ack, n: start(_queue_rx, q, ack, n), q.put, frames, count)


def latency_pipe(frames, count):
    rx, tx = SPAWN.Pipe()  # the default: a socketpair (duplex=False would be a 64 KiB os.pipe)
    nbytes = frames[0].nbytes
    # send_bytes() takes len() of a memoryview, which is the first dimension: send flat bytes
    return lock_step(
        lambda ack, n: start(_pipe_rx, rx, ack, n, nbytes), lambda f: tx.send_bytes(f.reshape(-1)), frames, count
    )


def latency_zmq(frames, count):
    import zmq

    address = f"ipc://{tempfile.gettempdir()}/shmview-bench-{os.getpid()}.ipc"
    sock = zmq.Context.instance().socket(zmq.PUSH)
    sock.set_hwm(2)
    sock.bind(address)
    try:
        return lock_step(
            lambda ack, n: start(_zmq_rx, address, ack, n, frames[0].shape),
            lambda f: sock.send(f, copy=False),
            frames,
            count,
            handshake=True,
        )
    finally:
        sock.close(linger=0)
        Path(address.removeprefix("ipc://")).unlink(missing_ok=True)  # libzmq leaves the socket file


def latency_shmview(frames, count):
    with FrameWriter("bench-latency", frames[0].shape) as writer:
        return lock_step(
            lambda ack, n: start(_shm_rx, "bench-latency", ack, n), writer.write, frames, count, handshake=True
        )


# ---- shmview flooding: writer as fast as it can, one reader as fast as it can ----------------


def _flood_writer(name, shape, ready, stop, result):
    values = [np.full(shape, v, np.uint8) for v in range(8)]
    with FrameWriter(name, shape) as w:
        ready.set()
        t = time.perf_counter()
        k = 0
        while not stop.is_set():
            w.write(values[k % 8])
            k += 1
        result.put(k / (time.perf_counter() - t))


def _flood_reader(name, seconds, result, attached=None):
    with FrameReader(name) as reader:
        if attached is not None:
            attached.put(True)  # the paced writer starts its clock once every reader is on
        out = np.empty(reader.layout.shape, reader.layout.dtype)  # a fast consumer reuses its buffer
        distinct = torn = 0
        last = -1
        probe = None
        end = time.perf_counter() + seconds
        t = time.perf_counter()
        while time.perf_counter() < end:
            frame = reader.read(out)
            if frame is None or frame.index == last:
                continue
            last = frame.index
            flat = frame.image.reshape(-1)
            if probe is None:
                probe = np.linspace(0, flat.size - 1, 64).astype(np.intp)
            if not np.all(flat[probe] == (frame.index % 8)):  # every frame is uniform: any mix is torn
                torn += 1
            distinct += 1
        result.put((distinct / (time.perf_counter() - t), torn, distinct))


def flood_shmview(shape, seconds):
    ready, stop, wq, rq = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue(), SPAWN.Queue()
    writer = start(_flood_writer, "bench-flood", shape, ready, stop, wq)
    ready.wait(30)
    reader = start(_flood_reader, "bench-flood", seconds, rq)
    read_fps, torn, count = rq.get(timeout=seconds + 60)
    stop.set()
    write_fps = wq.get(timeout=60)
    reader.join(30)
    writer.join(30)
    return write_fps, read_fps, torn, count


def _paced_writer(name, shape, fps, seconds, ready, go, result):
    values = [np.full(shape, v, np.uint8) for v in range(8)]
    with FrameWriter(name, shape) as w:
        ready.set()
        go.wait(120)
        start, k = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            w.write(values[k % 8])
            k += 1
            delay = start + k / fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        result.put(k / (time.perf_counter() - start))


def paced_rate(shape, fps, seconds, readers):
    """A producer paced to `fps`: the rate it achieves while `readers` processes flood-read."""
    ready, go, wq, rq, attached = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue(), SPAWN.Queue(), SPAWN.Queue()
    writer = start(_paced_writer, "bench-paced", shape, fps, seconds, ready, go, wq)
    ready.wait(30)
    # Readers read for `seconds` from when they attach; on a loaded machine, starting 8 of them
    # can take longer than the writer's whole run, so the writer waits for them all.
    procs = [start(_flood_reader, "bench-paced", seconds, rq, attached) for _ in range(readers)]
    for _ in procs:
        attached.get(timeout=120)
    go.set()
    rate = wq.get(timeout=seconds + 60)
    torn = sum(rq.get(timeout=60)[1] for _ in procs)
    for p in [*procs, writer]:
        p.join(30)
    return rate, torn
