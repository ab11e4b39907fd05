"""Whether a window can be shown, decided without importing Qt.

Qt aborts the whole process (exit 134, with a misleading hint about libxcb-cursor0) when
DISPLAY is set but nothing answers there: a stale DISPLAY after ssh, or inside tmux. So
the display is checked here first, by connecting to it the way a client would, and only
locally: a display on another host is not probed (no traffic leaves this machine); Qt is
left to try it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import struct
from collections.abc import Mapping
from pathlib import Path

_X_DISPLAY = re.compile(r"(?P<host>.*):(?P<number>\d+)(?:\.\d+)?")
_LOCAL_HOSTS = {"", "unix", "localhost", "127.0.0.1", "::1"}
_PROBE_TIMEOUT_S = 0.5
_ANSWER_TIMEOUT_S = 2.0
# An X11 connection setup request: little-endian, protocol 11.0, no authorisation. Every X
# server answers it (success, failure or "authenticate"); one that does not is hung.
_X_SETUP = struct.pack("<BxHHHHxx", ord("l"), 11, 0, 0, 0)


def _connects(family: int, address: object, hello: bytes | None = None) -> bool:
    """Whether a server accepts a connection there (and, given ``hello``, answers it)."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(_PROBE_TIMEOUT_S)
        try:
            sock.connect(address)  # type: ignore[arg-type]
            if hello is not None:
                sock.settimeout(_ANSWER_TIMEOUT_S)
                sock.sendall(hello)
                # Any reply counts, a closed connection included (Xvfb sometimes closes a
                # setup request at once): only silence is the hung server Qt cannot survive.
                sock.recv(1)
        except (ConnectionResetError, BrokenPipeError):
            return hello is not None
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
    where: list[tuple[int, object]]  # (address family, address) pairs to try
    if host in ("", "unix"):
        where = [(socket.AF_UNIX, path), (socket.AF_UNIX, "\0" + path)]
    elif host == "::1":
        where = [(socket.AF_INET6, ("::1", 6000 + n))]
    else:  # ssh -X forwards to localhost:6010 and up
        where = [(socket.AF_INET, ("127.0.0.1", 6000 + n))]
    listening = [w for w in where if _connects(*w)]
    if not listening:
        return f"cannot connect to X server {display}"
    # Qt would wait forever, deaf to signals, on a server that accepts but never answers.
    answers = any(_connects(*w, hello=_X_SETUP) for w in listening)
    return None if answers else f"X server {display} does not answer"


def platform_problem(platform: str, env: Mapping[str, str]) -> str | None:
    """None unless Qt surely has no platform plugin of that name (Qt would abort)."""
    if env.get("QT_PLUGIN_PATH") or env.get("QT_QPA_PLATFORM_PLUGIN_PATH"):
        return None  # plugins from elsewhere: let Qt look
    spec = importlib.util.find_spec("PyQt6")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "Qt6" / "plugins" / "platforms"
    if not folder.is_dir() or any(folder.glob(f"libq{platform}.so*")):
        return None
    known = sorted(p.name[4:].split(".")[0] for p in folder.glob("libq*.so*"))
    return f"QT_QPA_PLATFORM is {platform!r}, which Qt has no plugin for (it has {', '.join(known)})"


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
        return platform_problem(platform, env)
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
