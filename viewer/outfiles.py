"""Creating output files safely: never through a symlink, never over anything already
there, and only in a folder nobody else can change (issue 18).

A folder is opened once and checked on its descriptor (``fstat``): it must belong to you
(or to root, like /tmp) and be writable by nobody else, unless it is sticky, where others
cannot remove or rename what you create. Every file is then created relative to that
descriptor with O_CREAT | O_EXCL | O_NOFOLLOW: the folder checked is the folder written
into, and a name that exists in any form (a file, a folder, a FIFO, a symlink, dangling or
not) fails with EEXIST instead of being opened. A library that insists on a path (OpenCV's
video writer) gets a name created that way, through ``/proc/self/fd/DIR/NAME``: the same
folder, whatever happens meanwhile to the path that led to it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from pathlib import Path
from types import TracebackType

from viewer.errors import OutputError

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TRUSTED_OWNERS = (0,)  # root owns /tmp and could change anything anyway


class OutputFolder:
    """A folder checked safe to create files in, held open until ``close()``.
    ``create``: make it (and its parents) first if missing."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        self._fd = _make_folder(path) if create and not os.path.isdir(path) else _open_checked(path)

    def create(self, name: str, mode: int = 0o644) -> int:
        """A descriptor of a new, empty file ``name``, opened for writing; refused if the
        name exists in any form."""
        try:
            return os.open(name, _NEW, mode, dir_fd=self._fd)
        except FileExistsError:
            raise OutputError(
                f"{self.path / name} already exists: shmview never replaces anything; choose another name or remove it",
                path=str(self.path / name),
            ) from None
        except OSError as exc:
            raise OutputError(f"cannot create {self.path / name}: {exc.strerror}", path=str(self.path / name)) from exc

    def open_new(self, name: str) -> io.FileIO:
        """A new file ``name`` as an unbuffered binary file object (for writers that take one)."""
        return io.FileIO(self.create(name), "wb", closefd=True)

    def write_new(self, name: str, data: bytes) -> Path:
        """A new file ``name`` holding ``data``; a failed write removes it again."""
        fd = self.create(name)
        try:
            with io.FileIO(fd, "wb", closefd=False) as f:
                f.write(data)  # FileIO.write of a regular file writes it all or raises
        except OSError as exc:
            self.discard(name, os.fstat(fd))
            raise OutputError(f"cannot write {self.path / name}: {exc.strerror}", path=str(self.path / name)) from exc
        finally:
            os.close(fd)
        return self.path / name

    def reserve(self, name: str) -> os.stat_result:
        """Create ``name`` empty, for a library that opens it itself by ``proc_path``; what
        it was, for ``discard``."""
        fd = self.create(name)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def proc_path(self, name: str) -> str:
        """A path to ``name`` in this very folder, for libraries that open paths themselves."""
        return f"/proc/self/fd/{self._fd}/{name}"

    def discard(self, name: str, made: os.stat_result) -> None:
        """Remove ``name`` if it is still the file this process made (``made``): an output
        refused or never used leaves nothing behind."""
        with contextlib.suppress(OSError):
            now = os.stat(name, dir_fd=self._fd, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (made.st_dev, made.st_ino):
                os.unlink(name, dir_fd=self._fd)

    def names(self) -> list[str]:
        return os.listdir(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def check_folder(fd: int, path: Path) -> None:
    """Refuse a folder that another user could change under us: theirs, or one they may
    write into that is not sticky."""
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() and st.st_uid not in _TRUSTED_OWNERS:
        raise OutputError(
            f"folder {path} belongs to another user (uid {st.st_uid}): shmview writes only into your own folders",
            path=str(path),
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        raise OutputError(
            f"folder {path} is writable by other users (mode {stat.S_IMODE(st.st_mode):04o}, "
            "not sticky): use a folder of your own, or chmod go-w it",
            path=str(path),
        )


def _open_checked(path: Path, at: int | None = None) -> int:
    """``path`` opened as a folder and checked; relative to folder ``at`` if given, and then
    a symlink is refused (a folder being made is followed one real folder at a time)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (os.O_NOFOLLOW if at is not None else 0)
    try:
        fd = os.open(path if at is None else path.name, flags, dir_fd=at)
    except FileNotFoundError:
        raise OutputError(f"folder {path} does not exist", path=str(path)) from None
    except OSError as exc:
        why = "is a symlink" if exc.errno == errno.ELOOP else exc.strerror
        raise OutputError(f"cannot use folder {path}: {why}", path=str(path)) from exc
    try:
        check_folder(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _make_folder(path: Path) -> int:
    """Make the folders missing in ``path``, each inside one that passed the check (else
    others could move it and put theirs in its place), and open the last."""
    missing: list[Path] = []
    base = path
    while not os.path.isdir(base) and base != base.parent:
        missing.append(base)
        base = base.parent
    fd = _open_checked(base)
    for folder in reversed(missing):
        try:
            with contextlib.suppress(FileExistsError):  # made meanwhile, or ".": opened and checked below
                os.mkdir(folder.name, 0o755, dir_fd=fd)
            inner = _open_checked(folder, at=fd)
        except OSError as exc:
            raise OutputError(f"cannot create folder {folder}: {exc.strerror}", path=str(folder)) from exc
        finally:
            os.close(fd)
        fd = inner
    return fd
