"""``shmview view``: streams in a window, or as text lines where there is no display."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import viewer.arguments as T
from viewer.arguments import EXIT_CODES
from viewer.signals import Stop, stop_flag
from viewer.stream.protocol import DTYPES, PIXEL_FORMATS, make_layout
from viewer.view.monitor import RawSpec

VIEW_EPILOG = (
    """examples:
  shmview view cam0 cam1                     # a window with two panels
  shmview view cam0 --json --count 1         # one JSON line per stream, then exit
  shmview view psm_1a2b --raw-shape 480,640,3 --headless   # a bare numpy array's block

--json and --count imply --headless. Without a reachable display, view prints text.

"""
    + EXIT_CODES
)


def register(sub: argparse._SubParsersAction) -> None:
    view = sub.add_parser("view", help="show streams, in a window or as text", epilog=VIEW_EPILOG)
    view.add_argument(
        "names", nargs="+", metavar="NAME", help="stream name(s), or block name(s) with --block or --raw-shape"
    )
    view.add_argument("--headless", action="store_true", help="print lines instead of opening a window")
    view.add_argument(
        "--interval-ms", type=T.POSITIVE, metavar="MS", default=300, help="refresh period in milliseconds"
    )
    view.add_argument("--json", action="store_true", help="one JSON object per stream per refresh (headless)")
    view.add_argument("--count", type=T.POSITIVE, metavar="N", help="exit after N refreshes (headless; default: never)")
    view.add_argument(
        "--timeout",
        type=T.number(float, 0),
        metavar="S",
        help="headless: seconds to wait for a stream to appear before exit 3 (default 5)",
    )
    view.add_argument(
        "--block",
        action="store_true",
        help="the names are shmview block names (psm_...), not stream names; each must be a file of yours in /dev/shm",
    )
    view.add_argument(
        "--raw-shape",
        type=T.shape,
        metavar="H,W[,C]",
        help="read a bare array at offset 0 of a foreign block; numpy shape H,W[,C]",
    )
    view.add_argument("--dtype", default="uint8", choices=DTYPES, help="with --raw-shape: the array's dtype")
    view.add_argument(
        "--pixel-format",
        choices=tuple(PIXEL_FORMATS),
        help="with --raw-shape (default: GRAY, BGR or BGRA from the channels)",
    )
    view.add_argument(
        "--levels",
        type=T.levels,
        metavar="LO,HI",
        help="window: fixed display levels LO,HI for uint16/float frames (default: automatic)",
    )
    view.add_argument(
        "--roi",
        type=T.roi,
        metavar="X,Y,W,H",
        help="a region whose per-channel min, max, mean, std and sum are shown (window) or printed",
    )
    view.add_argument(
        "--snapshot-dir",
        type=Path,
        metavar="DIR",
        help="window: where Ctrl+S saves frames (default: the current folder)",
    )
    view.set_defaults(func=run_view)


def arguments(argv: Sequence[str]) -> argparse.Namespace:
    """What ``shmview view ARGV`` is given, as its parser reads it (the demo runs a view)."""
    sub = argparse.ArgumentParser(prog="shmview").add_subparsers()
    register(sub)
    return sub.choices["view"].parse_args(argv)


def _check_view_names(names: Sequence[str], raw: bool, block: bool) -> None:
    """Refuse at once what could never be found: no waiting, no lookup (exit 2)."""
    from viewer.errors import InvalidNameError
    from viewer.stream.blocks import is_block_name
    from viewer.stream.registry import read_record, validate_name

    for name in names:
        if not (raw or block):
            validate_name(name)
            continue
        if name.strip("/") in ("", ".", "..") or not is_block_name(name):
            raise InvalidNameError(f"invalid block name {name!r}", name=name)
        try:
            is_stream = raw and read_record(validate_name(name)) is not None
        except InvalidNameError:
            is_stream = False
        if is_stream:
            raise InvalidNameError(
                f"{name!r} is a shmview stream: view it without --raw-shape, which is for bare numpy arrays",
                name=name,
            )


def run_view(args: argparse.Namespace, stop: Stop | None = None, until: Callable[[], bool] | None = None) -> int:
    """A window, else text lines until ``until()``, ``stop`` or (without one) a stop signal."""
    _check_view_names(args.names, bool(args.raw_shape), args.block)
    raw = RawSpec(args.raw_shape, args.dtype, args.pixel_format) if args.raw_shape else None
    if raw is not None:
        make_layout(raw.shape, raw.dtype, raw.pixel_format, 1)  # a bad shape is a usage error, now
    headless = args.headless or args.json or args.count is not None  # never a window that runs forever
    if not headless:
        from viewer.gui.display import display_problem

        problem = display_problem()
        if problem is None:
            from viewer.gui import window

            return window.run(
                args.names,
                interval_s=args.interval_ms / 1000,
                raw=raw,
                block=args.block,
                levels=args.levels,
                snapshot_dir=args.snapshot_dir,
                roi=args.roi,
            )
        print(f"shmview: no display: {problem}; showing the stream as text", file=sys.stderr, flush=True)
    from viewer.view import headless as text

    timeout = args.timeout if args.timeout is not None else 5.0
    with stop_flag(stop) as stopping:  # SIGINT, SIGTERM and SIGHUP end the text viewer cleanly: exit 0
        return text.run(
            args.names,
            interval_s=args.interval_ms / 1000,
            as_json=args.json,
            count=args.count,
            timeout_s=timeout,
            raw=raw,
            block=args.block,
            until=until,
            roi=args.roi,
            stop=stopping,
        )
