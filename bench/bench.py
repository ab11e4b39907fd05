"""shmview against memcpy, multiprocessing, ZeroMQ, iceoryx2 and the usual Qt display paths,
measured side by side in one run on this machine. Prints a Markdown table with ratios and targets.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/bench.py [--quick] [--out FILE]

Every figure is a median over rounds after a warm-up. Latency is one-way: the sender takes
CLOCK_MONOTONIC just before it starts handing a frame over, the receiver when it holds a
usable array (and, in the peer rows, when it has the exact sum). The older transport rows are
lock-step (the receiver acks each frame); the peer rows pace the writer instead and let the
reader spin on the newest frame, with a fresh process pair per system, size and round. On a
shared machine compare ratios within one run, not figures across runs.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from viewer import FrameReader, FrameWriter

SIZES = {"480x640x3": (480, 640, 3), "1080x1920x3": (1080, 1920, 3)}
SPAWN = mp.get_context("spawn")
ACK = struct.Struct("<q")


# ---- timing helpers ------------------------------------------------------------------------

def per_call(fn: Callable[[], object], rounds: int, seconds: float) -> float:
    """Median over rounds of the mean seconds per call (each round about `seconds` long)."""
    return per_call_interleaved({"fn": fn}, rounds, seconds)["fn"]


def _calls_per(fn: Callable[[], object], seconds: float) -> int:
    fn()
    n = 1
    while True:  # calibrate calls per round
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if (elapsed := time.perf_counter() - t) > 0.02:
            return max(1, int(n * seconds / elapsed))
        n *= 2


def per_call_interleaved(fns: dict[str, Callable[[], object]], rounds: int, seconds: float) -> dict[str, float]:
    """per_call for several functions, their rounds taken in turn: on a shared machine a
    ratio between them is then measured under the same load."""
    calls = {key: _calls_per(fn, seconds) for key, fn in fns.items()}
    results: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            t = time.perf_counter()
            for _ in range(calls[key]):
                fn()
            results[key].append((time.perf_counter() - t) / calls[key])
    return {key: statistics.median(r) for key, r in results.items()}


def per_refresh(prepare: Callable[[], object], fn: Callable[[], object], rounds: int, seconds: float) -> float:
    """Like per_call, but `prepare` (untimed) runs before each call: a new frame to show."""
    for _ in range(20):
        prepare()
        fn()
    results = []
    for _ in range(rounds):
        spent, end = 0.0, time.perf_counter() + seconds
        calls = 0
        while time.perf_counter() < end:
            prepare()
            t = time.perf_counter()
            fn()
            spent += time.perf_counter() - t
            calls += 1
        results.append(spent / calls)
    return statistics.median(results)


def cycling_copy(frame: np.ndarray, count: int) -> Callable[[], None]:
    """np.copyto into `count` destinations in turn: the cache footprint of a `count`-slot ring.
    (At 1080x1920x3, 3 destinations and the source no longer stay in this machine's L3.)"""
    dsts = [np.ones_like(frame) for _ in range(count)]
    turn = [0]

    def copy() -> None:
        np.copyto(dsts[turn[0] % count], frame)
        turn[0] += 1
    return copy


def frames_for(shape: tuple[int, ...], count: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, shape, np.uint8) for _ in range(count)]


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


def lock_step(start_rx: Callable[[object, int], mp.Process], send: Callable[[np.ndarray], None],
              frames: list[np.ndarray], count: int, handshake: bool = False) -> list[float]:
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
    return lock_step(lambda ack, n: _start(_queue_rx, q, ack, n), q.put, frames, count)


def latency_pipe(frames, count):
    rx, tx = SPAWN.Pipe()  # the default: a socketpair (duplex=False would be a 64 KiB os.pipe)
    nbytes = frames[0].nbytes
    # send_bytes() takes len() of a memoryview, which is the first dimension: send flat bytes
    return lock_step(lambda ack, n: _start(_pipe_rx, rx, ack, n, nbytes),
                     lambda f: tx.send_bytes(f.reshape(-1)), frames, count)


def latency_zmq(frames, count):
    import zmq

    address = f"ipc://{tempfile.gettempdir()}/shmview-bench-{os.getpid()}.ipc"
    sock = zmq.Context.instance().socket(zmq.PUSH)
    sock.set_hwm(2)
    sock.bind(address)
    try:
        return lock_step(lambda ack, n: _start(_zmq_rx, address, ack, n, frames[0].shape),
                         lambda f: sock.send(f, copy=False), frames, count, handshake=True)
    finally:
        sock.close(linger=0)
        Path(address.removeprefix("ipc://")).unlink(missing_ok=True)  # libzmq leaves the socket file


def latency_shmview(frames, count):
    with FrameWriter("bench-latency", frames[0].shape) as writer:
        return lock_step(lambda ack, n: _start(_shm_rx, "bench-latency", ack, n), writer.write, frames, count,
                         handshake=True)


def _start(target, *args) -> mp.Process:
    proc = SPAWN.Process(target=target, args=args)  # not daemonic: a FrameWriter starts a manager
    proc.start()
    return proc


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
    writer = _start(_flood_writer, "bench-flood", shape, ready, stop, wq)
    ready.wait(30)
    reader = _start(_flood_reader, "bench-flood", seconds, rq)
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
    writer = _start(_paced_writer, "bench-paced", shape, fps, seconds, ready, go, wq)
    ready.wait(30)
    # Readers read for `seconds` from when they attach; on a loaded machine, starting 8 of them
    # can take longer than the writer's whole run, so the writer waits for them all.
    procs = [_start(_flood_reader, "bench-paced", seconds, rq, attached) for _ in range(readers)]
    for _ in procs:
        attached.get(timeout=120)
    go.set()
    rate = wq.get(timeout=seconds + 60)
    torn = sum(rq.get(timeout=60)[1] for _ in procs)
    for p in [*procs, writer]:
        p.join(30)
    return rate, torn


# ---- display, offscreen -------------------------------------------------------------------

def display_costs(shape, rounds, seconds):
    """Seconds per refresh of a new frame, painted: shmview's panel, QLabel+sum, pyqtgraph."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtGui import QImage, QPixmap
    from PyQt6.QtWidgets import QApplication, QLabel

    from viewer.gui.window import StreamPanel

    app = QApplication.instance() or QApplication([])
    h, w = shape[:2]
    frames = frames_for(shape)
    out: dict[str, float] = {}
    with FrameWriter("bench-display", shape) as writer:
        k = [0]

        def next_frame() -> None:
            writer.write(frames[k[0] % 4])
            k[0] += 1

        panel = StreamPanel("bench-display")
        panel.view.setFixedSize(w, h)  # 1:1, as the QLabel shows it
        panel.show()

        def shmview_refresh() -> None:
            panel.refresh()
            panel.view.repaint()

        out["shmview"] = per_refresh(next_frame, shmview_refresh, rounds, seconds)
        assert panel.last is not None and panel.last.sum == int(panel.last.frame.image.sum(dtype=np.uint64))
        panel.close_stream()

        with FrameReader("bench-display") as reader:
            label = QLabel()
            label.setFixedSize(w, h)
            label.show()
            buf = np.empty(shape, np.uint8)

            def qlabel_refresh() -> None:
                reader.read(buf)
                int(buf.sum())
                img = QImage(buf.data, w, h, buf.strides[0], QImage.Format.Format_BGR888)
                label.setPixmap(QPixmap.fromImage(img))
                label.repaint()

            out["qlabel"] = per_refresh(next_frame, qlabel_refresh, rounds, seconds)
            try:
                import cv2
                import pyqtgraph as pg
            except ImportError:
                pass
            else:
                class CountingImageItem(pg.ImageItem):
                    paints = 0

                    def paint(self, *args: object) -> None:
                        CountingImageItem.paints += 1
                        super().paint(*args)

                glw = pg.GraphicsLayoutWidget()
                glw.setFixedSize(w, h)
                vb = glw.addViewBox(lockAspect=True, invertY=True)
                item = CountingImageItem(axisOrder="row-major")
                vb.addItem(item)
                glw.show()
                item.setImage(np.zeros_like(buf), autoLevels=False)
                vb.autoRange(padding=0)  # the image fills the view, as in the other two
                for _ in range(3):
                    app.processEvents()  # let the scene lay out before timing

                rgb = np.empty_like(buf)

                def pyqtgraph_refresh() -> None:  # its fastest path: contiguous RGB uint8, no levels
                    reader.read(buf)
                    int(buf.sum())
                    item.setImage(cv2.cvtColor(buf, cv2.COLOR_BGR2RGB, dst=rgb), autoLevels=False)
                    glw.viewport().repaint()  # a QGraphicsView paints through its viewport

                out["pyqtgraph"] = per_refresh(next_frame, pyqtgraph_refresh, rounds, seconds)
                assert CountingImageItem.paints > 0, "pyqtgraph never painted: the comparison would be void"
                glw.close()
            label.close()
        panel.close()
    app.processEvents()
    return out


# ---- idle CPU of a real viewer process ----------------------------------------------------

def viewer_cpu(seconds: float) -> tuple[float, float]:
    """% of one core used by `shmview view` (300 ms) and by a 30 fps producer over `seconds`."""
    import psutil

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    cli = [sys.executable, "-m", "viewer"]
    producer = subprocess.Popen([*cli, "produce", "synthetic", "--name", "bench-idle", "--pattern", "solid",
                                 "--fps", "30"], stdout=subprocess.PIPE, text=True, env=env)
    assert producer.stdout is not None and "ready" in producer.stdout.readline()
    viewer = subprocess.Popen([*cli, "view", "bench-idle"], env=env, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3.0)  # start-up: imports, first paint
        procs = [psutil.Process(viewer.pid), psutil.Process(producer.pid)]
        before = [sum(p.cpu_times()[:2]) for p in procs]
        time.sleep(seconds)
        after = [sum(p.cpu_times()[:2]) for p in procs]
    finally:
        for p in (viewer, producer):
            p.terminate()
            p.wait(30)
    return tuple(100 * (a - b) / seconds for a, b in zip(after, before, strict=True))  # type: ignore[return-value]


# ---- peers, interleaved: shmview (copy, zero-copy, loan), iceoryx2, ZeroMQ -----------------
# A fresh writer/reader process pair per system, size and round. The writer is paced (one frame
# in flight) and stamps CLOCK_MONOTONIC just before it starts handing a frame over: before
# write() or the loan and the copy into it, or before generating the pixels in place. The reader
# spins on the newest frame and stamps when it holds a usable ndarray and when it has the exact
# sum (cv2.sumElems, single-threaded OpenCV in every reader), which it checks against the
# frame's known sum.

PACE_S = {"480x640x3": 0.002, "1080x1920x3": 0.010}
PEERS = {  # key: what the table calls it
    "shm_copy": "shmview copy API (write() -> read(out=...))",
    "shm_zero": "shmview zero-copy API (write() -> apply())",
    "iox": "iceoryx2 0.10 (loan_uninit + copy in + send -> receive, numpy view)",
    "zmq": "pyzmq PUSH/PULL ipc:// (send(copy=False) -> recv(copy=False), numpy view)",
    "shm_loan": "shmview, pixels made in place (loan() -> apply())",
    "iox_loan": "iceoryx2, pixels made in place (loan_uninit -> receive)",
}
_IOX_PREFIX = f"shmvb{os.getpid()}_"  # iceoryx2's files: /dev/shm/<prefix>*, and its own root folder
# (children are spawned: they get the prefix in `where`, not from their own pid)


def _fill_value(k: int) -> int:
    """The in-place producer makes frame k uniform: its sum is known exactly."""
    return (37 * k + 11) % 256


def _sum_of(cv2: object, image: np.ndarray) -> int:
    return int(sum(cv2.sumElems(image)))  # type: ignore[attr-defined]


def _iox_service(nbytes: int, service_name: str, prefix: str, root: str) -> tuple[object, object]:
    """A publish-subscribe service of raw frames with an index in the user header, set up as
    iceoryx2's examples do, with a prefix and root of our own so teardown finds its files."""
    import ctypes

    import iceoryx2 as iox2

    class Header(ctypes.Structure):
        _fields_ = [("index", ctypes.c_int64)]

    cfg = iox2.config.default()
    cfg.global_cfg.prefix = iox2.FileName.new(prefix)
    cfg.global_cfg.root_path = iox2.Path.new(root)
    node = iox2.NodeBuilder.new().config(cfg).create(iox2.ServiceType.Ipc)
    service = (node.service_builder(iox2.ServiceName.new(service_name)).publish_subscribe(ctypes.c_uint8 * nbytes)
               .user_header(Header).history_size(0).subscriber_max_buffer_size(4)
               .subscriber_max_borrowed_samples(2).enable_safe_overflow(True).open_or_create())
    return node, service


def _payload(sample: object, shape: tuple[int, ...]) -> np.ndarray:
    import ctypes

    nbytes = int(np.prod(shape))
    return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(sample.payload_ptr)).reshape(shape)  # type: ignore[attr-defined]


def _shm_sender(system: str, shape, where, frames):
    writer = FrameWriter(where, shape)
    if system == "shm_loan":
        def send(k: int) -> int:
            t = time.monotonic_ns()
            with writer.loan() as pixels:
                pixels.fill(_fill_value(k))
            return t
    else:
        def send(k: int) -> int:
            t = time.monotonic_ns()
            writer.write(frames[k % len(frames)])
            return t
    return send, writer.close


def _iox_sender(system: str, shape, where, frames):
    node, service = _iox_service(frames[0].nbytes, *where)
    publisher = service.publisher_builder().max_loaned_samples(2).create()  # type: ignore[attr-defined]

    def send(k: int) -> int:
        t = time.monotonic_ns()
        sample = publisher.loan_uninit()
        pixels = _payload(sample, shape)
        if system == "iox_loan":
            pixels.fill(_fill_value(k))
        else:
            np.copyto(pixels, frames[k % len(frames)])
        sample.user_header().contents.index = k
        sample.assume_init().send()
        return t
    return send, lambda: (publisher, service, node)  # dropped with the process


def _zmq_sender(system: str, shape, where, frames):
    import zmq

    sock = zmq.Context.instance().socket(zmq.PUSH)
    sock.set_hwm(2)
    sock.bind(where)

    def send(k: int) -> int:
        t = time.monotonic_ns()
        sock.send_multipart([ACK.pack(k), frames[k % len(frames)]], copy=False)
        return t
    return send, lambda: sock.close(linger=0)


_SENDERS = {"shm": _shm_sender, "iox": _iox_sender, "zmq": _zmq_sender}


def _peer_writer(system, shape, count, pace, where, ready, go, done, result):
    frames = frames_for(shape)
    send, close = _SENDERS[system[:3]](system, shape, where, frames)
    ready.set()
    go.wait(60)
    stamps, start = [], time.perf_counter()
    for k in range(count):
        stamps.append(send(k))
        delay = start + (k + 1) * pace - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    result.put(stamps)
    done.wait(60)  # the stream stays up until the reader is through
    close()


def _shm_taker(system, shape, where, cv2):
    reader = FrameReader.open(where, timeout=30)
    out = np.empty(shape, np.uint8)
    seen = [0]

    def take_copy():
        if reader.frames_written == seen[0]:
            return None
        frame = reader.read(out)
        t1 = time.monotonic_ns()
        total = _sum_of(cv2, out)
        seen[0] = frame.index + 1
        return frame.index, t1, time.monotonic_ns(), total

    def use(frame):
        t1 = time.monotonic_ns()
        return frame.index, t1, _sum_of(cv2, frame.image)

    def take_zero():
        if reader.frames_written == seen[0]:
            return None
        k, t1, total = reader.apply(use)
        seen[0] = k + 1
        return k, t1, time.monotonic_ns(), total
    return (take_copy if system == "shm_copy" else take_zero), reader.close


def _iox_taker(system, shape, where, cv2):
    node, service = _iox_service(int(np.prod(shape)), *where)
    subscriber = service.subscriber_builder().create()  # type: ignore[attr-defined]

    def take():
        newest = None
        while (sample := subscriber.receive()) is not None:  # drain: keep the newest
            if newest is not None:
                newest.delete()
            newest = sample
        if newest is None:
            return None
        image = _payload(newest, shape)
        t1 = time.monotonic_ns()
        total = _sum_of(cv2, image)
        t2 = time.monotonic_ns()
        k = newest.user_header().contents.index
        del image
        newest.delete()
        return k, t1, t2, total
    return take, lambda: (subscriber, service, node)


def _zmq_taker(system, shape, where, cv2):
    import zmq

    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.set_hwm(2)
    sock.connect(where)

    def take():
        parts = None
        while True:  # drain without blocking: keep the newest
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
        if parts is None:
            return None
        image = np.frombuffer(parts[1].buffer, np.uint8).reshape(shape)
        t1 = time.monotonic_ns()
        total = _sum_of(cv2, image)
        return ACK.unpack(parts[0].bytes)[0], t1, time.monotonic_ns(), total
    return take, lambda: sock.close(linger=0)


_TAKERS = {"shm": _shm_taker, "iox": _iox_taker, "zmq": _zmq_taker}


def _peer_reader(system, shape, count, where, deadline_s, ready, result):
    import cv2

    cv2.setNumThreads(0)  # one thread, as in every reader here
    take, close = _TAKERS[system[:3]](system, shape, where, cv2)
    if system.endswith("loan"):
        expected = [_fill_value(k) * int(np.prod(shape)) for k in range(count)]
    else:
        sums = [_sum_of(cv2, f) for f in frames_for(shape)]
        expected = [sums[k % len(sums)] for k in range(count)]
    ready.set()
    got, end = [], time.monotonic() + deadline_s
    while time.monotonic() < end:
        item = take()  # spin: nobody signals the reader
        if item is not None:
            got.append((*item[:3], item[3] == expected[item[0]]))
            if item[0] == count - 1:
                break
    close()
    result.put(got)


def peer_round(system: str, shape: tuple[int, ...], pace: float, count: int, tag: str) -> dict[str, float]:
    """One writer/reader pair: median one-way and frame-to-sum latency (seconds), frames seen,
    sums that were wrong."""
    where: object = {"shm": f"bench-peer-{tag}", "zmq": f"ipc://{tempfile.gettempdir()}/shmview-bench-{tag}.ipc",
                     "iox": (f"shmview-bench/{tag}", _IOX_PREFIX, _iox_root())}[system[:3]]
    ready_w, ready_r, go, done = SPAWN.Event(), SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
    wq, rq = SPAWN.Queue(), SPAWN.Queue()
    writer = _start(_peer_writer, system, shape, count, pace, where, ready_w, go, done, wq)
    try:
        assert ready_w.wait(60), f"{system} writer did not start"
        reader = _start(_peer_reader, system, shape, count, where, count * pace + 20, ready_r, rq)
        assert ready_r.wait(60), f"{system} reader did not start"
        go.set()
        stamps = wq.get(timeout=count * pace + 60)
        got = rq.get(timeout=count * pace + 60)
    finally:
        go.set()
        done.set()
        for p in (writer, locals().get("reader")):
            if p is not None:
                p.join(30)
        if system == "zmq":
            Path(str(where).removeprefix("ipc://")).unlink(missing_ok=True)  # libzmq leaves it
    used = [g for g in got if g[0] >= count // 10]  # the first tenth is warm-up
    return {"one_way": statistics.median((t1 - stamps[k]) / 1e9 for k, t1, _, _ in used),
            "to_sum": statistics.median((t2 - stamps[k]) / 1e9 for k, _, t2, _ in used),
            "seen": len(got), "bad": sum(not ok for *_, ok in got)}


def _iox_root() -> str:
    return os.path.join(tempfile.gettempdir(), f"{_IOX_PREFIX}root") + "/"


def clean_iox() -> None:
    """iceoryx2 leaves its management files behind: remove ours (by our own prefix)."""
    import shutil

    for entry in Path("/dev/shm").glob(f"{_IOX_PREFIX}*"):
        entry.unlink(missing_ok=True)
    shutil.rmtree(_iox_root(), ignore_errors=True)


def peers(rounds: int, count: int) -> dict[str, dict[str, dict[str, float]]]:
    """Per size and system: medians over rounds of the per-round medians. Rounds interleave
    every system and size, so they share the machine's moods."""
    per: dict[str, dict[str, list[dict[str, float]]]] = {s: {p: [] for p in PEERS} for s in SIZES}
    try:
        for r in range(rounds):
            for label, shape in SIZES.items():
                n = count if shape[0] < 1000 else count // 2
                for i, system in enumerate(PEERS):
                    per[label][system].append(peer_round(system, shape, PACE_S[label], n, f"{r}-{label}-{i}"))
    finally:
        clean_iox()
    return {label: {system: {key: statistics.median(x[key] for x in runs) if key in ("one_way", "to_sum")
                             else sum(x[key] for x in runs) for key in runs[0]}
                    for system, runs in systems.items()} for label, systems in per.items()}


# ---- report -------------------------------------------------------------------------------

def peer_rows(lines: list[str], peer: dict[str, dict[str, dict[str, float]]], rounds: int, count: int) -> None:
    """The peer section: latencies, then the targets as ratios within this run."""
    a, b = peer["480x640x3"], peer["1080x1920x3"]
    lines.append(f"| **peers, interleaved** ({rounds} rounds x {count} / {count // 2} frames, writer paced "
                 f"{PACE_S['480x640x3'] * 1e3:g} / {PACE_S['1080x1920x3'] * 1e3:g} ms, reader spinning) "
                 "| one-way / frame-to-sum | | | | |")
    for key, what in PEERS.items():
        bad = a[key]["bad"] + b[key]["bad"]
        notes = f"frames seen {a[key]['seen']:.0f} / {b[key]['seen']:.0f}, wrong sums {bad:.0f}"
        lines.append(f"| {what} | {us(a[key]['one_way'])} / {us(a[key]['to_sum'])} | "
                     f"{us(b[key]['one_way'])} / {us(b[key]['to_sum'])} | {notes} | | |")

    def ratio(what: str, x: list[float], target: str, ok: bool) -> None:
        lines.append(f"| {what} | {x[0]:.2f}x | {x[1]:.2f}x | | {target} | {verdict(ok)} |")

    for mine, theirs, name in (("shm_zero", "iox", "shmview zero-copy / iceoryx2"),
                               ("shm_loan", "iox_loan", "shmview loan / iceoryx2 loan (in place)")):
        for lat, what in (("one_way", "one-way"), ("to_sum", "frame-to-sum")):
            x = [p[mine][lat] / p[theirs][lat] for p in (a, b)]
            ratio(f"{name}, {what}", x, "≤ 1.0x at both sizes", max(x) <= 1.0)
    for lat, what in (("one_way", "one-way"), ("to_sum", "frame-to-sum")):
        x = [p["zmq"][lat] / p["shm_zero"][lat] for p in (a, b)]
        ratio(f"ZeroMQ / shmview zero-copy, {what} (how many times lower)", x, "≥ 5x at both sizes", min(x) >= 5)
    bad = sum(p[k]["bad"] for p in (a, b) for k in PEERS)
    lines.append(f"| wrong sums, all peers | {bad:.0f} | | | 0 | {verdict(bad == 0)} |")


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


# ---- metadata, histogram, recording (issues 13 and 14) -----------------------------------

DETECTIONS = {"detections": [{"label": "person", "score": 0.87, "box": [12 + i, 40, 64, 128]} for i in range(20)]}


def histogram_cost(frame: np.ndarray, rounds: int, seconds: float) -> float:
    from viewer.view.histogram import histogram

    return per_call(functools.partial(histogram, frame, "BGR", (0, 255)), rounds, seconds)


def recording_rate(frame: np.ndarray, compression: str, seconds: float) -> float:
    """Frames/s the MCAP writer takes (frames varying a little, as a camera's do)."""
    from viewer.recording.messages import Description
    from viewer.recording.sinks import McapSink
    from viewer.stream.frames import Frame

    desc = Description("bench", frame.shape, "uint8", "BGR", 4096)
    noisy = [np.clip(frame.astype(np.int16) + k, 0, 255).astype(np.uint8) for k in (-3, 0, 3)]
    with tempfile.TemporaryDirectory(prefix="shmview-bench-rec-") as folder:
        sink = McapSink(Path(folder) / "rate.mcap", compression)
        try:
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                sink.write(desc, Frame(noisy[n % 3], n, time.time_ns()))
                n += 1
            sink.flush()
            return n / (time.perf_counter() - start)
        finally:
            sink.close()


def extra_rows(lines: list[str], res: dict[str, dict[str, float]], phase: float) -> None:
    small, big = res["480x640x3"], res["1080x1920x3"]
    x = small["write_meta"] / small["write"]
    lines.append(f"| FrameWriter.write with a 20-box detection list as metadata | {us(small['write_meta'])} | "
                 f"{us(big['write_meta'])} | {x:.2f}x write() without | ≤ 1.1x | {verdict(x <= 1.1)} |")
    lines.append(f"| histogram of a frame (3 channels) | {us(small['hist'])} | {us(big['hist'])} | "
                 f"| < 5 ms at 1080x1920x3 | {verdict(big['hist'] < 0.005)} |")
    for compression in ("zstd", "lz4", "none"):
        rates = [recording_rate(frames_for(shape)[0], compression, 4 * phase + 1) for shape in SIZES.values()]
        lines.append(f"| shmview record to MCAP ({compression}): frames/s the writer takes | {rates[0]:,.0f}/s | "
                     f"{rates[1]:,.0f}/s | | ≥ 60 / ≥ 30 with zstd | "
                     f"{verdict(rates[0] >= 60 and rates[1] >= 30) if compression == 'zstd' else ''} |")


# ---- overlays: a window's CPU with 64 KiB of worst-case overlay metadata (issue 18) --------

OVERLAY_META_BYTES = 65536


def worst_overlay(k: int, shape: tuple[int, ...] = (480, 640, 3), *, long_labels: bool = False) -> dict:
    """Frame k's metadata: every overlay cap reached at once (viewer.view.overlay's MAX_SHAPES
    shapes, MAX_POINTS points, every edge across the whole frame, and MAX_TEXTS labels of
    MAX_CHARS characters in all, or MAX_TEXT long ones), then lines to fill OVERLAY_META_BYTES,
    which are decoded but not drawn. It moves with k, so every frame's overlay is new."""
    import orjson

    from viewer.view.overlay import MAX_CHARS, MAX_POINTS, MAX_SHAPES, MAX_TEXT, MAX_TEXTS

    h, w = shape[:2]
    vertices = 20
    polygons = (MAX_POINTS - 2 * MAX_SHAPES) // (vertices - 2)
    items = [{"polygon": [[0 if j % 2 else w, (k + i + 7 * j) % h] for j in range(vertices)]} for i in range(polygons)]
    items += [{"line": [0, (k + i) % h, w, h - (k + i) % h]} for i in range(MAX_SHAPES - polygons)]
    labelled = items[-(MAX_CHARS // MAX_TEXT):] if long_labels else items[-MAX_TEXTS:]
    for item in labelled:
        item["label"] = "W" * (MAX_CHARS // len(labelled))
    room = OVERLAY_META_BYTES - len(orjson.dumps({"overlay": items}))
    items += [{"line": [0, i % h, w, h - i % h]} for i in range(room // 20)]  # each ~25 bytes: too many
    while len(orjson.dumps({"overlay": items})) > OVERLAY_META_BYTES:
        del items[-max(1, (len(orjson.dumps({"overlay": items})) - OVERLAY_META_BYTES) // 30):]
    return {"overlay": items}


OVERLAY_MODES = {  # window name: what its stream's frames carry
    "bench-plain": "no metadata",
    "bench-meta": "the same 64 KiB, under another key (decoded, nothing drawn)",
    "bench-overlaid": "64 KiB of worst-case overlays",
}


def _overlay_writer(name: str, ready, stop) -> None:
    shape = (480, 640, 3)
    metas: list[dict | None] = [worst_overlay(k) for k in range(6)] if name != "bench-plain" else [None]
    if name == "bench-meta":
        metas = [{"boxes": m["overlay"]} for m in metas if m is not None]
    image = np.full(shape, 40, np.uint8)
    with FrameWriter(name, shape, meta_bytes=OVERLAY_META_BYTES) as w:
        ready.set()
        k, start = 0, time.perf_counter()
        while not stop.is_set():
            w.write(image, meta=metas[k % len(metas)])
            k += 1
            time.sleep(max(0.0, start + k / 30 - time.perf_counter()))  # 30 fps


def overlay_cpu(seconds: float, rounds: int) -> dict[str, float]:
    """% of one core used by three `shmview view` windows (offscreen, 300 ms) side by side, each
    on a 30 fps stream of its own (OVERLAY_MODES), measured over the same windows of time, so a
    busy machine loads them alike. Medians over rounds, by window name, and of the ratios of
    the overlaid window to the others ("x_plain", "x_meta")."""
    import psutil

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    ready, stop = SPAWN.Event(), SPAWN.Event()
    writers, viewers = [], []
    try:
        for name in OVERLAY_MODES:
            writers.append(_start(_overlay_writer, name, ready, stop))
            ready.wait(60)
            ready.clear()
            viewers.append(subprocess.Popen([sys.executable, "-m", "viewer", "view", name, "--interval-ms", "300"],
                                            env=env, stderr=subprocess.DEVNULL))
        time.sleep(3.0)  # start-up: imports, first paint
        procs = {name: psutil.Process(v.pid) for name, v in zip(OVERLAY_MODES, viewers, strict=True)}
        samples = []
        for _ in range(rounds):
            before = {name: sum(p.cpu_times()[:2]) for name, p in procs.items()}
            time.sleep(seconds)
            samples.append({name: 100 * (sum(p.cpu_times()[:2]) - before[name]) / seconds for name, p in procs.items()})
    finally:
        for v in viewers:
            v.terminate()
            v.wait(30)
        stop.set()
        for wr in writers:
            wr.join(30)
    out = {name: statistics.median(s[name] for s in samples) for name in OVERLAY_MODES}
    for key, name in (("x_plain", "bench-plain"), ("x_meta", "bench-meta")):
        out[key] = statistics.median(s["bench-overlaid"] / s[name] for s in samples)
    return out


def overlay_row(lines: list[str], seconds: float, rounds: int) -> None:
    cpu = overlay_cpu(seconds, rounds)
    lines.append(f"| viewer window at 300 ms, 30 fps stream with 64 KiB of worst-case overlays per frame: CPU | "
                 f"{cpu['bench-overlaid']:.2f} % of one core | | {cpu['x_plain']:.2f}x the same window on frames "
                 f"without metadata ({cpu['bench-plain']:.2f} %); {cpu['x_meta']:.2f}x on frames with the same "
                 f"64 KiB under another key ({cpu['bench-meta']:.2f} %) | ≤ 3x | {verdict(cpu['x_plain'] <= 3)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter phases (a smoke run)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("--overlays-only", action="store_true", help="only the row of a window's CPU with overlays")
    args = parser.parse_args()
    rounds, phase, count, idle = (3, 0.1, 100, 4.0) if args.quick else (7, 0.5, 400, 20.0)
    peer_rounds, peer_count = (2, 60) if args.quick else (5, 200)
    own_registry = "SHMVIEW_REGISTRY" not in os.environ
    if own_registry:
        os.environ["SHMVIEW_REGISTRY"] = tempfile.mkdtemp(prefix="shmview-bench-")
    try:
        if args.overlays_only:
            return overlays_only(idle)
        return run(args, rounds, phase, count, idle, peer_rounds, peer_count)
    finally:
        if own_registry:
            import shutil

            shutil.rmtree(os.environ["SHMVIEW_REGISTRY"], ignore_errors=True)


def run(args: argparse.Namespace, rounds: int, phase: float, count: int, idle: float, peer_rounds: int,
        peer_count: int) -> int:
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}; {time.strftime('%Y-%m-%d')}; {'quick run' if args.quick else 'full run'}",
        "",
        "| what | 480x640x3 | 1080x1920x3 | ratio (at 480x640x3 / 1080x1920x3) | target | |",
        "|---|---|---|---|---|---|",
    ]
    res: dict[str, dict[str, float]] = {k: {} for k in SIZES}
    for label, shape in SIZES.items():
        print(f"measuring {label} ...", file=sys.stderr)
        r = res[label]
        frames = frames_for(shape)
        frame, dst = frames[0], np.empty(shape, np.uint8)
        with FrameWriter("bench-cost", shape) as writer, FrameReader("bench-cost") as reader:
            r.update(per_call_interleaved({
                "copyto": functools.partial(np.copyto, dst, frame), "copyto_ring": cycling_copy(frame, 3),
                "write": functools.partial(writer.write, frame), "read": reader.read,
                "write_meta": functools.partial(writer.write, frame, meta=DETECTIONS)}, rounds, phase))
        r["hist"] = histogram_cost(frame, rounds, phase)
        n = count if shape[0] < 1000 else count // 4
        transports = [("lat_shmview", latency_shmview), ("lat_zmq", latency_zmq), ("lat_pipe", latency_pipe),
                      ("lat_queue", latency_queue)]
        medians: dict[str, list[float]] = {name: [] for name, _ in transports}
        for _ in range(3):  # rounds interleave the transports, so they share the machine's moods
            for name, fn in transports:
                medians[name].append(statistics.median(fn(frames, n)) / 1e6)
        r.update({name: statistics.median(m) for name, m in medians.items()})
        r["w_fps"], r["r_fps"], r["torn"], r["reads"] = flood_shmview(shape, 3 * phase + 0.5)
        r.update({f"disp_{k}": v for k, v in display_costs(shape, rounds, phase).items()})
    print(f"measuring peers: {peer_rounds} interleaved rounds ...", file=sys.stderr)
    peer = peers(peer_rounds, peer_count)
    small, big = res["480x640x3"], res["1080x1920x3"]

    def row(what: str, key: str, fmt: Callable[[float], str], ratio: str = "", target: str = "",
            ok: bool | None = None) -> None:
        lines.append(f"| {what} | {fmt(small[key])} | {fmt(big[key])} | {ratio} | {target} | "
                     f"{'' if ok is None else verdict(ok)} |")

    row("np.copyto one frame (floor: one destination, cache-warm)", "copyto", us, "1.00x copyto")
    ring = [r["copyto_ring"] / r["copyto"] for r in (small, big)]
    row("np.copyto into 3 destinations in turn (a 3-slot ring's cache footprint)", "copyto_ring", us,
        f"{ring[0]:.2f}x / {ring[1]:.2f}x copyto")
    for key, what, limit in (("write", "FrameWriter.write", 1.3), ("read", "FrameReader.read (a new array each time)",
                                                                     1.5)):
        x = [r[key] / r["copyto"] for r in (small, big)]
        row(what, key, us, f"{x[0]:.2f}x / {x[1]:.2f}x copyto", f"≤ {limit}x", max(x) <= limit)
    x = [r["write"] / r["copyto_ring"] for r in (small, big)]
    row("FrameWriter.write against the same footprint (3 destinations in turn)", "write", us,
        f"{x[0]:.2f}x / {x[1]:.2f}x", "", None)
    peer_rows(lines, peer, peer_rounds, peer_count)
    row("one-way latency, shmview (reader polling, read(out=...))", "lat_shmview", us)
    zmq_x, queue_x = small["lat_zmq"] / small["lat_shmview"], small["lat_queue"] / small["lat_shmview"]
    row("one-way latency, pyzmq PUSH/PULL ipc:// zero-copy", "lat_zmq", us, f"shmview {zmq_x:.1f}x lower", "≥ 5x",
        zmq_x >= 5)
    row("one-way latency, mp.Pipe recv_bytes_into", "lat_pipe", us,
        f"shmview {small['lat_pipe'] / small['lat_shmview']:.1f}x lower")
    row("one-way latency, mp.Queue", "lat_queue", us, f"shmview {queue_x:.1f}x lower", "≥ 50x", queue_x >= 50)
    row("writer flooding: frames written/s", "w_fps", lambda v: f"{v:,.0f}/s")
    ratio = small["r_fps"] / small["w_fps"]
    row("... consistent new frames read/s by one reader (read(out=...))", "r_fps", lambda v: f"{v:,.0f}/s",
        f"{ratio:.2f}x of written", "≥ 0.5x", ratio >= 0.5)
    row("... torn frames accepted", "torn", lambda v: f"{v:.0f}", "", "0", small["torn"] == 0 and big["torn"] == 0)
    for other, label in (("disp_qlabel", "QLabel/QPixmap + ndarray.sum()"), ("disp_pyqtgraph", "pyqtgraph")):
        if other in small:
            x = small[other] / small["disp_shmview"]
            row(f"refresh of a new frame, {label}", other, us, f"shmview {x:.1f}x faster", "≥ 3x", x >= 3)
    row("refresh of a new frame, shmview (read + exact sum + paint)", "disp_shmview", us)
    print("measuring a paced producer with 8 readers ...", file=sys.stderr)
    alone, _ = paced_rate(SIZES["480x640x3"], 100, 4 * phase + 1, 0)
    crowded, torn8 = paced_rate(SIZES["480x640x3"], 100, 4 * phase + 1, 8)
    lines.append(f"| producer paced at 100 fps, alone / with 8 readers flooding | {alone:.1f} / {crowded:.1f} fps | | "
                 f"{crowded / alone:.2f}x; torn {torn8} | within 10 %, 0 torn | "
                 f"{verdict(crowded >= 0.9 * alone and torn8 == 0)} |")
    print("measuring metadata, histogram and recording ...", file=sys.stderr)
    extra_rows(lines, res, phase)
    print(f"measuring viewer CPU over {idle:g} s ...", file=sys.stderr)
    viewer_pct, producer_pct = viewer_cpu(idle)
    lines.append(f"| viewer window at 300 ms, producer at 30 fps: CPU | {viewer_pct:.2f} % of one core | | "
                 f"producer {producer_pct:.2f} % | < 0.3 % | {verdict(viewer_pct < 0.3)} |")
    print(f"measuring three viewer windows, with and without overlays, over {idle:g} s x 3 ...", file=sys.stderr)
    overlay_row(lines, idle, 3)
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


def overlays_only(idle: float) -> int:
    lines = ["| what | 480x640x3 | | ratio | target | |", "|---|---|---|---|---|---|"]
    print(f"measuring three viewer windows, with and without overlays, over {idle:g} s x 3 ...", file=sys.stderr)
    overlay_row(lines, idle, 3)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
