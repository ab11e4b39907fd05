"""Zenoh sessions the way shmview opens them: nothing reaches a network nobody named.

Zenoh's own defaults would have a peer listen on every interface (``tcp/[::]:0``) and
scout by UDP multicast; shmview turns both off, so a session talks only to the
endpoints the user gave (``--listen``, ``--connect`` or a config file). Its shared-memory
transport is off as well: across machines it does nothing, on one machine shmview itself
is the shared memory, and it leaves ``*.zenoh`` files in /dev/shm even after a clean close.
Then every endpoint must admit only peers that prove they may read and publish (a private
unix socket, or mutual TLS: secure.py), unless the caller says ``insecure``.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viewer.errors import NetError
from viewer.net import secure, tls

KEY_ROOT = "shmview"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_ENDPOINT = re.compile(r"([a-z0-9-]+)/(\S+)")
_WITH_PORT = ("tcp", "udp", "tls", "quic", "ws")  # PROTOCOL/HOST:PORT
PROTOCOLS = (*_WITH_PORT, "unixsock-stream", "unixpipe", "vsock", "serial")
_RUST_SOURCE = re.compile(r"\s+at\s+\S+\.rs:\d+\.?")  # where in Zenoh's source an error was made
HOST_ID_MAX = 32


@dataclass(frozen=True)
class NetOptions:
    """Where a session connects: explicit endpoints, an optional Zenoh config file, and
    whether multicast scouting may run (only when the user asks)."""

    listen: Sequence[str] = ()
    connect: Sequence[str] = ()
    config_file: Path | None = None
    scout: bool = False
    mode: str = "peer"
    extra: dict[str, Any] = field(default_factory=dict)  # more json5 keys, e.g. for tests
    tls_dir: Path | None = None  # a folder made by `shmview tls`: mutual TLS
    insecure: bool = False  # let endpoints through that others can reach unchecked (viewer/net/secure.py)

    def names_a_network(self) -> bool:
        """Whether the user said where to talk: an endpoint, a config file or scouting."""
        return bool(self.listen or self.connect or self.config_file or self.scout)


def clean_host_id(text: str) -> str:
    """``text`` as a word usable in a stream name and a key: letters, digits, ``_`` and
    ``-``, starting with a letter or digit (``robot-1.local`` -> ``robot-1``)."""
    word = _UNSAFE.sub("-", text.split(".", 1)[0]).strip("-_")[:HOST_ID_MAX].strip("-_")
    if not word:
        raise NetError(f"host id {text!r} has no letter or digit to keep")
    return word


def default_host_id() -> str:
    try:
        return clean_host_id(socket.gethostname())
    except NetError:
        return "host"


def stream_key(host_id: str, name: str) -> str:
    return f"{KEY_ROOT}/{host_id}/{name}"


def split_key(key: str) -> tuple[str, str] | None:
    """(host id, stream name) of a shmview key, or None for any other key."""
    parts = str(key).split("/")
    if len(parts) != 3 or parts[0] != KEY_ROOT:
        return None
    return parts[1], parts[2]


def check_endpoint(text: str) -> str:
    """A Zenoh endpoint such as ``tls/192.168.1.10:7447``, or ``local``; ValueError otherwise
    (what Zenoh itself would refuse only once the session opens: a usage error, said now)."""
    if text == secure.LOCAL:
        return text
    match = _ENDPOINT.fullmatch(text)
    if not match:
        raise ValueError(
            f"{text!r} is not an endpoint: use local, unixsock-stream/PATH, tls/HOST:PORT (or tcp/HOST:PORT "
            "with --insecure); options after ? or # are refused"
        )
    protocol, address = match.groups()
    if protocol not in PROTOCOLS:
        raise ValueError(f"{text!r}: unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if protocol in _WITH_PORT:
        _check_port(text, re.split(r"[?#]", address, maxsplit=1)[0])
    return text


def _check_port(text: str, address: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: give HOST:PORT with a port from 0 to 65535, e.g. tls/192.168.1.10:7447")


def zenoh_message(exc: BaseException) -> str:
    """A Zenoh error in words, without the Rust source path it carries."""
    return _RUST_SOURCE.sub("", str(exc)).strip() or type(exc).__name__


def zenoh_module() -> Any:
    try:
        import zenoh
    except ImportError:
        raise NetError("the network commands need Eclipse Zenoh: pip install 'shmview[net]'") from None
    return zenoh


def zenoh_config(opts: NetOptions) -> Any:
    """A zenoh.Config: the user's file (if any), then the endpoints given, then shmview's
    safety defaults for whatever the file left unset."""
    zenoh = zenoh_module()

    try:
        conf = zenoh.Config.from_file(str(opts.config_file)) if opts.config_file else zenoh.Config()
    except (zenoh.ZError, OSError, ValueError) as exc:
        raise NetError(f"cannot read Zenoh config {opts.config_file}: {zenoh_message(exc)}") from None
    untouched = zenoh.Config()
    _set_if_unset(conf, untouched, "mode", opts.mode)
    _endpoints(conf, untouched, "listen/endpoints", [secure.expand(e) for e in opts.listen])
    _endpoints(conf, untouched, "connect/endpoints", [secure.expand(e) for e in opts.connect])
    if opts.scout:
        _put(conf, "scouting/multicast/enabled", True)
    else:
        _set_if_unset(conf, untouched, "scouting/multicast/enabled", False)
    _put(conf, "transport/shared_memory/enabled", False)
    if opts.tls_dir is not None:
        for key, value in tls.zenoh_settings(opts.tls_dir).items():
            _put(conf, f"transport/link/tls/{key}", value)
    for key, value in opts.extra.items():
        _put(conf, key, value)
    if not opts.insecure:
        _only_proven_peers(conf)
    return conf


def _only_proven_peers(conf: Any) -> None:
    """Every endpoint must admit only peers that prove they may read and publish, and
    Zenoh may open no other kind of link (viewer/net/secure.py)."""
    listen, connect, protocols = secure.vet(
        get(conf, "listen/endpoints"),
        get(conf, "connect/endpoints"),
        get(conf, "transport/link/tls"),
        get(conf, "scouting/multicast/enabled") is True,
    )
    _put(conf, "listen/endpoints", listen)
    _put(conf, "connect/endpoints", connect)
    _put(conf, "transport/link/protocols", protocols)


def _put(conf: Any, key: str, value: Any) -> None:
    import zenoh

    try:
        conf.insert_json5(key, json.dumps(value))
    except zenoh.ZError as exc:
        raise NetError(f"Zenoh config {key} = {value!r}: {zenoh_message(exc)}") from None


def get(conf: Any, key: str) -> Any:
    """A setting of a zenoh.Config as a Python value (Zenoh hands out JSON text)."""
    return json.loads(conf.get_json(key))


def _set_if_unset(conf: Any, untouched: Any, key: str, value: Any) -> None:
    if get(conf, key) == get(untouched, key):
        _put(conf, key, value)


def _endpoints(conf: Any, untouched: Any, key: str, given: Sequence[str]) -> None:
    """The file's endpoints plus the ones given; never Zenoh's default of listening on
    every interface."""
    current = get(conf, key)
    from_file = [] if current == get(untouched, key) or not isinstance(current, list) else current
    _put(conf, key, [*from_file, *given])


def open_session(opts: NetOptions) -> Any:
    zenoh = zenoh_module()
    conf = zenoh_config(opts)
    try:
        return zenoh.open(conf)
    except zenoh.ZError as exc:
        if "Unable to acquire lock" in str(exc):  # Zenoh's lock beside a socket another process listens on
            raise NetError(
                "another process already listens on that socket (connect to it instead, or give "
                "this one a socket path of its own)"
            ) from None
        raise NetError(f"cannot open a Zenoh session: {zenoh_message(exc)}") from None
