"""Running shmview as a user does: real processes, real signals, deadlines not sleeps."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

CLI = [sys.executable, "-m", "viewer"]


def read_line(proc: subprocess.Popen, timeout: float = 20.0) -> str:
    """The next line the process prints, waiting at most ``timeout`` s."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"{proc.args} printed nothing in {timeout} s")
    return proc.stdout.readline()


def start(args: Sequence[str]) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> tuple[int, str]:
    """Signal ``proc`` (if still running) and reap it; return (exit code, stderr)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not stop on {sig!r}: {err}") from None
    return proc.returncode, err


@contextmanager
def producer(name: str, *extra: str, pattern: str = "solid") -> Iterator[tuple[subprocess.Popen, str]]:
    """A synthetic producer process, running and ready; yields (process, block name)."""
    proc = start(["produce", "synthetic", "--name", name, "--pattern", pattern, *extra])
    try:
        line = read_line(proc)
        if not line.startswith(f"stream {name} ready"):
            proc.kill()
            raise AssertionError(f"producer failed: {line!r} {proc.communicate()[1]}")
        block = line.split("block ", 1)[1].split(",", 1)[0]
        yield proc, block
    finally:
        stop(proc)


def cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@contextmanager
def registered(name: str, block: str, *, pid: int | None = None, created_ns: int = 0) -> Iterator[str]:
    """Point stream ``name`` at ``block`` as a live producer would: its registry record
    (``<name>.json`` in the folder in use) written and locked while the context lasts.
    Lets a test open a block it made itself by stream name; yields the name."""
    import fcntl
    import os

    from viewer.testing import registry_folder

    folder = registry_folder()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    record = {"name": name, "block": block, "pid": os.getpid() if pid is None else pid, "created_ns": created_ns}
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, json.dumps(record).encode())
        yield name
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
