"""Soak test: a producer restarted at random (SIGTERM, SIGINT, SIGHUP or SIGKILL), a headless
viewer following it throughout, an in-process reader reading as fast as it can, and short-lived
reader processes attaching, detaching and being killed. At the end it prints what it checked
and exits 1 if anything went wrong.

    python tests/support/soak.py --seconds 600
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import psutil

from viewer.stream.frames import LIVE
from viewer.testing import LitterCheck
from viewer.view.monitor import StreamMonitor

CLI = [sys.executable, "-m", "viewer"]
H, W, C = 240, 320, 3
READER = """
import sys
from viewer import FrameReader, ShmviewError
try:
    reader = FrameReader(sys.argv[1])
except ShmviewError:
    sys.exit(0)  # between two producers: nothing to attach to
torn = 0
with reader:
    for _ in range(2000):
        f = reader.read()
        if f is not None and (f.image.min() != f.image.max() or f.image.flat[0] != f.index % 256):
            torn += 1
print(torn)
"""


class Soak:
    def __init__(self, seconds: float, seed: int) -> None:
        self.name = f"soak-{os.getpid()}"
        self.seconds = seconds
        self.seed = seed
        self.rng = random.Random(seed)
        self.stats: Counter[str] = Counter()
        self.problems: list[str] = []
        self.blocks_seen: list[str] = []
        self.viewer_blocks: set[str] = set()  # blocks the viewer showed live
        self.done = threading.Event()

    def start_producer(self) -> subprocess.Popen:
        cmd = [
            *CLI,
            "produce",
            "synthetic",
            "--name",
            self.name,
            "--pattern",
            "solid",
            "--size",
            f"{W}x{H}",
            "--fps",
            "120",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "ready" not in line:
            self.problems.append(f"producer failed to start: {line!r}")
            return proc
        self.blocks_seen.append(line.split("block ", 1)[1].split(",", 1)[0])
        return proc

    def follow_viewer(self, viewer: subprocess.Popen) -> None:
        assert viewer.stdout is not None
        for line in viewer.stdout:
            s = json.loads(line)
            self.stats["viewer lines"] += 1
            if s["state"] == LIVE and s["frame"] is not None:
                self.viewer_blocks.add(s["block"])
                if s["sum"] != (s["frame"] % 256) * H * W * C:
                    self.stats["viewer bad sums"] += 1

    def read_in_process(self) -> None:
        monitor = StreamMonitor(self.name)
        try:
            while not self.done.is_set():
                s = monitor.poll()
                if s.new and s.frame is not None:
                    self.stats["frames read"] += 1
                    img = s.frame.image
                    if img.min() != img.max() or img.flat[0] != s.frame.index % 256:
                        self.stats["torn frames"] += 1
        except Exception as exc:  # the soak is there to find these
            self.problems.append(f"in-process reader died: {exc!r}")
        finally:
            monitor.close()

    def churn_readers(self) -> None:
        while not self.done.wait(self.rng.uniform(0.1, 0.5)):
            proc = subprocess.Popen(
                [sys.executable, "-c", READER, self.name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            self.stats["reader processes"] += 1
            if self.rng.random() < 0.5:
                time.sleep(self.rng.uniform(0.05, 0.4))
                proc.kill()
                self.stats["readers killed -9"] += 1
            out, err = proc.communicate()
            if proc.returncode == 0 and out.strip():
                self.stats["torn frames"] += int(out)
            if err.strip():
                self.problems.append(f"reader stderr: {err.strip()[:300]}")

    def run(self) -> int:
        litter = LitterCheck(mappings=False)  # judges only what this soak makes (viewer.testing)
        viewer = subprocess.Popen(
            [*CLI, "view", self.name, "--headless", "--json", "--interval-ms", "50", "--timeout", "600"],
            stdout=subprocess.PIPE,
            text=True,
        )
        threads = [
            threading.Thread(target=f, args=a)
            for f, a in [(self.follow_viewer, (viewer,)), (self.read_in_process, ()), (self.churn_readers, ())]
        ]
        for t in threads:
            t.start()
        end = time.monotonic() + self.seconds
        producer = self.start_producer()
        while time.monotonic() < end:
            time.sleep(self.rng.uniform(0.5, 2.5))
            sig = self.rng.choice([signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL])
            producer.send_signal(sig)
            code = producer.wait(30)
            if sig != signal.SIGKILL and code != 0:
                self.problems.append(f"producer exited {code} on {sig.name}")
            self.stats[f"stops by {sig.name}"] += 1
            producer = self.start_producer()
            self.stats["restarts"] += 1
        self.until(lambda: self.blocks_seen[-1:] and self.blocks_seen[-1] in self.viewer_blocks, timeout=10)
        producer.send_signal(signal.SIGTERM)
        producer.wait(30)
        self.done.set()
        viewer.send_signal(signal.SIGTERM)
        viewer.wait(30)
        for t in threads:
            t.join(60)
        return self.report(litter)

    @staticmethod
    def until(predicate, timeout: float) -> None:
        """Poll ``predicate`` until it holds or ``timeout`` s pass (the report says which)."""
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.02)

    def report(self, litter: LitterCheck) -> int:
        left = litter.wait(timeout=5)
        leaked = left.blocks
        me = os.getpid()
        orphans = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if p.pid != me and self.name in " ".join(p.info["cmdline"] or [])
        ]
        survived = sum(b in self.viewer_blocks for b in self.blocks_seen)
        s = self.stats
        print(f"soak: {self.seconds:g} s, stream {self.name}, seed {self.seed}")
        stops = ", ".join(f"{k[9:]} {v}" for k, v in sorted(s.items()) if k.startswith("stops by"))
        followed = f"{survived}/{len(self.blocks_seen)}"
        print(f"restarts: {s['restarts']} ({stops}); producers the viewer followed live: {followed}")
        print(f"frames read in process: {s['frames read']:,}; torn frames: {s['torn frames']}")
        print(f"viewer lines: {s['viewer lines']:,}; wrong sums: {s['viewer bad sums']}")
        print(f"reader processes: {s['reader processes']} (killed -9: {s['readers killed -9']})")
        print(f"blocks leaked: {len(leaked)}; orphan processes: {len(orphans)}")
        self.problems += [f"left behind: {item}" for item in (*left.blocks, *left.records, *left.processes)]
        for p in self.problems[:10]:
            print(f"problem: {p}")
        ok = (
            not left
            and not orphans
            and not self.problems
            and s["torn frames"] == 0
            and s["viewer bad sums"] == 0
            and survived == len(self.blocks_seen)
            and s["frames read"] > 0
        )
        print("soak: OK" if ok else "soak: FAILED")
        replay = f"python tests/support/soak.py --seconds {self.seconds:g} --seed {self.seed}"
        print(f"soak: seed {self.seed} (same schedule of signals, sleeps and kills: {replay})")
        return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    print(f"soak: seed {args.seed}", flush=True)
    return Soak(args.seconds, args.seed).run()


if __name__ == "__main__":
    sys.exit(main())
