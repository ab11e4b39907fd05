"""Running share and bridge in tests: processes whose lines are collected, loopback endpoints,
mirrors opened as they appear, and the check that Zenoh leaves nothing in /dev/shm.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import CLI, wait_for
from viewer import FrameReader
from viewer.errors import StreamNotFoundError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_tcp(port: int) -> str:
    return f"tcp/127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def no_zenoh_files() -> Iterator[None]:
    """Zenoh's own shared-memory transport leaves *.zenoh files in /dev/shm: never ours."""
    before = set(Path("/dev/shm").glob("*.zenoh"))
    yield
    left = set(Path("/dev/shm").glob("*.zenoh")) - before
    assert not left, f"Zenoh files left in /dev/shm: {sorted(p.name for p in left)}"


class Lines:
    """What a process prints, collected by a thread (a selector on a buffered text pipe
    misses lines that arrived together)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.lines = proc, []
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait(self, prefix: str) -> str:
        def seen():
            if self.proc.poll() is not None and not any(x.startswith(prefix) for x in self.lines):
                raise AssertionError(f"{self.proc.args} exited {self.proc.returncode}: {self.lines}")
            return next((x for x in self.lines if x.startswith(prefix)), None)

        return wait_for(seen, what=f"a line starting {prefix!r}")


def started(args: list[str], **popen: Any) -> tuple[subprocess.Popen, Lines]:
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    return proc, Lines(proc)


def ended(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    """Signal ``proc`` and reap it; its exit code (its stdout belongs to its Lines)."""
    if proc.stderr.closed:
        return proc.returncode  # ended before, on purpose
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err = proc.stderr.read()
        proc.stderr.close()
    assert sig == signal.SIGKILL or proc.returncode == 0, f"{proc.args} exit {proc.returncode}: {err}"
    return proc.returncode


@contextmanager
def running(args: list[str], ready: str, stop_with: int = signal.SIGTERM, **popen: Any) -> Iterator[Lines]:
    """A shmview process that printed a line starting with ``ready``; SIGTERM (``stop_with``)
    at the end."""
    proc, lines = started(args, **popen)
    try:
        lines.wait(ready)
        yield lines
    finally:
        ended(proc, stop_with)
        lines._thread.join(5)
        proc.stdout.close()


def open_mirror(name: str) -> FrameReader:
    return wait_for(lambda: try_open(name), what=f"mirrored stream {name}")


def try_open(name: str) -> FrameReader | None:
    try:
        return FrameReader(name, follow=True)
    except StreamNotFoundError:
        return None
