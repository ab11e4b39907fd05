"""The ``shmview`` command line. ``main(argv) -> int``; exit codes:

0 success, 1 any other error, 2 usage error (bad arguments, invalid name),
3 stream or device not there.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from viewer.cli import arguments as T
from viewer.cli.arguments import UsageError
from viewer.errors import FormatError, InvalidNameError, ShmviewError, SourceNotFoundError, StreamNotFoundError
from viewer.stream.protocol import DTYPES, MAX_SLOTS, PIXEL_FORMATS, make_layout
from viewer.view.monitor import RawSpec

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in every option's help (but not the empty ones), and epilogs as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message}")


EXIT_CODES = """exit codes:
  0  success
  1  any other error (a corrupt block, a name already in use, no room in /dev/shm, ...)
  2  usage error (bad arguments, invalid stream name)
  3  stream, device, file or folder not there"""

EXAMPLES = """examples:
  shmview produce synthetic --name cam0 --pattern solid --size 640x480
  shmview view cam0                          # a window (text when there is no display)
  shmview view cam0 --json --count 10        # ten JSON lines, then exit
  shmview list
"""


def _version() -> str:
    try:
        return importlib.metadata.version("shmview")
    except importlib.metadata.PackageNotFoundError:  # running from a checkout
        import viewer

        return viewer.__version__


def _add_produce(sub: argparse._SubParsersAction) -> None:
    from producers.synthetic import PATTERNS

    prod = sub.add_parser("produce", help="publish frames as a named stream", epilog=EXIT_CODES)
    kinds = prod.add_subparsers(dest="source", required=True, parser_class=_Parser)
    syn = kinds.add_parser("synthetic", help="test patterns with known content", epilog=EXIT_CODES)
    syn.add_argument("--pattern", choices=PATTERNS, default="gradient", help="what each frame shows")
    syn.add_argument("--size", type=T.size, default=(640, 480), metavar="WxH",
                     help="WIDTHxHEIGHT (default 640x480)")
    syn.add_argument("--channels", type=int, choices=(1, 3), default=3, help="1 grey, 3 BGR")
    syn.add_argument("--fps", type=T.FPS, metavar="N", default=30.0, help="frames per second; 0: as fast as possible")
    syn.set_defaults(func=_produce_synthetic)

    cam = kinds.add_parser("camera", help="a camera through OpenCV (index, /dev/videoN or URL)", epilog=EXIT_CODES)
    cam.add_argument("--device", required=True, help="0, /dev/video0, rtsp://... or http://...")
    cam.add_argument("--fps", type=T.FPS, metavar="N", help="pace to N fps (default: as the camera delivers)")
    vid = kinds.add_parser("video", help="a video file, at its own frame rate", epilog=EXIT_CODES)
    vid.add_argument("--path", required=True, type=Path, help="the video file")
    vid.add_argument("--loop", action="store_true", help="start over at the end")
    vid.add_argument("--fps", type=T.FPS, metavar="N", help="pace to N fps (default: the file's rate)")
    fold = kinds.add_parser("folder", help="the images in a folder, in name order", epilog=EXIT_CODES)
    fold.add_argument("--path", required=True, type=Path, help="the folder")
    fold.add_argument("--loop", action="store_true", help="start over after the last image")
    fold.add_argument("--threads", type=T.number(int, 1, 64), default=min(4, os.cpu_count() or 1),
                      help="decoding threads")
    fold.add_argument("--fps", type=T.FPS, metavar="N", default=10.0, help="frames per second")
    for src in (cam, vid, fold):
        src.add_argument("--size", type=T.size, metavar="WxH",
                         help="WIDTHxHEIGHT of the stream (default: the first frame's)")
        src.add_argument("--channels", type=int, choices=(1, 3), help="1 grey, 3 BGR (default: the first frame's)")
        src.add_argument("--stretch", action="store_true", help="fill --size, not keeping the aspect ratio "
                         "(default: keep it, with black bars)")
        src.add_argument("--letterbox", dest="stretch", action="store_false", help=argparse.SUPPRESS)  # old name
        src.set_defaults(func=_produce_source)
    from viewer.recording import cli as recording

    recording.add_replay(kinds, EXIT_CODES)
    for src in (syn, cam, vid, fold):
        src.add_argument("--name", required=True, help="stream name, e.g. cam0")
        src.add_argument("--frames", type=T.POSITIVE, metavar="N", help="stop after this many frames (default: never)")
        src.add_argument("--slots", type=T.SLOTS, metavar="N", default=3, help=f"ring slots, 1 to {MAX_SLOTS}")
        src.add_argument("--verbose", action="store_true", help="show OpenCV's and FFmpeg's own log messages")


VIEW_EPILOG = """examples:
  shmview view cam0 cam1                     # a window with two panels
  shmview view cam0 --json --count 1         # one JSON line per stream, then exit
  shmview view psm_1a2b --raw-shape 480,640,3 --headless   # a bare numpy array's block

--json and --count imply --headless. Without a reachable display, view prints text.

""" + EXIT_CODES


def _add_view(sub: argparse._SubParsersAction) -> None:
    view = sub.add_parser("view", help="show streams, in a window or as text", epilog=VIEW_EPILOG)
    view.add_argument("names", nargs="+", metavar="NAME",
                      help="stream name(s), or block name(s) with --block or --raw-shape")
    view.add_argument("--headless", action="store_true", help="print lines instead of opening a window")
    view.add_argument("--interval-ms", type=T.POSITIVE, metavar="MS", default=300,
                      help="refresh period in milliseconds")
    view.add_argument("--json", action="store_true", help="one JSON object per stream per refresh (headless)")
    view.add_argument("--count", type=T.POSITIVE, metavar="N", help="exit after N refreshes (headless; default: never)")
    view.add_argument("--timeout", type=T.number(float, 0), metavar="S",
                      help="headless: seconds to wait for a stream to appear before exit 3 (default 5)")
    view.add_argument("--block", action="store_true",
                      help="the names are shmview block names (psm_...), not stream names; "
                           "each must be a file of yours in /dev/shm")
    view.add_argument("--raw-shape", type=T.shape, metavar="H,W[,C]",
                      help="read a bare array at offset 0 of a foreign block; numpy shape H,W[,C]")
    view.add_argument("--dtype", default="uint8", choices=DTYPES, help="with --raw-shape: the array's dtype")
    view.add_argument("--pixel-format", choices=tuple(PIXEL_FORMATS),
                      help="with --raw-shape (default: GRAY, BGR or BGRA from the channels)")
    view.add_argument("--levels", type=T.levels, metavar="LO,HI",
                      help="window: fixed display levels LO,HI for uint16/float frames (default: automatic)")
    view.add_argument("--roi", type=T.roi, metavar="X,Y,W,H",
                      help="a region whose per-channel min, max, mean, std and sum are shown (window) or printed")
    view.add_argument("--snapshot-dir", type=Path, metavar="DIR",
                      help="window: where Ctrl+S saves frames (default: here)")
    view.set_defaults(func=_view)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="shmview", description="Live image frames between processes over shared memory.",
        epilog=EXAMPLES + "\n" + EXIT_CODES,
    )
    p.add_argument("--version", action="version", version=f"shmview {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_produce(sub)
    _add_view(sub)
    from viewer.recording import cli as recording

    recording.add_record(sub, EXIT_CODES)

    lst = sub.add_parser("list", help="list live streams", epilog=EXIT_CODES)
    lst.add_argument("--json", action="store_true", help="one JSON array of objects instead of a table")
    from viewer.cli.listing import list_command

    lst.set_defaults(func=list_command)
    _add_net(sub, lst)

    demo = sub.add_parser("demo", help="a synthetic producer and a viewer in one command", epilog=EXIT_CODES)
    from producers.synthetic import PATTERNS

    demo.add_argument("--name", default="demo", help="the demo stream's name")
    demo.add_argument("--pattern", choices=PATTERNS, default="bars", help="the test pattern shown")
    demo.add_argument("--headless", action="store_true", help="text instead of a window")
    demo.add_argument("--count", type=T.POSITIVE, metavar="N", help="headless: exit after N refreshes (default: never)")
    demo.set_defaults(func=_demo)
    return p


def _add_net(sub: argparse._SubParsersAction, lst: argparse.ArgumentParser) -> None:
    """share, bridge and list --remote: beyond one machine, through Zenoh (viewer/net/)."""
    from viewer.net import cli as net

    net.add_share(sub, EXIT_CODES).set_defaults(func=net.share_command)
    net.add_bridge(sub, EXIT_CODES).set_defaults(func=net.bridge_command)
    net.add_tls(sub, EXIT_CODES)
    net.add_remote_options(lst)


def _quiet_opencv(verbose: bool) -> None:
    """OpenCV, FFmpeg and libjpeg write their own warnings to stderr: only for --verbose.
    FFmpeg's level is read when cv2 loads, so this runs before anything imports cv2."""
    from viewer.quiet import quiet_environment

    if verbose:
        logging.getLogger().setLevel(logging.INFO)
    else:
        quiet_environment()


def _produce_synthetic(args: argparse.Namespace) -> int:
    _quiet_opencv(args.verbose)
    from producers.service import serve
    from producers.synthetic import SyntheticSource

    w, h = args.size
    source = SyntheticSource(args.pattern, w, h, args.channels)
    serve(source, args.name, slots=args.slots, fps=args.fps, frames=args.frames)
    return EXIT_OK


def _produce_source(args: argparse.Namespace) -> int:
    _quiet_opencv(args.verbose)
    from producers.base import FrameSource
    from producers.service import serve

    fps = args.fps  # None: the source's own rate
    source: FrameSource
    if args.source == "camera":
        from producers.camera import CameraSource

        source = CameraSource(args.device, size=args.size, fps=args.fps)
        fps = fps or 0.0  # unpaced: each new camera frame is written as it comes
    elif args.source == "video":
        from producers.video import VideoSource

        source = VideoSource(args.path, loop=args.loop)
    else:
        from producers.folder import FolderSource

        source = FolderSource(args.path, loop=args.loop, threads=args.threads)
    from viewer.quiet import native_noise_filtered

    with contextlib.nullcontext() if args.verbose else native_noise_filtered():
        serve(
            source, args.name, size=args.size, channels=args.channels, letterbox=not args.stretch,
            slots=args.slots, fps=fps, frames=args.frames,
        )
    return EXIT_OK


def _check_view_names(names: Sequence[str], raw: bool, block: bool) -> None:
    """Refuse at once what could never be found: no waiting, no lookup (exit 2)."""
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


def _view(args: argparse.Namespace, until: Callable[[], bool] | None = None) -> int:
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
                args.names, interval_s=args.interval_ms / 1000, raw=raw, block=args.block, levels=args.levels,
                snapshot_dir=args.snapshot_dir, roi=args.roi,
            )
        print(f"shmview: no display: {problem}; showing the stream as text", file=sys.stderr, flush=True)
    from viewer.view import headless as text

    # SIGTERM and SIGHUP stop the text viewer the way Ctrl-C does: cleanly, exit 0.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    timeout = args.timeout if args.timeout is not None else 5.0
    return text.run(
        args.names, interval_s=args.interval_ms / 1000, as_json=args.json, count=args.count,
        timeout_s=timeout, raw=raw, block=args.block, until=until, roi=args.roi,
    )


def _stop_with(parent: int) -> Callable[[], None]:
    """For a child process: SIGTERM when ``parent`` dies, however it dies (kill -9 too).
    Linux's PR_SET_PDEATHSIG; the child checks afterwards that the parent did not die first."""

    def arm() -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def _demo(args: argparse.Namespace) -> int:
    from viewer.stream.registry import validate_name

    validate_name(args.name)  # here, rather than as the producer's failure to start
    cmd = [sys.executable, "-m", "viewer", "produce", "synthetic", "--name", args.name, "--pattern", args.pattern]
    # SIGTERM and SIGHUP unwind like Ctrl-C, so the producer below is always stopped too.
    previous = {s: signal.signal(s, signal.default_int_handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    # The producer goes when the demo goes, even by kill -9: no stream left running forever.
    producer = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=_stop_with(os.getpid()))
    try:
        assert producer.stdout is not None
        ready = producer.stdout.readline().strip()
        if not ready:
            raise ShmviewError(f"the demo producer failed to start (exit {producer.wait()})")
        print(ready, flush=True)
        view = ["view", args.name] + (["--headless"] if args.headless else [])
        view += ["--count", str(args.count)] if args.count else []
        code = _view(build_parser().parse_args(view), until=lambda: producer.poll() is not None)
        if producer.poll() is not None:  # it stopped by itself, or was stopped on its own
            raise ShmviewError(f"the demo producer stopped (exit {producer.returncode})")
        return code
    finally:
        producer.terminate()
        producer.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="shmview: %(message)s")
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except (InvalidNameError, FormatError) as exc:  # a name or a shape the user asked for
        print(f"shmview: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StreamNotFoundError, SourceNotFoundError) as exc:
        print(f"shmview: error: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # `shmview view | head`
        return EXIT_OK
    except (ShmviewError, OSError, ValueError, TypeError) as exc:
        print(f"shmview: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C is how a viewer is meant to stop
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
