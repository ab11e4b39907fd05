"""Helpers for tests of programs that use shmview (no pytest needed; the pytest fixtures
in viewer/testing/plugin.py build on the same).

A producer under test, as a real process, for unittest users and scripts (the pytest
fixtures in viewer/testing/plugin.py build on the same):

    from viewer.testing import running_producer

    with running_producer("synthetic", "--pattern", "solid") as producer:   # ready here
        with FrameReader(producer.name) as reader:
            frame = reader.wait(timeout=5)

On leaving, the producer is stopped (SIGTERM) and AssertionError names what went wrong:
an exit code the test did not expect (with the producer's stderr), or a block, registry
record or process it left behind. Linux only (/proc). No pytest, Qt or OpenCV is
imported here.

The leftover check, ``no_litter``, is viewer/testing/litter.py's; it is exported here too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from viewer.durations import duration
from viewer.errors import ProducerError
from viewer.testing.litter import (
    SHM_DIR,
    Leftovers,
    LitterCheck,
    block_producer,
    cmdline,
    mappings_since,
    no_litter,
    process_alive,
    record_pid,
    records,
    registry_folder,
    shm_mappings,
)

__all__ = [
    "Leftovers",
    "LitterCheck",
    "Producer",
    "ProducerError",
    "mappings_since",
    "no_litter",
    "registry_folder",
    "running_producer",
    "shm_mappings",
    "start_producer",
    "unique_name",
]


_READY = re.compile(r"^stream (?P<name>\S+) ready: block (?P<block>[^\s,]+)", re.MULTILINE)
_TAG = "SHMVIEW_TEST_PRODUCER"  # in the environment of a producer and all it starts
_SOURCE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_TAIL = 4000  # characters of a producer's stderr quoted in a failure

# Runs a user's source: ``serve(factory(*args), name)``, with the test's import path.
_SERVE = """\
import importlib, json, sys
target, name, path, *args = sys.argv[1:]
sys.path.extend(p for p in json.loads(path) if p not in sys.path)
from producers import serve
module, _, attr = target.partition(":")
serve(getattr(importlib.import_module(module), attr)(*args), name)
"""


def unique_name(prefix: str = "t") -> str:
    """A stream name no other test uses: ``t-`` and 10 hex digits."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Producer:
    """A producer process started by running_producer() or start_producer().

    ``name`` (its stream), ``block`` (from its ready line), ``pid``, ``returncode``
    (None while it runs; -N when signal N ended it), ``output`` and ``stderr`` (what it
    printed so far). Its output goes to unlinked temporary files, never pipes: a
    producer that prints a lot cannot block on a full pipe, and whatever it leaves
    running cannot hold a pipe open.
    """

    def __init__(self, command: list[str], name: str, env: Mapping[str, str] | None = None) -> None:
        self.name, self.command = name, command
        self.block: str | None = None
        self._tag = uuid.uuid4().hex
        self._env = {**os.environ, **(env or {}), _TAG: self._tag}
        self._files = [tempfile.TemporaryFile() for _ in "oe"]  # noqa: SIM115 - closed by finish()
        self._texts: list[str] | None = None  # output and stderr, once the files are closed
        self._expected, self._finished = {0}, False
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=self._files[0], stderr=self._files[1], env=self._env
            )
        except BaseException:
            self._close_files()
            raise

    def __repr__(self) -> str:
        return f"<Producer {self.name} pid {self.pid} returncode {self.returncode}>"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    @property
    def output(self) -> str:
        """What the producer printed on stdout so far, its ready line included."""
        return self._text(0)

    @property
    def stderr(self) -> str:
        return self._text(1)

    def _text(self, which: int) -> str:
        if self._texts is not None:
            return self._texts[which]
        fd = self._files[which].fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")  # pread: the child's offset stays

    def expect_exit(self, *codes: int) -> None:
        """Exit codes besides 0 that the test expects from this producer."""
        self._expected.update(codes)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send ``sig`` (unless the producer already ended), wait for it to end and return
        its exit code. Ending by that very signal (``-sig``) is then expected."""
        if self.process.poll() is None:  # a producer that died by itself earlier is not excused
            self._expected.add(-sig)
        return self._stop(sig, timeout)

    def wait(self, timeout: float = 10.0) -> int:
        """Wait up to ``timeout`` s for a producer that ends by itself (``--frames N``)."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ProducerError(f"{self.describe()} still runs after {duration(timeout)}") from None

    def describe(self) -> str:
        return f"producer {self.name} (pid {self.pid})"

    def _stop(self, sig: int, timeout: float) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise ProducerError(
                f"{self.describe()} did not end within {duration(timeout)} of {signal.Signals(sig).name}: "
                f"killed it{self._quote_stderr()}"
            ) from None

    def _quote_stderr(self) -> str:
        err = self.stderr.strip()
        return f"; its stderr:\n{err[-_TAIL:]}" if err else "; its stderr was empty"

    def await_ready(self, timeout: float) -> None:
        """Wait for the ready line; ProducerError (with stderr) if it ends or times out first."""
        __tracebackhide__ = True  # pytest: the failure is the producer's, not this loop's
        deadline, pause = time.monotonic() + timeout, 0.001
        while True:
            ended = self.process.poll() is not None
            ready = next((m for m in _READY.finditer(self.output) if m["name"] == self.name), None)
            if ready:
                self.block = ready["block"]
                return
            if ended:
                raise ProducerError(
                    f"{self.describe()} {_ending(self.returncode)} before it was ready{self._quote_stderr()}",
                    name=self.name,
                )
            if time.monotonic() > deadline:
                self._stop(signal.SIGKILL, timeout)
                raise ProducerError(
                    f"{self.describe()} printed no ready line in {duration(timeout)}{self._quote_stderr()}",
                    name=self.name,
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def finish(self, timeout: float = 5.0) -> list[str]:
        """Stop the producer if it runs, wait up to ``timeout`` s for what it made to go,
        close its output files; return the problems found (empty: all is well). Once."""
        if self._finished:
            return []
        self._finished = True
        problems = self._exit_problems()
        if left := self._wait_gone(timeout):
            problems.append(f"{self.describe()} left behind: {'; '.join(left)}")
        self._close_files()
        return problems

    def _exit_problems(self) -> list[str]:
        try:
            code = self._stop(signal.SIGTERM, 10.0)
        except ProducerError as exc:
            return [str(exc)]
        if code in self._expected:
            return []
        expected = " or ".join(map(str, sorted(self._expected, key=abs)))
        return [f"{self.describe()} {_ending(code)}, expected {expected}{self._quote_stderr()}"]

    def _close_files(self) -> None:
        self._texts = [self._text(0), self._text(1)]
        for f in self._files:
            f.close()

    def _wait_gone(self, timeout: float) -> list[str]:
        deadline, pause = time.monotonic() + timeout, 0.005
        while (left := self._leftovers()) and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        return left

    def _leftovers(self) -> list[str]:
        """This producer's blocks, records and processes (by its tag: they may have been
        re-parented) that are still there."""
        found = [f"process {pid}: {cmdline(pid) or '?'}" for pid in _tagged(self._tag)]
        blocks = sorted(n for n in os.listdir(SHM_DIR) if block_producer(SHM_DIR / n) == self.pid)
        found += [f"block /dev/shm/{n}" for n in blocks]
        folder = registry_folder(self._env)
        found += [f"record {folder / n}" for n in sorted(records(folder)) if record_pid(folder / n) == self.pid]
        return found


def _ending(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name} (exit code {code})"
    return f"exited with code {code}"


def _tagged(tag: str) -> list[int]:
    """Live processes whose environment carries ``tag`` (only ours are readable)."""
    marker = f"\0{_TAG}={tag}\0".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = b"\0" + Path(f"/proc/{entry.name}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ + b"\0" and process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _command(args: tuple[str, ...], name: str, source: str | None) -> list[str]:
    if source is not None:
        if not _SOURCE.fullmatch(source):
            raise ValueError(f"source must look like 'package.module:factory', got {source!r}")
        return [sys.executable, "-c", _SERVE, source, name, json.dumps(sys.path), *args]
    named = any(a == "--name" or a.startswith("--name=") for a in args)
    return [sys.executable, "-m", "viewer", "produce", *args, *([] if named else ["--name", name])]


def _name_in(args: tuple[str, ...]) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith("--name="):
            return arg.split("=", 1)[1]
        if arg == "--name" and i + 1 < len(args):
            return args[i + 1]
    return None


def start_producer(
    *args: str,
    name: str | None = None,
    timeout: float = 10.0,
    source: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Producer:
    """Start ``shmview produce ARGS...`` (or, with ``source="pkg.mod:factory"``,
    ``serve(factory(*ARGS), name)``) and return once it printed its ready line.

    ``name`` defaults to the ``--name`` in ARGS, else a unique one. ``env`` adds to this
    process's environment. ProducerError, quoting its stderr, if it exits first or is not
    ready within ``timeout`` s. Call ``finish()`` when done (running_producer() does).
    """
    __tracebackhide__ = True
    given = _name_in(args) if source is None else None
    if name is not None and given is not None and name != given:
        raise ValueError(f"name={name!r} but the arguments say --name {given}")
    name = name or given or unique_name()
    producer = Producer(_command(args, name, source), name, env)
    try:
        producer.await_ready(timeout)
    except BaseException:
        producer.finish(timeout=1.0)
        raise
    return producer


@contextmanager
def running_producer(
    *args: str,
    name: str | None = None,
    timeout: float = 10.0,
    source: str | None = None,
    env: Mapping[str, str] | None = None,
    cleanup_timeout: float = 5.0,
) -> Iterator[Producer]:
    """start_producer() as a context manager: yields the ready producer, then stops it
    (SIGTERM) and raises AssertionError if it exited with a code the test did not expect
    (see Producer.stop and expect_exit) or left a block, record or process behind (waiting
    up to ``cleanup_timeout`` s for them to go). If the block raises, that error goes on,
    with the producer's problems added as a note."""
    producer = start_producer(*args, name=name, timeout=timeout, source=source, env=env)
    try:
        yield producer
    except BaseException as exc:
        problems = producer.finish(cleanup_timeout)
        if hasattr(exc, "add_note"):  # Python 3.11+
            for problem in problems:
                exc.add_note(problem)
        raise
    if problems := producer.finish(cleanup_timeout):
        raise AssertionError("\n".join(problems))
