"""Who may reach a shmview session: the rules every endpoint must pass.

Two kinds of endpoint let only peers that proved they may read and publish:

- ``unixsock-stream/PATH`` whose folder is a 0700 folder of the user's (with no other user
  able to swap it): on this machine, only the user (and root) can connect to the socket.
  ``local`` is short for the default one, ``<registry folder>/zenoh.sock``.
- ``tls/HOST:PORT`` with mutual TLS: only holders of a certificate from the CA given
  (``--tls DIR``) can complete a link, whichever end listens.

Everything else (plain ``tcp/``, loopback included, which every local user can reach; udp;
TLS without client certificates; endpoint options after ``?`` or ``#``, which can turn
Zenoh's checks off; multicast scouting without TLS) is refused unless the caller says
``insecure``. The protocols Zenoh may use are then restricted to those of the endpoints
given, so a peer cannot talk a session into opening any other kind of link (gossip).
Pure functions on endpoint strings: nothing here imports zenoh.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from viewer.errors import InsecureNetworkError

LOCAL = "local"
UNIXSOCK, TLS = "unixsock-stream", "tls"
SOCKET_NAME = "zenoh.sock"
SUN_PATH_MAX = 107  # bytes of a socket path, without its NUL (sockaddr_un.sun_path is 108)
SAFE_CHOICES = (
    "--listen/--connect local (this machine, you only), unixsock-stream/PATH in a 0700 folder "
    "of yours, or tls/HOST:PORT with --tls DIR (mutual TLS between machines)"
)


def default_socket() -> Path:
    """The socket ``local`` names: in the user's registry folder, which is a checked 0700
    folder of theirs ($XDG_RUNTIME_DIR/shmview, /tmp/shmview-<uid> or $SHMVIEW_REGISTRY)."""
    from viewer.stream.registry import registry_dir

    return registry_dir() / SOCKET_NAME


def expand(endpoint: str) -> str:
    return f"{UNIXSOCK}/{default_socket()}" if endpoint == LOCAL else endpoint


def vet(
    listen: Sequence[str], connect: Sequence[str], tls: Mapping[str, Any], scout: bool
) -> tuple[list[str], list[str], list[str]]:
    """(listen, connect, protocols) once every endpoint passed: sockets rewritten to their
    real folder (no symlink can be re-pointed later), and the link protocols Zenoh may use.
    InsecureNetworkError for the first endpoint that would let others in."""
    listen = [_vetted(e, tls, "listen") for e in listen]
    connect = [_vetted(e, tls, "connect") for e in connect]
    protocols = {e.split("/", 1)[0] for e in (*listen, *connect)}
    if scout and TLS not in protocols:
        raise InsecureNetworkError(
            f"--scout finds peers on the LAN: it needs a tls/HOST:PORT endpoint and "
            f"--tls DIR (or --insecure); the safe choices are {SAFE_CHOICES}"
        )
    return listen, connect, sorted(protocols or {UNIXSOCK})


def _vetted(endpoint: str, tls: Mapping[str, Any], side: str) -> str:
    protocol, _, address = endpoint.partition("/")
    if "?" in endpoint or "#" in endpoint:
        raise InsecureNetworkError(
            f"{endpoint}: options after ? or # can turn Zenoh's checks off; give "
            "them in a --zenoh-config file, or add --insecure"
        )
    if protocol == UNIXSOCK:
        return f"{UNIXSOCK}/{private_socket(Path(address))}"
    if protocol == TLS:
        _require_mtls(endpoint, tls, side)
        return endpoint
    raise InsecureNetworkError(
        f"{endpoint}: anyone who can reach a plain {protocol} endpoint can read and "
        f"publish (on loopback: every local user); use {SAFE_CHOICES}, or add --insecure"
    )


def _require_mtls(endpoint: str, tls: Mapping[str, Any], side: str) -> None:
    needed = ("root_ca_certificate", f"{side}_certificate", f"{side}_private_key")
    if tls.get("enable_mtls") is not True or not all(tls.get(k) for k in needed):
        raise InsecureNetworkError(
            f"{endpoint}: TLS here must be mutual, so that peers prove who they are: "
            "add --tls DIR (see `shmview tls init --help`), or add --insecure"
        )


def private_socket(path: Path) -> Path:
    """``path`` in its real folder, once that folder is the user's own, mode 0700, in
    folders no other user can rename it out of. InsecureNetworkError otherwise."""
    folder = Path(os.path.realpath(path.parent if path.is_absolute() else Path.cwd() / path.parent))
    real = folder / path.name
    if len(os.fsencode(real)) > SUN_PATH_MAX or not path.name:
        raise InsecureNetworkError(f"{real}: a socket path must name a file and be at most {SUN_PATH_MAX} bytes")
    st = _stat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise InsecureNetworkError(
            f"{folder} is not a folder of yours that only you can enter, so other users "
            f"could reach the socket {path.name} in it: use `local`, or a folder made "
            "with mkdir -m 700"
        )
    for parent in folder.parents:
        _check_ancestor(parent, real)
    return real


def _check_ancestor(parent: Path, socket: Path) -> None:
    """An ancestor another user could write into (without the sticky bit, which /tmp has)
    would let them rename the socket's folder away and put their own in its place."""
    st = _stat(parent)
    if st.st_uid not in (0, os.getuid()) or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX):
        raise InsecureNetworkError(
            f"{parent} can be changed by another user, who could then replace the "
            f"folder of {socket}: put the socket in a folder of yours elsewhere"
        )


def _stat(path: Path) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as exc:
        raise InsecureNetworkError(f"cannot use the socket folder {path}: {exc.strerror}") from None
