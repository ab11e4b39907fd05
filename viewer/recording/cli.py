"""The command line of recording: ``record``, ``info`` and ``produce replay``, their
arguments and what they run. register() adds ``record`` and ``info`` to the command line,
register_replay() adds ``replay`` under ``produce``; nothing heavy is imported until a
command runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import viewer.arguments as T
from viewer.arguments import EXIT_CODES
from viewer.stream.protocol import MAX_SLOTS

RECORD_EXAMPLES = """examples:
  shmview record cam0 --out clip.mcap --seconds 10      # opens in Foxglove as it is
  shmview record cam0 cam1 --out run.mcap --frames 1000 --compress lz4
  shmview record cam0 --out clip.mp4 --seconds 5        # a video to share (lossy)
  shmview record cam0 --out frames/ --frames 100        # frames/cam0_00000000.png, ...
  shmview record cam0 cam1 --out run.mcap --missing wait --timeout 60   # both, or nothing

The format comes from --out: .mcap, .mp4, .avi, .mkv, or a trailing slash for a folder;
anything else is refused. Ctrl-C or SIGTERM finishes the file. At the end, one line per
stream: recorded N frames of NAME, skipped K (frames it could not keep up with), or
recorded 0 frames of NAME: why (a stream that never appeared).

"""


def register_replay(kinds: argparse._SubParsersAction) -> None:
    """``produce replay``, under ``produce`` (viewer/cli/produce.py)."""
    rep = kinds.add_parser("replay", help="a recording (shmview record MCAP), exactly as recorded", epilog=EXIT_CODES)
    rep.add_argument("--path", required=True, type=Path, help="the .mcap file")
    rep.add_argument("--stream", help="replay only this recorded stream (default: all, each under its name)")
    rep.add_argument("--name", help="publish under this name (one stream only)")
    rep.add_argument("--loop", action="store_true", help="start over at the end")
    rep.add_argument(
        "--speed", type=T.FPS, metavar="X", default=1.0, help="1 as recorded, 2 twice as fast; 0: as fast as possible"
    )
    rep.add_argument("--slots", type=T.SLOTS, metavar="N", default=3, help=f"ring slots, 1 to {MAX_SLOTS}")
    rep.set_defaults(func=run_replay, parser=rep)


def register(sub: argparse._SubParsersAction) -> None:
    """``record`` and ``info``."""
    rec = sub.add_parser(
        "record", help="record streams to MCAP (Foxglove), a video, or images", epilog=RECORD_EXAMPLES + EXIT_CODES
    )
    rec.add_argument("names", nargs="+", metavar="NAME", help="stream name(s)")
    rec.add_argument(
        "--out",
        required=True,
        type=_output,  # a str: a Path drops the slash of "DIR/"
        metavar="FILE",
        help="FILE.mcap; FILE.mp4/.avi/.mkv for a (lossy) video; DIR/ for one PNG/TIFF per frame",
    )
    rec.add_argument(
        "--frames", type=T.POSITIVE, metavar="N", help="stop after N frames of each stream (default: never)"
    )
    rec.add_argument("--seconds", type=T.number(float, 0, above=True), metavar="S", help="stop after S seconds")
    rec.add_argument("--compress", choices=("zstd", "lz4", "none"), default="zstd", help="MCAP chunk compression")
    rec.add_argument(
        "--timeout", type=T.number(float, 0), metavar="S", default=5.0, help="seconds to wait for streams to appear"
    )
    rec.add_argument(
        "--missing",
        choices=("skip", "wait"),
        default="skip",
        help="a stream not there: skip records the others at once, takes it in if it appears within --timeout, "
        "else leaves it out and says so; wait records nothing until every stream is there (exit 3 after --timeout)",
    )
    rec.set_defaults(func=run_record)
    info = sub.add_parser("info", help="what a recording holds", epilog=EXIT_CODES)
    info.add_argument("path", type=Path, metavar="FILE.mcap", help="a recording")
    info.set_defaults(func=run_info, parser=info)


def run_replay(args: argparse.Namespace) -> int:
    from viewer.recording.replay import ReplayArgumentError, replay

    if args.path.is_dir():
        args.parser.error(
            f"{args.path} is a folder: replay reads MCAP files "
            f"(a folder of images plays with: shmview produce folder --path {args.path})"
        )
    try:
        replay(args.path, stream=args.stream, name=args.name, loop=args.loop, speed=args.speed, slots=args.slots)
    except ReplayArgumentError as exc:
        args.parser.error(str(exc))  # a usage error, exit 2
    return 0


def _output(text: str) -> str:
    """--out as given, if its extension or trailing slash names a format (exit 2 if not)."""
    from viewer.recording.sinks import output_kind

    try:
        output_kind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def run_record(args: argparse.Namespace) -> int:
    from viewer.quiet import native_noise_filtered, quiet_environment
    from viewer.recording.command import record
    from viewer.signals import SignalStop

    quiet_environment()  # too late when cv2 is already loaded (the producers import it): hence the filter
    with native_noise_filtered(), SignalStop.installed() as stop:  # OpenCV and FFmpeg talk on stderr
        tallies = record(
            args.names,
            args.out,
            frames=args.frames,
            seconds=args.seconds,
            compression=args.compress,
            timeout=args.timeout,
            missing=args.missing,
            stop=stop,
        )
    for tally in tallies:
        print(tally.line(), flush=True)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from viewer.recording.info import report

    if args.path.is_dir():  # a `record --out DIR/` folder, most likely: one image per frame
        args.parser.error(f"{args.path} is a folder: info reads MCAP files")
    for line in report(args.path):
        print(line)
    return 0
