"""The ``share``, ``bridge``, ``tls`` and ``list --remote`` commands: their options and
their runs. register() adds share, bridge and tls to the command line; ``shmview list``
(viewer/cli/listing.py) takes its --remote options from add_remote_options()."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from viewer.arguments import EXIT_CODES
from viewer.errors import ShmviewError, UsageError
from viewer.net.codec import CODECS
from viewer.net.config import KEY_ROOT, NetOptions, check_endpoint, clean_host_id, default_host_id, open_session
from viewer.signals import SignalStop

NETWORK_NOTE = """Nothing is sent anywhere but to the endpoints given (--listen, --connect, or a Zenoh
config file); Zenoh's multicast scouting stays off unless --scout asks for it. Only peers that
prove they may read and publish get in: on this machine, `local` (a socket in a 0700 folder of
yours) or unixsock-stream/PATH in such a folder; between machines, tls/HOST:PORT with --tls DIR
(mutual TLS: certificates from `shmview tls`). Plain tcp/ (loopback too: every local user can
reach it) is refused (exit 2) unless --insecure. docs/security.md says who can read and write."""

SHARE_EXAMPLES = """examples:
  shmview share cam0 --listen local                       # this machine, you only
  shmview bridge --connect local --prefix copy.           # stream copy.<host>.cam0
  shmview share cam0 --listen tls/0.0.0.0:7447 --tls ~/.config/shmview/tls    # on the robot
  shmview bridge --connect tls/robot.local:7447 --tls ~/.config/shmview/tls   # on the laptop
"""


def _endpoint(text: str) -> str:
    try:
        return check_endpoint(text)
    except ValueError as exc:  # argparse would only name the function
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    from viewer.errors import NetError
    from viewer.net.config import zenoh_module

    try:
        zenoh = zenoh_module()
        return str(zenoh.KeyExpr.autocanonize(text))
    except NetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    except zenoh.ZError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Zenoh key pattern such as shmview/robot1/*") from None


def register(sub: argparse._SubParsersAction) -> None:
    """``share``, ``bridge`` and ``tls``."""
    add_share(sub).set_defaults(func=share_command)
    add_bridge(sub).set_defaults(func=bridge_command)
    add_tls(sub)


def add_network_options(p: argparse.ArgumentParser, *, listen: bool = True) -> None:
    if listen:
        p.add_argument(
            "--listen",
            action="append",
            type=_endpoint,
            metavar="ENDPOINT",
            help="accept Zenoh peers on this endpoint: local, or tls/0.0.0.0:7447 with --tls (repeatable)",
        )
    p.add_argument(
        "--connect",
        action="append",
        type=_endpoint,
        metavar="ENDPOINT",
        help="connect to a Zenoh peer or router: local, or tls/192.168.1.10:7447 with --tls (repeatable)",
    )
    p.add_argument(
        "--zenoh-config",
        type=Path,
        metavar="FILE",
        help="a Zenoh config file (json5): TLS, access control, a router...",
    )
    p.add_argument("--scout", action="store_true", help="let Zenoh find peers by UDP multicast on the LAN")
    add_security_options(p)


def add_share(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "share",
        help="publish local streams on the network (Zenoh)",
        epilog=f"{SHARE_EXAMPLES}\n{NETWORK_NOTE}\n\n{EXIT_CODES}",
    )
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="streams to share (default: every live stream, also ones that start later)",
    )
    add_network_options(p)
    p.add_argument("--codec", choices=CODECS, default="raw", help="raw and png are lossless; jpeg is small")
    p.add_argument("--quality", type=_quality, default=90, help="JPEG quality, 1-100")
    p.add_argument("--max-fps", type=_max_fps, metavar="F", help="send at most F frames per second per stream")
    p.add_argument(
        "--host-id",
        type=_host_id,
        default=default_host_id(),
        help="the word remote users see this machine as (default: the host name)",
    )
    return p


def add_bridge(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bridge",
        help="mirror remote streams into local ones (Zenoh)",
        epilog=f"{SHARE_EXAMPLES}\n{NETWORK_NOTE}\n\n{EXIT_CODES}",
    )
    p.add_argument(
        "pattern",
        nargs="?",
        type=_pattern,
        default=f"{KEY_ROOT}/**",
        help="Zenoh key pattern of the streams to mirror, e.g. shmview/robot1/*",
    )
    add_network_options(p)
    p.add_argument("--prefix", default="", help="put this before each local name: <prefix><host-id>.<name>")
    add_bridge_limits(p)
    return p


def add_remote_options(lst: argparse.ArgumentParser) -> None:
    lst.add_argument("--remote", action="store_true", help="list the streams shared on the network instead")
    add_network_options(lst, listen=False)
    lst.add_argument("--timeout", type=float, default=2.0, metavar="S", help="with --remote: how long to ask")


def add_security_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tls",
        type=Path,
        metavar="DIR",
        help="mutual TLS with the ca.pem, cert.pem and key.pem in DIR (made by `shmview tls`)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow endpoints anyone who reaches them can read and publish on (plain tcp/...)",
    )


def options(args: argparse.Namespace) -> NetOptions:
    return NetOptions(
        getattr(args, "listen", None) or (),
        args.connect or (),
        args.zenoh_config,
        args.scout,
        tls_dir=args.tls,
        insecure=args.insecure,
    )


def _vet(args: argparse.Namespace, command: str) -> None:
    """Refuse, before anything runs, a session others could read or publish on unchecked
    (a usage error, exit 2), and say it once when --insecure lets one through."""
    from viewer.errors import CertificateError, InsecureNetworkError
    from viewer.net.config import zenoh_config

    try:
        zenoh_config(options(args))
    except (InsecureNetworkError, CertificateError) as exc:
        raise UsageError(f"shmview {command}: error: {exc}") from None
    if args.insecure:
        where = ", ".join([*(getattr(args, "listen", None) or ()), *(args.connect or ())]) or "the network"
        print(
            f"shmview {command}: warning: --insecure: whoever reaches {where} can read and publish these streams",
            file=sys.stderr,
            flush=True,
        )


_saying = threading.Lock()


def _say(line: str) -> None:
    """One whole line on stdout. Mirrors and shares report from threads of their own, and
    print() writes a line and its newline separately: two threads would run two lines
    together and leave an empty one."""
    with _saying:
        sys.stdout.write(f"{line}\n")
        sys.stdout.flush()


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
        raise UsageError(
            f"shmview {command}: error: say where: --listen ENDPOINT or --connect ENDPOINT "
            "(local, or tls/HOST:PORT with --tls DIR; or --zenoh-config FILE)"
        )
    _vet(args, command)


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
    from viewer.stream.registry import validate_name

    for name in args.names:
        validate_name(name)
    _keep_big_buffers()
    with SignalStop.installed() as stop:
        session = open_session(options(args))
        try:
            sharer = Sharer(
                session,
                args.names,
                args.host_id,
                codec=args.codec,
                quality=args.quality,
                max_fps=args.max_fps,
                report=_say,
            )
            what = ", ".join(args.names) or "every live stream"
            _say(f"share: {what} as {KEY_ROOT}/{args.host_id}/<name>, codec {args.codec}")
            sharer.run(stop, tick=_notice(session, "share", args).check)
        finally:
            session.close()


def run_bridge(args: argparse.Namespace) -> None:
    from viewer.net.bridge import Bridge

    _keep_big_buffers()
    with SignalStop.installed() as stop:  # then the streams it made are closed: none left behind
        session = open_session(limited(options(args), args))
        try:
            _say(f"bridge: mirroring {args.pattern} as {args.prefix}<host-id>.<name>")  # before any mirror's line
            bridge = Bridge(session, args.pattern, args.prefix, report=_say, limits=bridge_limits(args))
            try:
                notice = _notice(session, "bridge", args, idle=bridge.idle)
                while not stop.wait(NOTICE_EVERY_S):
                    notice.check()
            finally:
                bridge.close()
        finally:
            session.close()


NOTICE_EVERY_S = 0.5  # how often a bridge looks at whether it waits for something


def _notice(session: Any, command: str, args: argparse.Namespace, **kwargs: Any) -> Any:
    from viewer.net.presence import PeerNotice

    return PeerNotice(session, command, _say, listen=args.listen or (), connect=args.connect or (), **kwargs)


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
    from viewer.stream.frames import size_text

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

    p.add_argument(
        "--max-frame-bytes",
        type=_positive,
        default=DEFAULT_MAX_FRAME_BYTES,
        metavar="N",
        help=f"drop frames whose pixels would take more than N bytes (default {DEFAULT_MAX_FRAME_BYTES:,}"
        ": 3840x2160, 4 channels of uint16)",
    )
    p.add_argument(
        "--max-streams",
        type=_positive,
        default=DEFAULT_MAX_STREAMS,
        metavar="N",
        help=f"mirror at most N streams at a time (default {DEFAULT_MAX_STREAMS})",
    )


def bridge_limits(args: argparse.Namespace) -> Any:
    from viewer.net.bridge import Limits

    return Limits(max_frame_bytes=args.max_frame_bytes, max_streams=args.max_streams)


def limited(opts: NetOptions, args: argparse.Namespace) -> NetOptions:
    """``opts`` with Zenoh's own message size capped to what the bridge would take."""
    import dataclasses

    return dataclasses.replace(opts, extra={**opts.extra, **bridge_limits(args).zenoh_settings()})


# -- shmview tls: certificates for mutual TLS (viewer/net/tls.py) ---------------------------

TLS_EPILOG = """examples:
  shmview tls init ~/.config/shmview/tls --host robot.local   # a CA + this host
  shmview tls issue --ca ~/.config/shmview/tls laptop-tls --host laptop.local     # another host
  (copy laptop-tls/ to the laptop; then both use --tls with their own folder)

A CA folder holds ca-key.pem, which signs certificates: keep it on one machine, never copy it.
Every certificate also names localhost and 127.0.0.1; peers check the name they connect to."""


def _dns_name(text: str) -> str:
    import ipaddress

    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(text))
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is neither a host name nor an IP address")
    return text


def add_tls(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "tls",
        help="certificates for mutual TLS between machines (share/bridge --tls)",
        epilog=f"{TLS_EPILOG}\n\n{EXIT_CODES}",
    )
    kinds = p.add_subparsers(dest="tls_command", required=True, parser_class=type(p))
    init = kinds.add_parser(
        "init", help="a new CA and this host's certificate, in DIR", epilog=f"{TLS_EPILOG}\n\n{EXIT_CODES}"
    )
    init.add_argument("folder", type=Path, metavar="DIR", help="new or empty folder (made 0700)")
    issue = kinds.add_parser(
        "issue", help="another host's certificate from a CA folder", epilog=f"{TLS_EPILOG}\n\n{EXIT_CODES}"
    )
    issue.add_argument("--ca", type=Path, required=True, metavar="CA_DIR", help="a folder made by tls init")
    issue.add_argument("folder", type=Path, metavar="OUT_DIR", help="new or empty folder (made 0700)")
    for q in (init, issue):
        q.add_argument(
            "--host",
            action="append",
            type=_dns_name,
            metavar="NAME",
            help="a name or address peers reach this host by (repeatable; default: the host name)",
        )
        q.add_argument("--days", type=int, default=825, help="how long the host certificate is valid")
    p.set_defaults(func=tls_command)
    return p


def tls_command(args: argparse.Namespace) -> int:
    from viewer.net import tls

    try:
        hosts = args.host or [_dns_name(socket.gethostname())]
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"shmview tls: error: this host's name will not do ({exc}): give --host NAME") from None
    if not 1 <= args.days <= 36500:
        raise UsageError(f"shmview tls: error: --days must be 1 to 36500, got {args.days}")
    if args.tls_command == "init":
        tls.init(args.folder, hosts, args.days)
        _say(
            f"tls: a new CA in {args.folder} ({tls.CA_KEY}: keep it there), and a certificate for "
            f"{', '.join(hosts)}: use --tls {args.folder}"
        )
    else:
        tls.issue(args.ca, args.folder, hosts, args.days)
        _say(
            f"tls: a certificate for {', '.join(hosts)} in {args.folder}: copy that folder to the host "
            f"and use --tls with it there"
        )
    return 0
