"""shmview over Zenoh (share -> bridge) against imagezmq, on loopback, in one run.

    .venv/bin/pip install -e '.[net,bench]'
    unshare -n sh -c 'ip link set lo up && .venv/bin/python bench/net.py'   # as root: no network at all

Loopback only: every endpoint is tcp/127.0.0.1:<free port> (with --insecure: the numbers
are Zenoh's plain TCP, comparable with imagezmq's), Zenoh's multicast scouting is
off (shmview's default), imagezmq binds and connects on 127.0.0.1.

For each size and codec, two phases per system, each ``--seconds`` long:
- latency: the producer writes at 30 fps; one-way latency is the receiver's clock when it
  holds the decoded frame minus the producer's clock just before it handed the frame over
  (shmview: the frame's timestamp_ns, taken by FrameWriter.write; the path is producer ->
  shared memory -> share -> Zenoh -> bridge -> shared memory -> FrameReader);
- sustained: the producer writes at 120 fps; fps is distinct frames the receiver got per
  second (a frame the link cannot carry is dropped, never queued).
imagezmq runs REQ/REP (its default: each send waits for the hub's reply), the sender encoding
with cv2.imencode and the hub decoding with cv2.imdecode for jpeg, as its docs show.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPAWN = mp.get_context("spawn")
SIZES = {"640x480x3": (480, 640, 3), "1920x1080x3": (1080, 1920, 3)}
QUALITY = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def picture(shape: tuple[int, ...], k: int) -> np.ndarray:
    """A camera-like frame: smooth ramps plus a little noise (JPEG sizes like a real scene)."""
    h, w = shape[:2]
    y, x = np.ogrid[:h, :w]
    base = ((x * 255 // w + y * 255 // h + k) % 256).astype(np.uint8)
    noise = np.random.default_rng(k).integers(0, 12, (h, w), dtype=np.uint8)
    return np.dstack([base, base[:, ::-1], base + noise])


def pace(fps: float, stop, step) -> None:
    period, next_t, k = 1.0 / fps, time.monotonic(), 0
    while not stop.is_set():
        step(k)
        k += 1
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_t = time.monotonic()


# ---- shmview --------------------------------------------------------------------------------


def shm_producer(name: str, shape, fps: float, stop, registry: str) -> None:
    os.environ["SHMVIEW_REGISTRY"] = registry
    from viewer import FrameWriter

    frames = [picture(shape, k) for k in range(8)]
    with FrameWriter(name, shape) as w:
        pace(fps, stop, lambda k: w.write(frames[k % 8]))


def shm_run(shape, codec: str, fps: float, seconds: float, registry: str) -> tuple[list[float], float]:
    from viewer import FrameReader
    from viewer.errors import StreamNotFoundError

    port, env = free_port(), {**os.environ, "SHMVIEW_REGISTRY": registry, "PYTHONPATH": str(ROOT)}
    stop = SPAWN.Event()
    prod = SPAWN.Process(target=shm_producer, args=("src", shape, fps, stop, registry))
    prod.start()
    cmd = [sys.executable, "-m", "viewer"]
    share = subprocess.Popen(
        [
            *cmd,
            "share",
            "src",
            "--listen",
            f"tcp/127.0.0.1:{port}",
            "--host-id",
            "b",
            "--codec",
            codec,
            "--quality",
            str(QUALITY),
            "--insecure",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    bridge = subprocess.Popen(
        [*cmd, "bridge", "--connect", f"tcp/127.0.0.1:{port}", "--insecure"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                reader = FrameReader("b.src", follow=True)
                break
            except StreamNotFoundError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with reader:
            reader.wait(10)
            return receive(reader, seconds)
    finally:
        for p in (bridge, share):
            p.send_signal(signal.SIGTERM)
            p.wait(20)
        stop.set()
        prod.join(10)


def receive(reader, seconds: float) -> tuple[list[float], float]:
    """Latencies (ms) of every frame seen, and distinct frames per second."""
    lat, last, got = [], reader.frames_written, 0
    out = np.empty(reader.layout.shape, reader.layout.dtype)  # as a viewer does: no fresh pages per frame
    t0 = time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        n = reader.frames_written
        if n == last:
            time.sleep(0.0002)
            continue
        frame = reader.read(out)
        lat.append((time.time_ns() - frame.timestamp_ns) / 1e6)
        last, got = n, got + 1
    return lat, got / (time.monotonic() - t0)


# ---- imagezmq -------------------------------------------------------------------------------


def zmq_sender(port: int, shape, codec: str, fps: float, stop) -> None:
    import cv2
    import imagezmq

    sender = imagezmq.ImageSender(connect_to=f"tcp://127.0.0.1:{port}")
    frames = [picture(shape, k) for k in range(8)]

    def step(k: int) -> None:
        stamp = str(time.time_ns())
        if codec == "jpeg":
            _, jpg = cv2.imencode(".jpg", frames[k % 8], [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
            sender.send_jpg(stamp, jpg)
        else:
            sender.send_image(stamp, frames[k % 8])

    try:
        pace(fps, stop, step)
    finally:
        sender.close()


def zmq_run(shape, codec: str, fps: float, seconds: float) -> tuple[list[float], float]:
    import cv2
    import imagezmq

    port = free_port()
    hub = imagezmq.ImageHub(open_port=f"tcp://127.0.0.1:{port}")
    stop = SPAWN.Event()
    proc = SPAWN.Process(target=zmq_sender, args=(port, shape, codec, fps, stop))
    proc.start()
    lat, got = [], 0
    try:
        for warm in (True, False):
            t0 = time.monotonic()
            end = t0 + (1.0 if warm else seconds)
            while time.monotonic() < end:
                if codec == "jpeg":
                    stamp, jpg = hub.recv_jpg()
                    cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_UNCHANGED)
                else:
                    stamp, _ = hub.recv_image()
                if not warm:
                    lat.append((time.time_ns() - int(stamp)) / 1e6)
                    got += 1
                hub.send_reply(b"OK")
        return lat, got / (time.monotonic() - t0)
    finally:
        stop.set()
        proc.join(10)
        hub.close()


# ---- report ---------------------------------------------------------------------------------


def row(system: str, size: str, codec: str, lat: list[float], fps30: float, fps_max: float) -> str:
    med = statistics.median(lat) if lat else float("nan")
    p99 = float(np.percentile(lat, 99)) if lat else float("nan")
    return f"| {system} | {size} | {codec} | {med:.1f} ms | {p99:.1f} ms | {fps30:.1f} | {fps_max:.1f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--codecs", default="raw,jpeg")
    args = ap.parse_args()
    import tempfile

    registry = tempfile.mkdtemp(prefix="netbench-")
    os.chmod(registry, 0o700)
    os.environ["SHMVIEW_REGISTRY"] = registry
    load = os.getloadavg()
    print(f"nproc {os.cpu_count()}, load {load[0]:.2f} at start, {args.seconds:g} s per phase\n")
    print("| system | frame | codec | latency median | latency p99 | fps (producer 30) | fps (producer 120) |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        shape = SIZES[size]
        for codec in args.codecs.split(","):
            lat, fps30 = shm_run(shape, codec, 30, args.seconds, registry)
            _, fps_max = shm_run(shape, codec, 120, args.seconds, registry)
            print(row("shmview share/bridge (Zenoh)", size, codec, lat, fps30, fps_max), flush=True)
            lat, fps30 = zmq_run(shape, codec, 30, args.seconds)
            _, fps_max = zmq_run(shape, codec, 120, args.seconds)
            print(row("imagezmq REQ/REP", size, codec, lat, fps30, fps_max), flush=True)
    print(f"\nload {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
