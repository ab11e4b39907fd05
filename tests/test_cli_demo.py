"""`shmview demo`: a producer and a viewer that start together and end together."""

from __future__ import annotations

import os
import subprocess

import psutil

from tests.support.helpers import CLI as CLI_CMD
from tests.support.helpers import cli, read_line, start, stop, wait_for


def test_demo_runs_a_producer_and_a_headless_viewer():
    done = cli("demo", "--headless", "--count", "3", "--name", "demo-test")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("stream demo-test ready")
    assert all(" live " in line or " waiting" in line for line in lines[1:]) and len(lines) == 4


def test_without_a_display_the_demo_says_so_and_runs_headless():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    demo = subprocess.Popen(
        [*CLI_CMD, "demo", "--name", "nodisplay"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert read_line(demo).startswith("stream nodisplay ready")
        wait_for(lambda: " live " in read_line(demo), what="text lines instead of a window")
    finally:
        code, err = stop(demo)
    assert code == 0, err
    assert err.startswith("shmview: no display: DISPLAY, WAYLAND_DISPLAY and QT_QPA_PLATFORM are not set;")


def test_demo_ends_when_its_producer_is_stopped():
    demo = start(["demo", "--headless", "--name", "demo-lone"])
    try:
        assert read_line(demo).startswith("stream demo-lone ready")
        wait_for(lambda: " live " in read_line(demo), what="the demo live")
        (producer_process,) = [p for p in psutil.Process(demo.pid).children() if "produce" in " ".join(p.cmdline())]
        producer_process.terminate()
        _, err = demo.communicate(timeout=60)
    finally:
        stop(demo)
    assert demo.returncode == 1 and "the demo producer stopped (exit 0)" in err


def test_kill_9_of_the_demo_takes_its_producer_with_it():
    demo = start(["demo", "--headless", "--name", "demo-k9"])
    try:
        assert read_line(demo).startswith("stream demo-k9 ready")
        (child,) = [p for p in psutil.Process(demo.pid).children() if "produce" in " ".join(p.cmdline())]
        demo.kill()
        demo.wait()
        wait_for(
            lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE,
            timeout=10,
            what="the demo's producer to stop",
        )
        wait_for(lambda: "demo-k9" not in cli("list").stdout, timeout=10, what="its stream gone")
    finally:
        stop(demo)
