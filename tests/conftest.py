"""Test setup: offscreen Qt, a private config folder, a private stream registry per test,
and a check after every test that it left no block, record or child process behind
(viewer.testing.no_litter: only what the test made is judged, never other programs')."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from viewer.testing import LitterCheck, mappings_since, shm_mappings

os.environ["QT_QPA_PLATFORM"] = "offscreen"

_open_mappings: list[str] = []  # reported at the end of the run, not failed (see no_litter)


@pytest.fixture(scope="session", autouse=True)
def private_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The window remembers its geometry through QSettings: keep that out of the user's config.
    A session-wide registry too, for anything that runs outside a test."""
    config = tmp_path_factory.mktemp("config")
    registry = tmp_path_factory.mktemp("registry-session")
    registry.chmod(0o700)
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CONFIG_HOME", str(config))
    patch.setenv("SHMVIEW_REGISTRY", str(registry))
    yield
    patch.undo()
    shutil.rmtree(config, ignore_errors=True)
    shutil.rmtree(registry, ignore_errors=True)


@pytest.fixture(autouse=True)
def private_registry(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test has a registry folder of its own (children inherit it), so tests never see
    each other's streams; it must be empty when the test ends."""
    folder = tmp_path_factory.mktemp("registry")
    folder.chmod(0o700)
    monkeypatch.setenv("SHMVIEW_REGISTRY", str(folder))
    yield folder  # no_litter checks that it ends empty
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_litter(private_registry: Path, request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test must clean up: its blocks unlinked, records removed (its registry folder
    empty), child processes gone.

    /dev/shm mappings the test left open (an unclosed FrameReader) are reported at the end
    of the run rather than failed, until the tests that leave them are fixed."""
    check = LitterCheck(registry=private_registry, mappings=False)
    maps = shm_mappings()
    yield
    left = check.wait(timeout=5.0)
    if opened := mappings_since(maps):
        _open_mappings.append(f"{request.node.nodeid}: {', '.join(opened)}")
    # Everything in this test's own registry folder is the test's, whoever its pid names.
    strays = sorted(p.name for p in private_registry.iterdir() if str(p) not in " ".join(left.records))
    if left or strays:
        also = f" | files in its registry folder: {strays}" if strays else ""
        pytest.fail(f"{request.node.nodeid} {left}{also}", pytrace=False)


@pytest.fixture
def planted():
    """Paths a test plants in /dev/shm; removed afterwards whoever owns them."""
    paths: list[Path] = []
    yield paths
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            if p.is_dir() and not p.is_symlink():
                p.rmdir()
            else:
                p.unlink()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _open_mappings:
        terminalreporter.section("shared-memory mappings left open by tests")
        for line in _open_mappings:
            terminalreporter.line(line)
