"""Is there a display to open a window on (viewer/gui/display.py)? If not, the viewer runs as
text, with one line saying why."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.support.helpers import CLI as CLI_CMD
from viewer.gui.display import display_problem, x_server_problem


def _free_x_display() -> int:
    return next(n for n in range(99, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists())


def test_a_stale_display_falls_back_to_text_with_one_line_saying_why():
    n = _free_x_display()
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["DISPLAY"] = f":{n}"
    done = subprocess.run(
        [*CLI_CMD, "view", "nowhere", "--timeout", "0.2"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3  # as text: the stream is not there; Qt never aborted (134)
    first = done.stderr.splitlines()[0]
    assert first == f"shmview: no display: cannot connect to X server :{n}; showing the stream as text"
    assert "xcb" not in done.stderr


def test_display_probe(tmp_path):
    n = _free_x_display()
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert "not set" in display_problem({})
    assert display_problem({"DISPLAY": f":{n}"}) == f"cannot connect to X server :{n}"
    assert display_problem({"DISPLAY": "elsewhere.example:0"}) is None  # not probed: Qt tries it
    assert "cannot connect to Wayland" in display_problem({"WAYLAND_DISPLAY": "w-0", "XDG_RUNTIME_DIR": str(tmp_path)})
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "w-1"))
        server.listen()
        assert display_problem({"WAYLAND_DISPLAY": "w-1", "XDG_RUNTIME_DIR": str(tmp_path)}) is None
        assert display_problem({"WAYLAND_DISPLAY": str(tmp_path / "w-1"), "QT_QPA_PLATFORM": "xcb"}) is not None


def test_display_probe_follows_the_platform_qt_was_told_to_use():
    assert display_problem({"QT_QPA_PLATFORM": "xcb"}) == "QT_QPA_PLATFORM is xcb but DISPLAY is not set"
    stale = {"QT_QPA_PLATFORM": "xcb", "DISPLAY": f":{_free_x_display()}"}
    assert "cannot connect to X server" in display_problem(stale)


@pytest.mark.parametrize("problem", ["deaf", "bogus-platform"])
def test_a_display_that_never_answers_or_a_platform_qt_lacks_falls_back_to_text(problem):
    """An X server that accepts connections but never answers would leave Qt waiting
    forever, deaf to signals; a platform Qt has no plugin for would abort it."""
    n = _free_x_display()
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "DISPLAY")}
    env |= {"DISPLAY": f":{n}"} if problem == "deaf" else {"QT_QPA_PLATFORM": "bogus"}
    Path("/tmp/.X11-unix").mkdir(mode=0o1777, exist_ok=True)
    with socket.socket(socket.AF_UNIX) as deaf_server:
        deaf_server.bind(f"/tmp/.X11-unix/X{n}")
        deaf_server.listen()
        try:
            done = subprocess.run(
                [*CLI_CMD, "view", "nowhere", "--timeout", "0.2"], env=env, capture_output=True, text=True, timeout=60
            )
        finally:
            Path(f"/tmp/.X11-unix/X{n}").unlink()
    assert done.returncode == 3, done.stderr
    first = done.stderr.splitlines()[0]
    why = f"X server :{n} does not answer" if problem == "deaf" else "which Qt has no plugin for"
    assert first.startswith("shmview: no display: ") and why in first and first.endswith("showing the stream as text")


def test_an_x_server_that_closes_a_connection_at_once_is_not_hung():
    """Xvfb sometimes closes a setup request without a reply: that is an answer (Qt fails
    fast on it), not the silence of a hung server that would leave Qt waiting forever."""
    n = _free_x_display()
    Path("/tmp/.X11-unix").mkdir(mode=0o1777, exist_ok=True)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(f"/tmp/.X11-unix/X{n}")
        server.listen()

        def close_each() -> None:
            for _ in range(2):  # the probe connects twice: once to see, once to ask
                connection, _ = server.accept()
                connection.recv(12)
                connection.close()

        closer = threading.Thread(target=close_each)
        closer.start()
        try:
            assert x_server_problem(f":{n}") is None
        finally:
            closer.join(10)
            Path(f"/tmp/.X11-unix/X{n}").unlink()
