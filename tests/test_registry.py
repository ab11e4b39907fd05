"""The stream registry: one live producer per name, records and blocks private to their user,
dead records reaped."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.blocks import SHM, headered_block, plant_file
from tests.support.helpers import CLI
from viewer import FrameReader, FrameWriter, StreamExistsError
from viewer.stream.registry import live_records, registry_dir


def test_a_live_name_cannot_be_taken_twice_and_is_free_after_close():
    with FrameWriter("once", (2, 2)) as first:
        with pytest.raises(StreamExistsError, match=f"pid {os.getpid()}"):
            FrameWriter("once", (2, 2))
        first.write(np.ones((2, 2), np.uint8))
        with FrameReader("once") as r:
            assert r.read().image.sum() == 4  # the failed claim did no harm
    with FrameWriter("once", (2, 2)):
        pass


def test_block_and_registry_are_private_to_the_user():
    with FrameWriter("private", (2, 2)) as w:
        assert stat.S_IMODE(os.stat(f"/dev/shm/{w.block_name}").st_mode) == 0o600
        assert stat.S_IMODE(registry_dir().stat().st_mode) == 0o700
        assert stat.S_IMODE((registry_dir() / "private.json").stat().st_mode) == 0o600


def test_a_registry_folder_others_can_write_is_refused(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o777)
    open_dir.chmod(0o777)
    env = {**os.environ, "SHMVIEW_REGISTRY": str(open_dir)}
    done = subprocess.run([*CLI, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "must be a directory owned by you, mode 0700" in done.stderr


def write_dead_record(name: str, block: str, pid: int, created_ns: int) -> Path:
    path = registry_dir() / f"{name}.json"
    path.write_text(f'{{"name": "{name}", "block": "{block}", "pid": {pid}, "created_ns": {created_ns}}}')
    path.chmod(0o600)
    return path


def test_a_dead_record_whose_pid_was_reused_is_not_live_and_is_reaped(planted):
    block, created = "psm_trust_reused", time.time_ns()
    planted.append(SHM / block)
    plant_file(SHM / block, headered_block(created_ns=created), 0o600)
    path = write_dead_record("reused", block, os.getpid(), created)  # a live pid, but no lock
    assert [r.name for r in live_records()] == []
    assert not path.exists() and not (SHM / block).exists()
