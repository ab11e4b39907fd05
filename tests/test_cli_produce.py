"""`shmview produce`, end to end: a producer stops by itself, refuses what cannot be, and
one killed leaves nothing behind and its name free at once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from tests.support.blocks import SHM
from tests.support.helpers import cli, json_lines, producer, read_line, start, stop, wait_for
from viewer import FrameWriter
from viewer.stream.registry import registry_dir

H, W, C = 48, 64, 3
SMALL = ["--size", f"{W}x{H}"]


def test_producer_stops_by_itself_after_n_frames():
    proc = start(["produce", "synthetic", "--name", "short", "--frames", "3", "--fps", "0", *SMALL])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("stream short ready")


def test_a_stream_too_big_for_shared_memory_is_refused_before_any_frame():
    synthetic = cli("produce", "synthetic", "--name", "huge", "--size", "16384x16384", "--slots", "64")
    folder = cli(
        "produce",
        "folder",
        "--name",
        "huge",
        "--path",
        "/nonexistent",
        "--size",
        "16384x16384",
        "--channels",
        "3",
        "--slots",
        "64",
    )  # refused before the folder is even looked at
    for done in (synthetic, folder):
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and "cannot allocate" in done.stderr
        assert done.stdout == ""


def test_second_producer_of_a_live_name_fails_and_the_first_goes_on():
    with producer("taken", *SMALL) as (_, block):
        done = cli("produce", "synthetic", "--name", "taken", *SMALL)
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and "already being produced" in done.stderr
        assert json_lines(cli("view", "taken", "--headless", "--json", "--count", "1").stdout)[0]["block"] == block


def family(proc: subprocess.Popen) -> list[psutil.Process]:
    """A process and everything it started (its SharedMemoryManager server, its tracker)."""
    parent = psutil.Process(proc.pid)
    return [parent, *parent.children(recursive=True)]


def all_gone(procs: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)


def test_kill_9_of_a_producer_leaves_nothing_and_viewers_see_stale():
    with producer("doomed", *SMALL) as (proc, block):
        procs = family(proc)
        assert len(procs) >= 3  # producer, manager server, resource tracker
        viewer = start(["view", "doomed", "--headless", "--json", "--interval-ms", "50"])
        try:
            wait_for(lambda: '"live"' in read_line(viewer), what="viewer live")
            proc.kill()
            proc.wait()
            wait_for(lambda: not Path("/dev/shm", block).exists(), timeout=5, what="block unlinked")
            wait_for(lambda: all_gone(procs), timeout=5, what="manager and tracker to exit")
            assert "doomed" not in cli("list").stdout
            assert not (registry_dir() / "doomed.json").exists()
            wait_for(lambda: '"stale"' in read_line(viewer), what="viewer stale")
            assert viewer.poll() is None  # the viewer is still up
        finally:
            stop(viewer)


def test_a_dead_producers_name_is_taken_over_at_once():
    with producer("reborn", *SMALL) as (proc, _):
        proc.kill()
        proc.wait()
        with producer("reborn", *SMALL) as (_, block):  # no waiting for any clean-up
            assert json_lines(cli("list", "--json").stdout)[0][0]["block"] == block


def test_no_room_at_the_command_line_too():
    done = cli("produce", "synthetic", "--name", "huge", "--size", "16384x16384", "--slots", "64")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "cannot allocate" in done.stderr


FORKS_A_CHILD = """
import multiprocessing as mp, subprocess, sys, time
import numpy as np
from viewer import FrameWriter
with FrameWriter("parent", (4, 4)) as w:
    w.write(np.ones((4, 4), np.uint8))
    child = mp.get_context("fork").Process(target=time.sleep, args=(600,))
    child.start()
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(w.block_name, child.pid, grandchild.pid, flush=True)
    time.sleep(600)
"""


def test_kill_9_of_a_producer_that_forked_children_frees_name_and_block():
    proc = subprocess.Popen([sys.executable, "-c", FORKS_A_CHILD], stdout=subprocess.PIPE, text=True)
    block, *kids = read_line(proc).split()
    try:
        proc.kill()
        proc.wait()
        wait_for(lambda: not (SHM / block).exists(), timeout=5, what="the block unlinked")
        wait_for(lambda: not (registry_dir() / "parent.json").exists(), timeout=5, what="the record removed")
        with FrameWriter("parent", (2, 2)):  # the name is free at once
            pass
    finally:
        proc.stdout.close()
        for pid in map(int, kids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
