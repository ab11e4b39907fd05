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
  the same way; and a new bell, ``<block>.bell`` (a writer's "somebody waits" file), once
  the block it rings for is gone from /dev/shm.
- a process: a live descendant that was not there before (multiprocessing's resource
  tracker excepted: one per process, by design, and it outlives the block).
- a mapping (``mappings=True``): a /dev/shm file still mapped into this process, i.e. a
  FrameReader or FrameWriter that was never closed.

Leftovers often go a moment after the code under test returns (a SIGKILLed producer's
block is unlinked by its resource tracker), so the check polls until ``timeout``.
Linux only (/proc). No pytest, Qt or OpenCV is imported here.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from viewer.errors import ShmviewError
from viewer.stream.blocks import SHM_DIR as _SHM_DIR
from viewer.stream.blocks import open_block
from viewer.stream.protocol import STATE_OFFSET, producer_pid_of
from viewer.stream.registry import registry_path

SHM_DIR = Path(_SHM_DIR)


def registry_folder(env: Mapping[str, str] | None = None) -> Path:
    """The registry folder in use (by ``env``, default this process's environment), by
    the one rule (viewer.stream.registry.registry_path; not created here)."""
    return registry_path(env)


# --- processes, from /proc ------------------------------------------------------------


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None if gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data.rsplit(b")", 1)[-1].split()


def process_alive(pid: int) -> bool:
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


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _is_resource_tracker(pid: int) -> bool:
    return "multiprocessing.resource_tracker" in cmdline(pid)


# --- blocks, records and mappings -----------------------------------------------------


def block_producer(path: Path) -> int | None:
    """The producer pid of a shmview block; None if ``path`` is not one of our user's
    shmview blocks (opened as every reader opens blocks: no links, no FIFOs, ours)."""
    try:
        fd = open_block(path.name)
    except (ShmviewError, OSError):
        return None
    try:
        return producer_pid_of(os.pread(fd, STATE_OFFSET, 0))
    except OSError:
        return None
    finally:
        os.close(fd)


def record_pid(path: Path) -> int:
    """A record's pid; 0 (never alive) if it is unreadable or half-written."""
    try:
        return int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def records(folder: Path, suffix: str = ".json") -> dict[str, int]:
    """Record (or, with ``suffix=".bell"``, bell) file name -> inode (a file deleted and made
    again is a new one)."""
    try:
        return {e.name: e.inode() for e in os.scandir(folder) if e.name.endswith(suffix)}
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
        self.records = records(self.registry)
        self.bells = records(self.registry, ".bell")
        self._children = _descendants(_process_table())
        self._maps = shm_mappings() if mappings else Counter()
        self._foreign: set[str] = set()  # blocks and records seen owned by a live stranger

    def _blames(self, key: str, pid: int, ours: dict[int, int]) -> bool:
        """Whether a new block or record with owner ``pid`` is this code's doing."""
        if key in self._foreign:
            return False
        if pid == os.getpid() or pid in ours or not process_alive(pid):
            return True
        self._foreign.add(key)  # a live stranger's: stays theirs even if it dies later
        return False

    def _blocks(self, ours: dict[int, int]) -> list[str]:
        found = []
        for name in sorted(set(os.listdir(SHM_DIR)) - self._files):
            pid = block_producer(SHM_DIR / name)
            if pid is not None and self._blames(f"block {name}", pid, ours):
                found.append(f"/dev/shm/{name} (producer pid {pid}, {_pid_state(pid)})")
        return found

    def _new_records(self, ours: dict[int, int]) -> list[str]:
        found = []
        for name, inode in sorted(records(self.registry).items()):
            if self.records.get(name) == inode:
                continue
            pid = record_pid(self.registry / name)
            if self._blames(f"record {name}@{inode}", pid, ours):
                found.append(f"{self.registry / name} (pid {pid}, {_pid_state(pid)})")
        for name, inode in sorted(records(self.registry, ".bell").items()):
            if self.bells.get(name) != inode and not (SHM_DIR / name.removesuffix(".bell")).exists():
                found.append(f"{self.registry / name} (a bell whose block is gone)")
        return found

    def _processes(self, ours: dict[int, int]) -> list[str]:
        return [
            f"pid {pid}: {cmdline(pid) or '?'}"
            for pid, started in sorted(ours.items())
            if self._children.get(pid) != started and not _is_resource_tracker(pid)
        ]

    def _mappings(self) -> list[str]:
        return mappings_since(self._maps) if self.check_mappings else []

    def leftovers(self) -> Leftovers:
        """One look: what was made since the snapshot and is still there."""
        ours = _descendants(_process_table())
        return Leftovers(
            tuple(self._blocks(ours)),
            tuple(self._new_records(ours)),
            tuple(self._processes(ours)),
            tuple(self._mappings()),
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
    return "alive" if process_alive(pid) else "gone"


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
