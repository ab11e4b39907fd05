"""Whether a window can be shown, decided without importing Qt.

Qt aborts the whole process (exit 134, with a misleading hint about libxcb-cursor0) when
DISPLAY is set but nothing answers there: a stale DISPLAY after ssh, or inside tmux. So
the display is checked here first, by connecting to it the way a client would, and only
locally: a display on another host is not probed (no traffic leaves this machine); Qt is
left to try it.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping

_X_DISPLAY = re.compile(r"(?P<host>.*):(?P<number>\d+)(?:\.\d+)?")
_LOCAL_HOSTS = {"", "unix", "localhost", "127.0.0.1", "::1"}
_PROBE_TIMEOUT_S = 0.5


def _connects(family: int, address: object) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(_PROBE_TIMEOUT_S)
        try:
            sock.connect(address)  # type: ignore[arg-type]
        except OSError:
            return False
    return True


def x_server_problem(display: str) -> str | None:
    """None if the X server named by ``display`` answers (or is not local), else why not."""
    match = _X_DISPLAY.fullmatch(display)
    if match is None:
        return f"DISPLAY {display!r} is not of the form [host]:N"
    host, n = match["host"], int(match["number"])
    if host not in _LOCAL_HOSTS:
        return None  # another machine: not probed, Qt tries it
    path = f"/tmp/.X11-unix/X{n}"
    if host in ("", "unix"):
        reachable = _connects(socket.AF_UNIX, path) or _connects(socket.AF_UNIX, "\0" + path)
    elif host == "::1":
        reachable = _connects(socket.AF_INET6, ("::1", 6000 + n))
    else:  # ssh -X forwards to localhost:6010 and up
        reachable = _connects(socket.AF_INET, ("127.0.0.1", 6000 + n))
    return None if reachable else f"cannot connect to X server {display}"


def wayland_problem(display: str, runtime_dir: str | None) -> str | None:
    """None if the Wayland compositor's socket answers, else why not."""
    if not display.startswith("/"):
        if not runtime_dir:
            return f"WAYLAND_DISPLAY is {display!r} but XDG_RUNTIME_DIR is not set"
        display = os.path.join(runtime_dir, display)
    return None if _connects(socket.AF_UNIX, display) else f"cannot connect to Wayland display {display}"


def display_problem(env: Mapping[str, str] | None = None) -> str | None:
    """None if Qt has somewhere to put a window, else a short reason for the user.

    QT_QPA_PLATFORM other than xcb or wayland (offscreen, vnc, ...) counts as a display.
    Otherwise a reachable Wayland or X display is enough (only the one QT_QPA_PLATFORM
    names, if it names one).
    """
    env = os.environ if env is None else env
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0]
    if platform and platform != "xcb" and not platform.startswith("wayland"):
        return None
    checks = {
        "WAYLAND_DISPLAY": lambda v: wayland_problem(v, env.get("XDG_RUNTIME_DIR")),
        "DISPLAY": x_server_problem,
    }
    if platform:
        checks.pop("DISPLAY" if platform.startswith("wayland") else "WAYLAND_DISPLAY")
    problems = []
    for variable, check in checks.items():
        if env.get(variable):
            if (problem := check(env[variable])) is None:
                return None
            problems.append(problem)
    if problems:
        return "; ".join(problems)
    if platform:
        (variable,) = checks
        return f"QT_QPA_PLATFORM is {platform} but {variable} is not set"
    return "DISPLAY, WAYLAND_DISPLAY and QT_QPA_PLATFORM are not set"
