"""Test setup: offscreen Qt, a private stream registry, and a check after every test
that it left no block in /dev/shm and no child process behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.helpers import wait_for

os.environ["QT_QPA_PLATFORM"] = "offscreen"
# Streams made by the tests live in a registry of their own (children inherit it),
# so the tests neither see nor disturb the user's real streams.
os.environ["SHMVIEW_REGISTRY"] = tempfile.mkdtemp(prefix="shmview-test-registry-")
# The window remembers its geometry through QSettings: keep that out of the user's config.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="shmview-test-config-")

SHM = Path("/dev/shm")


def _blocks() -> set[str]:
    return {p.name for p in SHM.iterdir() if p.name.startswith("psm_")}


def _children() -> list[str]:
    """Live descendants, but not multiprocessing's resource tracker: one per process, by design."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:  # gone or a zombie by now
            continue
        if "resource_tracker" not in cmd:
            found.append(f"{child.pid}: {cmd}")
    return found


@pytest.fixture(autouse=True)
def no_litter():
    """Every test must clean up: blocks unlinked, child processes gone."""
    before = _blocks()
    yield
    try:
        wait_for(lambda: not (_blocks() - before) and not _children(), timeout=5, what="cleanup")
    except AssertionError:
        pytest.fail(f"test left blocks {sorted(_blocks() - before)} and processes {_children()}")


@pytest.fixture(scope="session", autouse=True)
def registry_is_clean_at_end():
    yield
    left = list(Path(os.environ["SHMVIEW_REGISTRY"]).iterdir())
    assert not left, f"registry records left behind: {left}"
