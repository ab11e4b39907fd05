"""Peers, interleaved: shmview (copy, zero-copy, loan) against iceoryx2 and ZeroMQ, a fresh
writer/reader process pair per system, size and round, and the table's peer section."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import ACK, SIZES, SPAWN, frames_for, start, us, verdict

from viewer import FrameReader, FrameWriter

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
    service = (
        node.service_builder(iox2.ServiceName.new(service_name))
        .publish_subscribe(ctypes.c_uint8 * nbytes)
        .user_header(Header)
        .history_size(0)
        .subscriber_max_buffer_size(4)
        .subscriber_max_borrowed_samples(2)
        .enable_safe_overflow(True)
        .open_or_create()
    )
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
    where: object = {
        "shm": f"bench-peer-{tag}",
        "zmq": f"ipc://{tempfile.gettempdir()}/shmview-bench-{tag}.ipc",
        "iox": (f"shmview-bench/{tag}", _IOX_PREFIX, _iox_root()),
    }[system[:3]]
    ready_w, ready_r, go, done = SPAWN.Event(), SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
    wq, rq = SPAWN.Queue(), SPAWN.Queue()
    writer = start(_peer_writer, system, shape, count, pace, where, ready_w, go, done, wq)
    try:
        assert ready_w.wait(60), f"{system} writer did not start"
        reader = start(_peer_reader, system, shape, count, where, count * pace + 20, ready_r, rq)
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
    return {
        "one_way": statistics.median((t1 - stamps[k]) / 1e9 for k, t1, _, _ in used),
        "to_sum": statistics.median((t2 - stamps[k]) / 1e9 for k, _, t2, _ in used),
        "seen": len(got),
        "bad": sum(not ok for *_, ok in got),
    }


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
    return {
        label: {
            system: {
                key: statistics.median(x[key] for x in runs)
                if key in ("one_way", "to_sum")
                else sum(x[key] for x in runs)
                for key in runs[0]
            }
            for system, runs in systems.items()
        }
        for label, systems in per.items()
    }


def peer_rows(lines: list[str], peer: dict[str, dict[str, dict[str, float]]], rounds: int, count: int) -> None:
    """The peer section: latencies, then the targets as ratios within this run."""
    a, b = peer["480x640x3"], peer["1080x1920x3"]
    lines.append(
        f"| **peers, interleaved** ({rounds} rounds x {count} / {count // 2} frames, writer paced "
        f"{PACE_S['480x640x3'] * 1e3:g} / {PACE_S['1080x1920x3'] * 1e3:g} ms, reader spinning) "
        "| one-way / frame-to-sum | | | | |"
    )
    for key, what in PEERS.items():
        bad = a[key]["bad"] + b[key]["bad"]
        notes = f"frames seen {a[key]['seen']:.0f} / {b[key]['seen']:.0f}, wrong sums {bad:.0f}"
        lines.append(
            f"| {what} | {us(a[key]['one_way'])} / {us(a[key]['to_sum'])} | "
            f"{us(b[key]['one_way'])} / {us(b[key]['to_sum'])} | {notes} | | |"
        )

    def ratio(what: str, x: list[float], target: str, ok: bool) -> None:
        lines.append(f"| {what} | {x[0]:.2f}x | {x[1]:.2f}x | | {target} | {verdict(ok)} |")

    for mine, theirs, name in (
        ("shm_zero", "iox", "shmview zero-copy / iceoryx2"),
        ("shm_loan", "iox_loan", "shmview loan / iceoryx2 loan (in place)"),
    ):
        for lat, what in (("one_way", "one-way"), ("to_sum", "frame-to-sum")):
            x = [p[mine][lat] / p[theirs][lat] for p in (a, b)]
            ratio(f"{name}, {what}", x, "≤ 1.0x at both sizes", max(x) <= 1.0)
    for lat, what in (("one_way", "one-way"), ("to_sum", "frame-to-sum")):
        x = [p["zmq"][lat] / p["shm_zero"][lat] for p in (a, b)]
        ratio(f"ZeroMQ / shmview zero-copy, {what} (how many times lower)", x, "≥ 5x at both sizes", min(x) >= 5)
    bad = sum(p[k]["bad"] for p in (a, b) for k in PEERS)
    lines.append(f"| wrong sums, all peers | {bad:.0f} | | | 0 | {verdict(bad == 0)} |")
