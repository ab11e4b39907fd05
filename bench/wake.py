"""Blocking readers on every side (issue 20): one-way latency of a frame handed from one process
to another whose reader sleeps until it comes, and the CPU of a reader asleep in wait().

    PYTHONPATH=. .venv/bin/python bench/wake.py [--rounds N] [--frames N] [--big] [--cpu-tree DIR ...]

For every system, size and round a fresh writer/reader process pair; the systems interleave
within each round. One frame in flight: the writer sleeps PACE_S (so the reader is asleep
when the frame comes), stamps CLOCK_MONOTONIC, hands frame k over, and waits for the reader's
acknowledgement of k before the next. The reader stamps when it holds frame k as a usable
ndarray and checks its first pixel. Per round the median over frames (the first tenth is
warm-up), then the median over rounds (and the range of the rounds' medians).

- shmview `write()` + `wait(after=k)` (a copy out), `write()` + `view(after=k)` (in place),
  `loan()` (pixels made in the slot) + `view(after=k)`;
- iceoryx2 0.10's event-driven pair: `loan_uninit()`, copy in (or make the pixels in the
  loan), `send()`, `Notifier.notify()`; `Listener.timed_wait()`, then `receive()`;
- ZeroMQ PUSH/PULL over ipc://: `send_multipart(copy=False)` of the frame (or of a buffer the
  writer fills in place first), blocking `recv_multipart(copy=False)`;
- `multiprocessing.Queue`: `put()` / blocking `get()`.
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {"480x640x3": (480, 640, 3), "1080x1920x3": (1080, 1920, 3)}
PACE_S = {"480x640x3": 0.002, "1080x1920x3": 0.010}
SYSTEMS = {
    "shm_wait": "shmview write() + wait(after=k)",
    "shm_view": "shmview write() + view(after=k)",
    "shm_loan": "shmview loan(), pixels made in the slot + view(after=k)",
    "iox": "iceoryx2 loan_uninit, copy in, send, notify + Listener.timed_wait, receive",
    "iox_loan": "iceoryx2 loan_uninit, pixels made in the loan, send, notify + timed_wait, receive",
    "zmq": "ZeroMQ PUSH/PULL ipc://, send(copy=False) + blocking recv",
    "zmq_fill": "ZeroMQ, pixels made in the writer's buffer, send(copy=False) + blocking recv",
    "mpq": "multiprocessing.Queue put + blocking get",
}
SPAWN = mp.get_context("spawn")
_IOX_PREFIX = f"shmvw{os.getpid()}_"


def _frames(shape: tuple[int, ...]) -> list[np.ndarray]:
    frames = [np.random.default_rng(i).integers(0, 256, shape, np.uint8) for i in range(4)]
    for i, f in enumerate(frames):
        f.flat[0] = i  # frame k's first pixel is k % 4
    return frames


def _expected(system: str, k: int) -> int:
    return _fill(k) if system.endswith(("loan", "fill")) else k % 4


def _fill(k: int) -> int:
    return (37 * k + 11) % 256


# ---- iceoryx2 ------------------------------------------------------------------------------


def _iox(nbytes: int, tag: str, prefix: str) -> tuple:
    import iceoryx2 as iox2

    class Header(ctypes.Structure):
        _fields_ = [("index", ctypes.c_int64)]

    cfg = iox2.config.default()
    cfg.global_cfg.prefix = iox2.FileName.new(prefix)
    cfg.global_cfg.root_path = iox2.Path.new(_iox_root(prefix))
    node = iox2.NodeBuilder.new().config(cfg).create(iox2.ServiceType.Ipc)
    frames = (
        node.service_builder(iox2.ServiceName.new(f"wake/{tag}/frames"))
        .publish_subscribe(ctypes.c_uint8 * nbytes)
        .user_header(Header)
        .history_size(0)
        .subscriber_max_buffer_size(4)
        .subscriber_max_borrowed_samples(2)
        .enable_safe_overflow(True)
        .open_or_create()
    )
    events = node.service_builder(iox2.ServiceName.new(f"wake/{tag}/events")).event().open_or_create()
    return node, frames, events


def _iox_root(prefix: str) -> str:
    return os.path.join(tempfile.gettempdir(), f"{prefix}root") + "/"


def _iox_pixels(sample, shape: tuple[int, ...]) -> np.ndarray:  # type: ignore[no-untyped-def]
    n = int(np.prod(shape))
    return np.ctypeslib.as_array((ctypes.c_uint8 * n).from_address(sample.payload_ptr)).reshape(shape)


# ---- writers: send(k) hands frame k over ----------------------------------------------------


def _sender(system: str, shape: tuple[int, ...], where: str, frames: list[np.ndarray]):  # type: ignore[no-untyped-def]
    if system.startswith("shm"):
        from viewer import FrameWriter

        w = FrameWriter(where, shape)
        if system == "shm_loan":

            def send(k: int) -> None:
                with w.loan() as pixels:
                    pixels.fill(_fill(k))
        else:

            def send(k: int) -> None:
                w.write(frames[k % 4])

        return send, w.close
    if system.startswith("iox"):
        node, service, events = _iox(frames[0].nbytes, where, _IOX_PREFIX_CHILD)
        pub = service.publisher_builder().max_loaned_samples(2).create()
        notifier = events.notifier_builder().create()

        def send(k: int) -> None:
            sample = pub.loan_uninit()
            pixels = _iox_pixels(sample, shape)
            if system == "iox_loan":
                pixels.fill(_fill(k))
            else:
                np.copyto(pixels, frames[k % 4])
            sample.user_header().contents.index = k
            sample.assume_init().send()
            notifier.notify()

        return send, lambda: (pub, notifier, service, events, node)
    if system.startswith("zmq"):
        import zmq

        sock = zmq.Context.instance().socket(zmq.PUSH)
        sock.bind(where)
        buffers = [np.empty(shape, np.uint8) for _ in range(2)]

        def send(k: int) -> None:
            if system == "zmq_fill":
                image = buffers[k % 2]  # one frame in flight: the other is free again
                image.fill(_fill(k))
            else:
                image = frames[k % 4]
            sock.send_multipart([k.to_bytes(8, "little"), image], copy=False)

        return send, lambda: sock.close(linger=0)
    queue = where  # mpq: the Queue itself

    def send(k: int) -> None:
        queue.put((k, frames[k % 4]))

    return send, lambda: None


def _writer(system, shape, where, count, pace, ready, go, ack, out):  # type: ignore[no-untyped-def]
    global _IOX_PREFIX_CHILD
    _IOX_PREFIX_CHILD = out[1]
    frames = _frames(shape)
    send, close = _sender(system, shape, where, frames)
    ready.set()
    go.wait(60)
    stamps = []
    for k in range(count):
        time.sleep(pace)
        t0 = time.monotonic_ns()
        send(k)
        stamps.append((t0, time.monotonic_ns()))  # the hand-over began, and the writer is done
        if not ack.poll(30):
            break
        ack.recv_bytes()
    out[0].put(stamps)
    ack.poll(30)  # the reader says when it is through; the stream stays up until then
    close()


_IOX_PREFIX_CHILD = _IOX_PREFIX


# ---- readers: take(last) blocks until a frame after ``last`` and returns (k, t1, ok) --------


def _taker(system: str, shape: tuple[int, ...], where):  # type: ignore[no-untyped-def]
    if system.startswith("shm"):
        from viewer import FrameReader

        r = FrameReader.open(where, timeout=30)
        if system == "shm_wait":

            def take(last: int):  # type: ignore[no-untyped-def]
                f = r.wait(10, after=last)
                t1 = time.monotonic_ns()
                return f.index, t1, int(f.image.flat[0])
        else:

            def take(last: int):  # type: ignore[no-untyped-def]
                with r.view(after=last, timeout=10) as f:
                    t1 = time.monotonic_ns()
                    return f.index, t1, int(f.image.flat[0])

        return take, r.close
    if system.startswith("iox"):
        import iceoryx2 as iox2

        node, service, events = _iox(int(np.prod(shape)), where, _IOX_PREFIX_CHILD)
        sub = service.subscriber_builder().create()
        listener = events.listener_builder().create()
        ten_s = iox2.Duration.from_secs(10)

        def take(last: int):  # type: ignore[no-untyped-def]
            while True:
                newest = None
                while (sample := sub.receive()) is not None:
                    if newest is not None:
                        newest.delete()
                    newest = sample
                if newest is not None:
                    break
                listener.timed_wait(ten_s)
            pixels = _iox_pixels(newest, shape)
            t1 = time.monotonic_ns()
            first, k = int(pixels.flat[0]), newest.user_header().contents.index
            del pixels
            newest.delete()
            return k, t1, first

        return take, lambda: (sub, listener, service, events, node)
    if system.startswith("zmq"):
        import zmq

        sock = zmq.Context.instance().socket(zmq.PULL)
        sock.connect(where)

        def take(last: int):  # type: ignore[no-untyped-def]
            parts = sock.recv_multipart(copy=False)
            image = np.frombuffer(parts[1].buffer, np.uint8).reshape(shape)
            t1 = time.monotonic_ns()
            return int.from_bytes(parts[0].bytes, "little"), t1, int(image.flat[0])

        return take, lambda: sock.close(linger=0)

    def take(last: int):  # type: ignore[no-untyped-def]
        k, image = where.get(timeout=10)
        t1 = time.monotonic_ns()
        return k, t1, int(image.flat[0])

    return take, lambda: None


def _reader(system, shape, where, count, ready, ack, out):  # type: ignore[no-untyped-def]
    global _IOX_PREFIX_CHILD
    _IOX_PREFIX_CHILD = out[1]
    take, close = _taker(system, shape, where)
    ready.set()
    got, last = [], -1
    for _ in range(count):
        k, t1, first = take(last)
        ack.send_bytes(b"k")
        got.append((k, t1, first == _expected(system, k)))
        last = k
    out[0].put(got)
    close()


Run = tuple[float, int, int, float, float]


def one_round(system: str, label: str, count: int, tag: str) -> Run:
    """(median one-way seconds, frames seen, frames with a wrong first pixel, median seconds
    the writer's part took, median seconds from the writer's part done to the reader holding)."""
    shape, pace = SIZES[label], PACE_S[label]
    tmp = tempfile.gettempdir()
    where = {"shm": f"wake-{tag}", "iox": tag, "zmq": f"ipc://{tmp}/shmview-wake-{tag}.ipc"}.get(system[:3])
    if where is None:
        where = SPAWN.Queue(maxsize=2)
    w_end, r_end = SPAWN.Pipe()
    wq, rq = SPAWN.Queue(), SPAWN.Queue()
    ready_w, ready_r, go = SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
    writer = SPAWN.Process(
        target=_writer, args=(system, shape, where, count, pace, ready_w, go, w_end, (wq, _IOX_PREFIX))
    )
    writer.start()
    reader = None
    try:
        assert ready_w.wait(60), f"{system}: the writer did not start"
        reader = SPAWN.Process(target=_reader, args=(system, shape, where, count, ready_r, r_end, (rq, _IOX_PREFIX)))
        reader.start()
        assert ready_r.wait(60), f"{system}: the reader did not start"
        go.set()
        got = rq.get(timeout=count * (pace + 0.1) + 60)
        r_end.send_bytes(b"done")
        stamps = wq.get(timeout=60)
    finally:
        go.set()
        for p in (writer, reader):
            if p is not None:
                p.join(30)
                if p.is_alive():
                    p.kill()
        if system.startswith("zmq"):
            Path(where.removeprefix("ipc://")).unlink(missing_ok=True)
    used = [(k, t1) for k, t1, _ in got if k >= count // 10]
    return (
        statistics.median((t1 - stamps[k][0]) / 1e9 for k, t1 in used),
        len(got),
        sum(not ok for *_, ok in got),
        statistics.median((stamps[k][1] - stamps[k][0]) / 1e9 for k, _ in used),
        statistics.median((t1 - stamps[k][1]) / 1e9 for k, t1 in used),
    )


def blocked_cpu(seconds: float) -> float:
    """Per cent of one core used by a reader asleep in wait() for ``seconds`` (no new frame
    comes; its producer runs), measured in the reader by process_time()."""
    from viewer import FrameWriter

    with FrameWriter("wake-cpu", (480, 640, 3)) as w:
        w.write(np.zeros((480, 640, 3), np.uint8))
        code = (
            "import time; from viewer import FrameReader, StreamTimeoutError\n"
            "r = FrameReader('wake-cpu'); r.wait(5)\n"
            f"t = time.process_time()\ntry:\n    r.wait({seconds}, after=0)\nexcept StreamTimeoutError:\n    pass\n"
            f"print(100 * (time.process_time() - t) / {seconds})"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=200, help="per round at 480x640x3 (half at 1080x1920x3)")
    parser.add_argument("--big", action="store_true", help="1080x1920x3 too")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--cpu-tree", action="append", type=Path, default=[], help="also: blocked CPU of a tree")
    parser.add_argument("--cpu-seconds", type=float, default=10.0)
    args = parser.parse_args()
    systems = args.systems.split(",")
    labels = ["480x640x3", "1080x1920x3"] if args.big else ["480x640x3"]
    runs: dict[str, dict[str, list[Run]]] = {lb: {s: [] for s in systems} for lb in labels}
    try:
        for r in range(args.rounds):
            for label in labels:
                n = args.frames if label == "480x640x3" else args.frames // 2
                for i, system in enumerate(systems):
                    runs[label][system].append(one_round(system, label, n, f"{os.getpid()}-{r}-{label}-{i}"))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        for entry in Path("/dev/shm").glob(f"{_IOX_PREFIX}*"):
            entry.unlink(missing_ok=True)
        shutil.rmtree(_iox_root(_IOX_PREFIX), ignore_errors=True)
    report(runs, args)
    cpu_rows(args)
    return 0


def _med(runs: list[Run]) -> float:
    return statistics.median(x[0] for x in runs)


def report(runs: dict[str, dict[str, list[Run]]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.rounds} rounds x {args.frames} / {args.frames // 2} frames, one frame in flight, "
        f"writer paced {PACE_S['480x640x3'] * 1e3:g} / {PACE_S['1080x1920x3'] * 1e3:g} ms\n"
    )
    print("| system | " + " | ".join(f"{lb} one-way (rounds' range)" for lb in runs) + " | frames seen, wrong |")
    print("|---|" + "---|" * len(runs) + "---|")
    for system in next(iter(runs.values())):
        cells = []
        for systems in runs.values():
            meds = [x[0] * 1e6 for x in systems[system]]
            cells.append(f"{statistics.median(meds):,.0f} µs ({min(meds):,.0f}-{max(meds):,.0f})")
        seen = sum(x[1] for s in runs.values() for x in s[system])
        bad = sum(x[2] for s in runs.values() for x in s[system])
        print(f"| {SYSTEMS[system]} | " + " | ".join(cells) + f" | {seen}, {bad} |")
    print(
        "\nWhere the time goes (medians over rounds): the writer's part (its call returns), then until the "
        "reader holds the frame (ZeroMQ and the Queue hand over in background threads, so their "
        "second part holds most of the transfer)\n"
    )
    print("| system | " + " | ".join(f"{lb}: writer / then reader" for lb in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for system in next(iter(runs.values())):
        cells = [
            f"{statistics.median(x[3] for x in sy[system]) * 1e6:,.0f} / "
            f"{statistics.median(x[4] for x in sy[system]) * 1e6:,.0f} µs"
            for sy in runs.values()
        ]
        print(f"| {SYSTEMS[system]} | " + " | ".join(cells) + " |")
    targets = [
        ("shm_view", "iox", "write() + view(after=k), of iceoryx2's", "<= 1.0x", lambda x: x <= 1.0, True),
        ("shm_wait", "iox", "write() + wait(), of iceoryx2's", "<= 1.0x", lambda x: x <= 1.0, False),
        (
            "zmq_fill",
            "shm_loan",
            "loan() + view(), times lower than ZeroMQ (both in place)",
            ">= 3x",
            lambda x: x >= 3,
            False,
        ),
        ("zmq", "shm_wait", "write() + wait(), times lower than ZeroMQ", ">= 2x", lambda x: x >= 2, False),
        (
            "mpq",
            "shm_wait",
            "write() + wait(), times lower than multiprocessing.Queue",
            ">= 10x",
            lambda x: x >= 10,
            False,
        ),
    ]
    print("\n| target | size | ratio of medians | rounds' ratios | |\n|---|---|---|---|---|")
    for a, b, what, target, ok, both in targets:
        for label, systems in runs.items():
            if a not in systems or b not in systems or (label != "480x640x3" and not both):
                continue
            ratio = _med(systems[a]) / _med(systems[b])
            per = [x[0] / y[0] for x, y in zip(systems[a], systems[b], strict=True)]
            print(
                f"| {what} {target} | {label} | {ratio:.2f}x | {min(per):.2f}-{max(per):.2f}x "
                f"| {'met' if ok(ratio) else '**missed**'} |"
            )


def cpu_rows(args: argparse.Namespace) -> None:
    trees = [Path(__file__).resolve().parent.parent, *args.cpu_tree]
    print("\n| reader asleep in wait() | CPU, % of one core | target < 0.1 % |\n|---|---|---|")
    for tree in trees:  # this file, run with another tree's viewer package
        env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        cmd = [sys.executable, __file__, "--cpu-child", str(args.cpu_seconds)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        cpu = float(out.stdout.strip().splitlines()[-1])
        print(f"| {tree} ({args.cpu_seconds:g} s) | {cpu:.3f} % | {'met' if cpu < 0.1 else '**missed**'} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--cpu-child"]:
        print(blocked_cpu(float(sys.argv[2])))
        sys.exit(0)
    sys.exit(main())
