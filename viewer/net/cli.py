"""The ``share``, ``bridge`` and ``list --remote`` commands: their options and their
runs. ``viewer/__main__.py`` adds the parsers and dispatches here."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from viewer.cli_types import UsageError
from viewer.errors import ShmviewError
from viewer.net.codec import CODECS
from viewer.net.config import KEY_ROOT, NetOptions, check_endpoint, clean_host_id, default_host_id, open_session

NETWORK_NOTE = """Nothing is sent anywhere but to the endpoints given (--listen, --connect, or a Zenoh
config file); Zenoh's multicast scouting stays off unless --scout asks for it."""

SHARE_EXAMPLES = """examples:
  shmview share cam0 --listen tcp/0.0.0.0:7447          # on the robot
  shmview bridge --connect tcp/robot.local:7447          # on the laptop: stream robot.cam0
  shmview share --connect tcp/router:7447 --codec jpeg  # every local stream, through zenohd
"""


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError("quality must be 1 to 100")
    return value


def _max_fps(text: str) -> float:
    value = float(text)
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError("--max-fps must be above 0")
    return value


def _host_id(text: str) -> str:
    try:
        return clean_host_id(text)
    except ShmviewError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _pattern(text: str) -> str:
    from viewer.net.config import NetError, _zenoh

    try:
        zenoh = _zenoh()
        return str(zenoh.KeyExpr.autocanonize(text))
    except NetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    except zenoh.ZError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Zenoh key pattern such as shmview/robot1/*") from None


def add_network_options(p: argparse.ArgumentParser, *, listen: bool = True) -> None:
    if listen:
        p.add_argument("--listen", action="append", type=check_endpoint, metavar="ENDPOINT",
                       help="accept Zenoh peers on this endpoint, e.g. tcp/0.0.0.0:7447 (repeatable)")
    p.add_argument("--connect", action="append", type=check_endpoint, metavar="ENDPOINT",
                   help="connect to a Zenoh peer or router, e.g. tcp/192.168.1.10:7447 (repeatable)")
    p.add_argument("--zenoh-config", type=Path, metavar="FILE",
                   help="a Zenoh config file (json5): TLS, access control, a router...")
    p.add_argument("--scout", action="store_true", help="let Zenoh find peers by UDP multicast on the LAN")


def add_share(sub: argparse._SubParsersAction, epilog: str) -> argparse.ArgumentParser:
    p = sub.add_parser("share", help="publish local streams on the network (Zenoh)",
                       epilog=f"{SHARE_EXAMPLES}\n{NETWORK_NOTE}\n\n{epilog}")
    p.add_argument("names", nargs="*", metavar="NAME", help="streams to share (default: every live stream, "
                   "also ones that start later)")
    add_network_options(p)
    p.add_argument("--codec", choices=CODECS, default="raw", help="raw and png are lossless; jpeg is small")
    p.add_argument("--quality", type=_quality, default=90, help="JPEG quality, 1-100")
    p.add_argument("--max-fps", type=_max_fps, metavar="F", help="send at most F frames per second per stream")
    p.add_argument("--host-id", type=_host_id, default=default_host_id(),
                   help="the word remote users see this machine as (default: the host name)")
    return p


def add_bridge(sub: argparse._SubParsersAction, epilog: str) -> argparse.ArgumentParser:
    p = sub.add_parser("bridge", help="mirror remote streams into local ones (Zenoh)",
                       epilog=f"{SHARE_EXAMPLES}\n{NETWORK_NOTE}\n\n{epilog}")
    p.add_argument("pattern", nargs="?", type=_pattern, default=f"{KEY_ROOT}/**",
                   help="Zenoh key pattern of the streams to mirror, e.g. shmview/robot1/*")
    add_network_options(p)
    p.add_argument("--prefix", default="", help="put this before each local name: <prefix><host-id>.<name>")
    add_bridge_limits(p)
    return p


def add_remote_options(lst: argparse.ArgumentParser) -> None:
    lst.add_argument("--remote", action="store_true", help="list the streams shared on the network instead")
    add_network_options(lst, listen=False)
    lst.add_argument("--timeout", type=float, default=2.0, metavar="S", help="with --remote: how long to ask")


def options(args: argparse.Namespace) -> NetOptions:
    return NetOptions(getattr(args, "listen", None) or (), args.connect or (), args.zenoh_config, args.scout)


def _say(line: str) -> None:
    print(line, flush=True)


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[threading.Event]:
    """SIGTERM and SIGHUP unwind like Ctrl-C (KeyboardInterrupt in the main thread), so
    every local stream a bridge made is closed and no block is left behind."""
    previous = {s: signal.signal(s, signal.default_int_handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield threading.Event()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _keep_big_buffers() -> None:
    """Each frame passes through new multi-megabyte buffers (bytes for Zenoh, Zenoh's own):
    glibc would map and unmap each one, and page-fault every page of it again (about 0.5 ms
    a 640x480x3 frame). Keep such buffers on the heap instead, and the heap untrimmed."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(name)
    m_trim_threshold, m_mmap_threshold = -1, -3
    if hasattr(libc, "mallopt"):
        libc.mallopt(m_mmap_threshold, 64 << 20)
        libc.mallopt(m_trim_threshold, 256 << 20)


def require_endpoints(args: argparse.Namespace, command: str) -> None:
    """Nothing goes on a network the user did not name."""
    if not (getattr(args, "listen", None) or args.connect or args.zenoh_config or args.scout):
        raise UsageError(f"shmview {command}: error: say where: --listen ENDPOINT or --connect ENDPOINT "
                         "(or --zenoh-config FILE, or --scout)")


def share_command(args: argparse.Namespace) -> int:
    require_endpoints(args, "share")
    run_share(args)
    return 0


def bridge_command(args: argparse.Namespace) -> int:
    require_endpoints(args, "bridge")
    run_bridge(args)
    return 0


def list_command(args: argparse.Namespace) -> int:
    require_endpoints(args, "list --remote")
    list_remote(args)
    return 0


def run_share(args: argparse.Namespace) -> None:
    from viewer.net.share import Sharer
    from viewer.registry import validate_name

    for name in args.names:
        validate_name(name)
    _keep_big_buffers()
    with _stopped_by_signals() as stop:
        session = open_session(options(args))
        try:
            sharer = Sharer(session, args.names, args.host_id, codec=args.codec, quality=args.quality,
                            max_fps=args.max_fps, report=_say)
            what = ", ".join(args.names) or "every live stream"
            _say(f"share: {what} as {KEY_ROOT}/{args.host_id}/<name>, codec {args.codec}")
            sharer.run(stop)
        finally:
            session.close()


def run_bridge(args: argparse.Namespace) -> None:
    from viewer.net.bridge import Bridge

    _keep_big_buffers()
    with _stopped_by_signals() as stop:
        session = open_session(limited(options(args), args))
        try:
            bridge = Bridge(session, args.pattern, args.prefix, report=_say, limits=bridge_limits(args))
            try:
                _say(f"bridge: mirroring {args.pattern} as {args.prefix}<host-id>.<name>")
                while not stop.wait(3600):
                    pass
            finally:
                bridge.close()
        finally:
            session.close()


def list_remote(args: argparse.Namespace) -> None:
    from viewer.net.remote import remote_rows

    session = open_session(options(args))
    try:
        rows = remote_rows(session, timeout=args.timeout)
    finally:
        session.close()
    if args.json:
        print(json.dumps(rows, allow_nan=False))
    elif not rows:
        print("no remote streams")
    else:
        _table(rows)


def _table(rows: list[dict[str, Any]]) -> None:
    from viewer.imaging import size_text

    table = [("HOST", "NAME", "SIZE", "CODEC", "FPS", "KEY")]
    for r in rows:
        size = size_text(r["shape"]) if r["shape"] else "-"
        fps = "-" if r["fps"] is None else f"{r['fps']:.1f}"
        table.append((r["host"], r["name"], size, r["codec"] or "-", fps, r["key"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=sys.stdout)


# -- what a bridge lets its peers cost (issue 18): kept apart from the options above ----------


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number, 1 or more, got {text!r}")
    return value


def add_bridge_limits(p: argparse.ArgumentParser) -> None:
    from viewer.net.bridge import DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_STREAMS

    p.add_argument("--max-frame-bytes", type=_positive, default=DEFAULT_MAX_FRAME_BYTES, metavar="N",
                   help=f"drop frames whose pixels would take more than N bytes (default {DEFAULT_MAX_FRAME_BYTES:,}"
                   ": 3840x2160, 4 channels of uint16)")
    p.add_argument("--max-streams", type=_positive, default=DEFAULT_MAX_STREAMS, metavar="N",
                   help=f"mirror at most N streams at a time (default {DEFAULT_MAX_STREAMS})")


def bridge_limits(args: argparse.Namespace) -> Any:
    from viewer.net.bridge import Limits

    return Limits(max_frame_bytes=args.max_frame_bytes, max_streams=args.max_streams)


def limited(opts: NetOptions, args: argparse.Namespace) -> NetOptions:
    """``opts`` with Zenoh's own message size capped to what the bridge would take."""
    import dataclasses

    return dataclasses.replace(opts, extra={**opts.extra, **bridge_limits(args).zenoh_settings()})
