"""Stream names: which block a name points to, who owns it, and whether it is alive.

One file per stream, ``<registry>/<name>.json``, mode 0600 in a 0700 directory. The
producer holds an exclusive ``flock`` on that file for as long as the stream lives, so
the kernel, not a pid check, says whether the owner is gone: the lock dies with the
last process holding it (the producer, and its SharedMemoryManager server, which
inherits the descriptor). Nothing read from these files is evaluated: they are JSON
with four checked fields.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from viewer.errors import InvalidNameError, StreamExistsError

ENV_DIR = "SHMVIEW_REGISTRY"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CLAIM_PATIENCE_S = 0.5  # a lister may hold a dead stream's lock for microseconds


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid stream name, else raise InvalidNameError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid stream name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            name=name,
        )
    return name


_checked: set[Path] = set()  # folders already made or checked by this process


def registry_dir(*, recheck: bool = False) -> Path:
    """The per-user registry folder, created 0700 and checked to be ours alone.

    Checked once per process (viewers look a record up every refresh); ``recheck`` makes
    sure again, for a producer about to create its record.
    """
    base = os.environ.get(ENV_DIR)
    if not base:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        base = f"{runtime}/shmview" if runtime and os.path.isdir(runtime) else None
    path = Path(base or f"/tmp/shmview-{os.getuid()}")
    if path in _checked and not recheck:
        return path
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"registry folder {path} must be a directory owned by you, mode 0700")
    _checked.add(path)
    return path


@dataclass(frozen=True)
class StreamRecord:
    name: str
    block: str
    pid: int
    created_ns: int

    @classmethod
    def parse(cls, text: str) -> StreamRecord | None:
        try:
            raw = json.loads(text)
            rec = cls(str(raw["name"]), str(raw["block"]), int(raw["pid"]), int(raw["created_ns"]))
        except (ValueError, KeyError, TypeError):
            return None
        return rec


def _record_path(name: str, *, recheck: bool = False) -> Path:
    return registry_dir(recheck=recheck) / f"{validate_name(name)}.json"


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), path.stat()
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _try_lock(path: Path, *, create: bool) -> int | None:
    """Open ``path`` and take its exclusive lock; None if another process holds it."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    while True:
        fd = os.open(path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if _same_file(fd, path):  # not unlinked by its last owner while we waited
            return fd
        os.close(fd)
        if not create:
            return None


class Claim:
    """Exclusive ownership of a stream name, held until release()."""

    def __init__(self, name: str) -> None:
        self.name = validate_name(name)
        self.path = _record_path(name, recheck=True)
        deadline = time.monotonic() + _CLAIM_PATIENCE_S
        while (fd := _try_lock(self.path, create=True)) is None:
            if time.monotonic() > deadline:
                owner = read_record(name)
                pid = f" by pid {owner.pid}" if owner else ""
                raise StreamExistsError(
                    f"stream {name!r} is already being produced{pid}", name=name
                )
            time.sleep(0.01)
        self.fd: int | None = fd

    def publish(self, block: str, created_ns: int) -> StreamRecord:
        rec = StreamRecord(self.name, block, os.getpid(), created_ns)
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(asdict(rec)).encode(), 0)
        return rec

    def release(self) -> None:
        """Remove the record and drop the lock. Safe to call twice."""
        if self.fd is None:
            return
        if _same_file(self.fd, self.path):
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def read_record(name: str) -> StreamRecord | None:
    """The record a name points to, or None. Says nothing about liveness."""
    try:
        text = _record_path(name).read_text()
    except (FileNotFoundError, IsADirectoryError):
        return None
    return StreamRecord.parse(text)


def record_stamp(name: str) -> tuple[int, int] | None:
    """Identity and mtime of a name's record (None if there is none): a cheap way to tell
    that a record changed without reading it."""
    try:
        st = _record_path(name).stat()
    except (FileNotFoundError, InvalidNameError):
        return None
    return st.st_ino, st.st_mtime_ns


def remove_if_dead(path: Path) -> bool:
    """Delete a record whose owner is gone (its lock is free). True if it was dead."""
    try:
        fd = _try_lock(path, create=False)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            return True
        raise
    if fd is None:
        return False
    try:
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)
    return True


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (Linux: checked in /proc)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except ProcessLookupError:  # it exited between open() and read()
        return False
    except FileNotFoundError:
        return not os.path.isdir("/proc/self")  # no procfs: trust kill()
    return data.rsplit(b")", 1)[-1].split()[:1] != [b"Z"]


def live_records() -> list[StreamRecord]:
    """Records of streams whose producer still runs; stale records are removed."""
    found = []
    for path in sorted(registry_dir().glob("*.json")):
        try:
            rec = StreamRecord.parse(path.read_text())
        except FileNotFoundError:
            continue
        if rec is not None and pid_alive(rec.pid):
            found.append(rec)
        else:  # owner gone (or record half-written: then its lock is held and it stays)
            remove_if_dead(path)
    return found
