"""Stream names: which block a name points to, who owns it, and whether it is alive.

One file per stream, ``<registry>/<name>.json``, mode 0600 in a 0700 directory. The
producer holds an exclusive ``flock`` on that file for as long as the stream lives, so
the kernel, not a pid check, says whether the owner is gone: the lock dies with the
producer, however it dies (children it forks close their copy of the descriptor). Nothing
read from these files is evaluated: they are small JSON with four checked fields, opened
without following links or blocking on FIFOs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from viewer.errors import InvalidNameError, RegistryError, ShmviewError, StreamExistsError
from viewer.stream import protocol as P
from viewer.stream.blocks import is_block_name, open_block, unlink_block

ENV_DIR = "SHMVIEW_REGISTRY"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CLAIM_PATIENCE_S = 0.5  # a lister may hold a dead stream's lock for microseconds
_RECORD_MAX_BYTES = 4096


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid stream name, else raise InvalidNameError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid stream name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            name=name,
        )
    return name


_checked: set[Path] = set()  # folders already made or checked by this process


def registry_path(env: Mapping[str, str] | None = None) -> Path:
    """The registry folder's path by the one rule (``$SHMVIEW_REGISTRY``, else
    ``$XDG_RUNTIME_DIR/shmview``, else ``/tmp/shmview-<uid>``) for ``env`` (default this
    process's environment). Not created or checked here: registry_dir() does that."""
    env = os.environ if env is None else env
    base = env.get(ENV_DIR)
    if not base:
        runtime = env.get("XDG_RUNTIME_DIR")
        base = f"{runtime}/shmview" if runtime and os.path.isdir(runtime) else None
    return Path(base or f"/tmp/shmview-{os.getuid()}")


def registry_dir(*, recheck: bool = False) -> Path:
    """The per-user registry folder, created 0700 and checked to be ours alone.

    Checked once per process (viewers look a record up every refresh); ``recheck`` makes
    sure again, for a producer about to create its record.
    """
    path = registry_path()
    if path in _checked and not recheck:
        return path
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise RegistryError(f"registry folder {path} must be a directory owned by you, mode 0700", path=str(path))
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
        """The record in ``text``, or None if it is not one (half-written, corrupt, forged)."""
        try:
            raw = json.loads(text)
            rec = cls(raw["name"], raw["block"], raw["pid"], raw["created_ns"])
        except (ValueError, KeyError, TypeError):
            return None
        fields_ok = (
            isinstance(rec.name, str)
            and _NAME.fullmatch(rec.name)
            and isinstance(rec.block, str)
            and is_block_name(rec.block)
            and type(rec.pid) is int
            and 0 < rec.pid <= P.MAX_PID
            and type(rec.created_ns) is int
            and 0 <= rec.created_ns <= P.MAX_NS
        )
        return rec if fields_ok else None


def record_path(name: str, *, recheck: bool = False) -> Path:
    """Where the record of stream ``name`` lives (whether or not it exists)."""
    return registry_dir(recheck=recheck) / f"{validate_name(name)}.json"


def bell_path(block: str) -> Path:
    """Where the bell of block ``block`` lives (viewer/stream/bell.py): next to the records,
    removed with its stream's record."""
    return registry_dir() / f"{block.lstrip('/')}.bell"


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), path.stat()
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _open_record(path: Path, flags: int) -> int:
    """Open a record without following links or blocking on a FIFO; only a regular file."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
    return fd


def _record_in(fd: int) -> StreamRecord | None:
    data = os.pread(fd, _RECORD_MAX_BYTES + 1, 0)
    if len(data) > _RECORD_MAX_BYTES:
        return None
    return StreamRecord.parse(data.decode("utf-8", "replace"))


def _try_lock(path: Path, *, create: bool) -> int | None:
    """Open ``path`` and take its exclusive lock; None if another process holds it."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    while True:
        fd = _open_record(path, flags)
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


_claims: weakref.WeakSet[Claim] = weakref.WeakSet()
# Held while a claim's descriptor changes, and across fork(): a thread forking (a bridge's
# mirror starting its SharedMemoryManager) while another closes a claim would otherwise
# give the child a claim whose descriptor is already closed, or reused by the child's own
# pipe to its parent, which _forget_claims_in_child would then close.
_fork_guard = threading.RLock()  # re-entrant: close() may run in a signal handler


class Claim:
    """Exclusive ownership of a stream name, held until release().

    The lock is this process's alone: a forked child closes its copy at once (see
    _forget_claims_in_child), so a producer's children never keep its name alive.
    """

    def __init__(self, name: str) -> None:
        self.name = validate_name(name)
        self.path = record_path(name, recheck=True)
        deadline = time.monotonic() + _CLAIM_PATIENCE_S
        while (fd := _try_lock(self.path, create=True)) is None:
            if time.monotonic() > deadline:
                owner = read_record(name)
                pid = f" by pid {owner.pid}" if owner else ""
                raise StreamExistsError(f"stream {name!r} is already being produced{pid}", name=name)
            time.sleep(0.01)
        with _fork_guard:
            self.fd: int | None = fd
            _claims.add(self)
        old = _record_in(fd)
        if old is not None:  # a dead producer's record: its block may still be there
            _reap_block(old)

    def publish(self, block: str, created_ns: int) -> StreamRecord:
        rec = StreamRecord(self.name, block, os.getpid(), created_ns)
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(asdict(rec)).encode(), 0)
        return rec

    def release(self) -> None:
        """Remove the record and drop the lock. Safe to call twice."""
        with _fork_guard:
            if self.fd is None:
                return
            if _same_file(self.fd, self.path):
                self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None

    def _forget(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # the parent's lock stays: it is on the parent's descriptor too
            self.fd = None


def _forget_claims_in_child() -> None:
    for claim in list(_claims):
        claim._forget()
    _fork_guard.release()


os.register_at_fork(
    before=_fork_guard.acquire, after_in_parent=_fork_guard.release, after_in_child=_forget_claims_in_child
)


def read_record(name: str) -> StreamRecord | None:
    """The record a name points to, or None. Says nothing about liveness."""
    try:
        fd = _open_record(record_path(name), os.O_RDONLY)
    except OSError:
        return None
    try:
        return _record_in(fd)
    finally:
        os.close(fd)


def record_stamp(name: str) -> tuple[int, int] | None:
    """Identity and mtime of a name's record (None if there is none): a cheap way to tell
    that a record changed without reading it."""
    try:
        st = record_path(name).stat()
    except (FileNotFoundError, InvalidNameError):
        return None
    return st.st_ino, st.st_mtime_ns


def is_live(name: str) -> bool:
    """Whether stream ``name`` has a running producer: its record's lock is held.

    The kernel drops the lock when the producer dies, however it dies; a pid in the
    record could meanwhile belong to another process, so pids are never asked.
    """
    try:
        fd = _open_record(record_path(name), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops our shared lock, if we got it
    return False


def _reap_block(rec: StreamRecord) -> bool:
    """Unlink the block a dead producer's record names, if it is ours and that stream's
    block: the same creation stamp, or no shmview header left at all (its owner truncated
    or wiped it, which also killed the producer). A block of ours with another stream's
    header under that name is left alone. True if a block was removed. The block's bell
    goes with the record in any case."""
    bell_path(rec.block).unlink(missing_ok=True)
    try:
        fd = open_block(rec.block)
    except ShmviewError:
        return False  # gone already, or not ours to remove
    try:
        created = P.created_ns_of(os.pread(fd, P.STATE_OFFSET, 0))
    finally:
        os.close(fd)
    if created is not None and created != rec.created_ns:
        return False
    unlink_block(rec.block)
    return True


@dataclass(frozen=True)
class Reaped:
    """What reap() removed: the dead stream's record, and whether its block went too."""

    record: StreamRecord | None  # None for an empty or corrupt record file
    block_removed: bool


def reap(path: Path, *, patience_s: float = 0.0) -> Reaped | None:
    """Remove a record whose producer is gone (its lock is free), with the block it names.

    Returns what was removed (None if the stream is live or there was no record file). This
    is how the block and name of a producer killed with its whole process group (manager
    and resource tracker included) are cleaned up by the next shmview command.
    ``patience_s``: how long to retry while someone holds the lock, for a caller that
    knows the producer is dead (a viewer probing liveness holds it for microseconds).
    """
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fd = _try_lock(path, create=False)
        except OSError:
            return None
        if fd is not None:
            break
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)
    try:
        rec = _record_in(fd)
        removed = rec is not None and _reap_block(rec)
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)
    return Reaped(rec, removed)


def live_records() -> list[StreamRecord]:
    """Records of streams whose producer still runs; dead ones are reaped on the way."""
    found = []
    for path in sorted(registry_dir().glob("*.json")):
        if reap(path) is not None or not _NAME.fullmatch(path.stem):
            continue
        rec = read_record(path.stem)
        if rec is not None and rec.name == path.stem:
            found.append(rec)
    return found
