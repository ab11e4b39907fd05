"""Checks for tests of programs that use shmview: did this code leave anything behind?

    from viewer.testing import no_litter

    with no_litter():                  # AssertionError naming what was left, if anything
        run_my_producer_and_stop_it()

Only what was made *during* the ``with`` block is judged, and never another program's:

- a block: a new file in /dev/shm that is a shmview block (magic at offset 0, read
  without following links or blocking on FIFOs, regular and ours, since every user can
  write to /dev/shm) whose
  ``producer_pid`` (offset 56) is this process, a live descendant of it, or dead. A
  block whose producer is alive but not ours is someone else's, even if it dies later;
  blocks without a shmview header are not judged (a test's own foreign blocks are its
  business).
- a registry record: a new ``<name>.json`` in the registry folder, judged by its ``pid``
  the same way.
- a process: a live descendant that was not there before (multiprocessing's resource
  tracker excepted: one per process, by design, and it outlives the block).
- a mapping (``mappings=True``): a /dev/shm file still mapped into this process, i.e. a
  FrameReader or FrameWriter that was never closed.

Leftovers often go a moment after the code under test returns (a SIGKILLed producer's
block is unlinked by its resource tracker), so the check polls until ``timeout``.

A producer under test, as a real process, for unittest users and scripts (the pytest
fixtures in viewer/pytest_plugin.py build on the same):

    from viewer.testing import running_producer

    with running_producer("synthetic", "--pattern", "solid") as producer:   # ready here
        with FrameReader(producer.name) as reader:
            frame = reader.wait(timeout=5)

On leaving, the producer is stopped (SIGTERM) and AssertionError names what went wrong:
an exit code the test did not expect (with the producer's stderr), or a block, registry
record or process it left behind. Linux only (/proc). No pytest, Qt or OpenCV is
imported here.
"""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from viewer.errors import ShmviewError

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

SHM_DIR = Path("/dev/shm")
_MAGIC = b"SHMVIEW\0"  # viewer/protocol.py: offset 0
_PID_OFFSET = 56  # viewer/protocol.py: producer_pid, u64 little-endian
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def registry_folder(env: Mapping[str, str] | None = None) -> Path:
    """The registry folder in use (by ``env``, default this process's environment), by
    the rule the README gives (not created here)."""
    env = os.environ if env is None else env
    base = env.get("SHMVIEW_REGISTRY")
    if not base:
        runtime = env.get("XDG_RUNTIME_DIR")
        base = f"{runtime}/shmview" if runtime and os.path.isdir(runtime) else None
    return Path(base or f"/tmp/shmview-{os.getuid()}")


# --- processes, from /proc ------------------------------------------------------------


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None if gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data.rsplit(b")", 1)[-1].split()


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid) if 0 < pid < 2**22 else None
    return fields is not None and fields[0] != b"Z"


def _process_table() -> dict[int, tuple[int, int, bool]]:
    """pid -> (parent pid, start time in ticks, zombie) for every process we can see."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (f := _stat_fields(int(entry.name))) is not None:
            table[int(entry.name)] = (int(f[1]), int(f[19]), f[0] == b"Z")
    return table


def _descendants(table: dict[int, tuple[int, int, bool]]) -> dict[int, int]:
    """Live descendants of this process: pid -> start time (the pair survives pid reuse)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        if not table[pid][2]:
            found[pid] = table[pid][1]
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _is_resource_tracker(pid: int) -> bool:
    return "multiprocessing.resource_tracker" in _cmdline(pid)


# --- blocks, records and mappings -----------------------------------------------------


def _block_producer(path: Path) -> int | None:
    """The producer pid of a shmview block; None if ``path`` is not one of our user's blocks."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            return None
        head = os.pread(fd, _PID_OFFSET + 8, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(head) < _PID_OFFSET + 8 or head[:8] != _MAGIC:
        return None
    return int.from_bytes(head[_PID_OFFSET:], "little")


def _record_pid(path: Path) -> int:
    """A record's pid; 0 (never alive) if it is unreadable or half-written."""
    try:
        return int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _records(folder: Path) -> dict[str, int]:
    """Record file name -> inode (a record deleted and made again is a new one)."""
    try:
        return {e.name: e.inode() for e in os.scandir(folder) if e.name.endswith(".json")}
    except OSError:  # no registry folder yet
        return {}


def shm_mappings() -> Counter[str]:
    """Files under /dev/shm mapped into this process, with how many mappings each."""
    found: Counter[str] = Counter()
    with open("/proc/self/maps", "rb") as maps:
        for line in maps:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith(b"/dev/shm/"):
                path = parts[5].decode(errors="replace").rstrip("\n")
                found[path.removesuffix(" (deleted)")] += 1  # unlinked since is still the same mapping
    return found


def mappings_since(before: Counter[str]) -> list[str]:
    """/dev/shm mappings of this process that ``before`` (a shm_mappings()) did not have."""
    if not shm_mappings() - before:
        return []
    gc.collect()  # a reader kept only by a reference cycle is garbage, not a leak
    return [f"{path} (x{n})" for path, n in sorted((shm_mappings() - before).items())]


@dataclass(frozen=True)
class Leftovers:
    """What a LitterCheck found left over; empty (falsy) when all is clean."""

    blocks: tuple[str, ...] = ()
    records: tuple[str, ...] = ()
    processes: tuple[str, ...] = ()
    mappings: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.blocks or self.records or self.processes or self.mappings)

    def __str__(self) -> str:
        parts = [
            f"{what}: {'; '.join(items)}"
            for what, items in (
                ("blocks", self.blocks),
                ("registry records", self.records),
                ("processes", self.processes),
                ("mappings still open", self.mappings),
            )
            if items
        ]
        return "left behind: " + " | ".join(parts) if parts else "nothing left behind"


class LitterCheck:
    """A snapshot of blocks, records, child processes and mappings; ``leftovers()`` compares.

    ``registry`` defaults to the folder in use now (``SHMVIEW_REGISTRY`` or the README's
    rule). ``mappings`` also reports /dev/shm files this process still maps.
    """

    def __init__(self, *, registry: Path | None = None, mappings: bool = True) -> None:
        self.registry = registry if registry is not None else registry_folder()
        self.check_mappings = mappings
        self._files = set(os.listdir(SHM_DIR))
        self._records = _records(self.registry)
        self._children = _descendants(_process_table())
        self._maps = shm_mappings() if mappings else Counter()
        self._foreign: set[str] = set()  # blocks and records seen owned by a live stranger

    def _blames(self, key: str, pid: int, ours: dict[int, int]) -> bool:
        """Whether a new block or record with owner ``pid`` is this code's doing."""
        if key in self._foreign:
            return False
        if pid == os.getpid() or pid in ours or not _alive(pid):
            return True
        self._foreign.add(key)  # a live stranger's: stays theirs even if it dies later
        return False

    def _blocks(self, ours: dict[int, int]) -> list[str]:
        found = []
        for name in sorted(set(os.listdir(SHM_DIR)) - self._files):
            pid = _block_producer(SHM_DIR / name)
            if pid is not None and self._blames(f"block {name}", pid, ours):
                found.append(f"/dev/shm/{name} (producer pid {pid}, {_pid_state(pid)})")
        return found

    def _new_records(self, ours: dict[int, int]) -> list[str]:
        found = []
        for name, inode in sorted(_records(self.registry).items()):
            if self._records.get(name) == inode:
                continue
            pid = _record_pid(self.registry / name)
            if self._blames(f"record {name}@{inode}", pid, ours):
                found.append(f"{self.registry / name} (pid {pid}, {_pid_state(pid)})")
        return found

    def _processes(self, ours: dict[int, int]) -> list[str]:
        return [
            f"pid {pid}: {_cmdline(pid) or '?'}"
            for pid, started in sorted(ours.items())
            if self._children.get(pid) != started and not _is_resource_tracker(pid)
        ]

    def _mappings(self) -> list[str]:
        return mappings_since(self._maps) if self.check_mappings else []

    def leftovers(self) -> Leftovers:
        """One look: what was made since the snapshot and is still there."""
        ours = _descendants(_process_table())
        return Leftovers(
            tuple(self._blocks(ours)), tuple(self._new_records(ours)),
            tuple(self._processes(ours)), tuple(self._mappings()),
        )

    def wait(self, timeout: float = 5.0) -> Leftovers:
        """Poll until nothing is left or ``timeout`` s have passed; return the last look."""
        deadline = time.monotonic() + timeout
        pause = 0.005
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.1)  # quick when things go at once, cheap when they linger
        return left


def _pid_state(pid: int) -> str:
    if pid == os.getpid():
        return "this process"
    return "alive" if _alive(pid) else "gone"


@contextmanager
def no_litter(timeout: float = 5.0, *, registry: Path | None = None, mappings: bool = True) -> Iterator[LitterCheck]:
    """Fail (AssertionError naming each leftover) if the block leaves blocks, registry
    records, child processes or, with ``mappings``, open /dev/shm mappings behind.

    Waits up to ``timeout`` s for them to go. If the block itself raises, that error
    propagates unchecked: it says more than a list of leftovers would.
    """
    check = LitterCheck(registry=registry, mappings=mappings)
    yield check
    left = check.wait(timeout)
    if left:
        raise AssertionError(str(left))


# --- a producer under test ------------------------------------------------------------

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


class ProducerError(ShmviewError):
    """A producer under test did not come up (it exited before its ready line, or printed
    none in time) or did not end when asked to; the message quotes its stderr."""


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
        self.name, self.command, self.block = name, command, None
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
            raise ProducerError(f"{self.describe()} still runs after {timeout:g} s") from None

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
                f"{self.describe()} did not end within {timeout:g} s of {signal.Signals(sig).name}: "
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
                raise ProducerError(f"{self.describe()} {_ending(self.returncode)} before it was ready"
                                    f"{self._quote_stderr()}", name=self.name)
            if time.monotonic() > deadline:
                self._stop(signal.SIGKILL, timeout)
                raise ProducerError(f"{self.describe()} printed no ready line in {timeout:g} s"
                                    f"{self._quote_stderr()}", name=self.name)
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
        found = [f"process {pid}: {_cmdline(pid) or '?'}" for pid in _tagged(self._tag)]
        blocks = sorted(n for n in os.listdir(SHM_DIR) if _block_producer(SHM_DIR / n) == self.pid)
        found += [f"block /dev/shm/{n}" for n in blocks]
        folder = registry_folder(self._env)
        found += [f"record {folder / n}" for n in sorted(_records(folder)) if _record_pid(folder / n) == self.pid]
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
        if marker in environ + b"\0" and _alive(int(entry.name)):
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
    *args: str, name: str | None = None, timeout: float = 10.0, source: str | None = None,
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
    *args: str, name: str | None = None, timeout: float = 10.0, source: str | None = None,
    env: Mapping[str, str] | None = None, cleanup_timeout: float = 5.0,
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
