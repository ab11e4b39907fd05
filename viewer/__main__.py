"""The ``shmview`` command line. ``main(argv) -> int``; exit codes:

0 success, 1 any other error, 2 usage error (bad arguments, invalid name),
3 stream or device not there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from viewer.errors import InvalidNameError, ShmviewError, SourceNotFoundError, StreamNotFoundError
from viewer.monitor import RawSpec

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message}")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if not (0 < w <= 32768 and 0 < h <= 32768):
        raise argparse.ArgumentTypeError(f"size {text!r} is out of range")
    return w, h


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must look like 480,640,3, got {text!r}") from None
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"shape must be 2 or 3 positive numbers, got {text!r}")
    return shape


def _levels(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"levels must look like 0,4095, got {text!r}") from None
    if not hi > lo:
        raise argparse.ArgumentTypeError(f"levels need LO < HI, got {text!r}")
    return lo, hi


def has_display() -> bool:
    """Whether Qt has somewhere to put a window (QT_QPA_PLATFORM=offscreen counts)."""
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def _positive(kind: type) -> object:
    def parse(text: str) -> object:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="shmview", description="Live image frames between processes over shared memory.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    prod = sub.add_parser("produce", help="publish frames as a named stream")
    kinds = prod.add_subparsers(dest="source", required=True, parser_class=_Parser)
    syn = kinds.add_parser("synthetic", help="test patterns with known content")
    syn.add_argument("--name", required=True, help="stream name, e.g. cam0")
    from producers.synthetic import PATTERNS

    syn.add_argument("--pattern", choices=PATTERNS, default="gradient")
    syn.add_argument("--size", type=_size, default=(640, 480), help="WIDTHxHEIGHT (default 640x480)")
    syn.add_argument("--channels", type=int, choices=(1, 3), default=3)
    syn.add_argument("--fps", type=float, default=30.0, help="frames per second; 0: as fast as possible")
    syn.add_argument("--frames", type=_positive(int), help="stop after this many frames")
    syn.add_argument("--slots", type=int, default=3, help="ring slots (default 3)")
    syn.set_defaults(func=_produce_synthetic)

    cam = kinds.add_parser("camera", help="a camera through OpenCV (index, /dev/videoN or URL)")
    cam.add_argument("--device", required=True, help="0, /dev/video0, rtsp://... or http://...")
    vid = kinds.add_parser("video", help="a video file, at its own frame rate")
    vid.add_argument("--path", required=True, type=Path)
    vid.add_argument("--loop", action="store_true", help="start over at the end")
    fold = kinds.add_parser("folder", help="the images in a folder, in name order")
    fold.add_argument("--path", required=True, type=Path)
    fold.add_argument("--loop", action="store_true", help="start over after the last image")
    fold.add_argument("--threads", type=_positive(int), default=min(4, os.cpu_count() or 1), help="decoding threads")
    for src, fps_help in ((cam, "pace to N fps (default: as the camera delivers)"),
                          (vid, "pace to N fps (default: the file's rate)"),
                          (fold, "frames per second (default 10)")):
        src.add_argument("--name", required=True, help="stream name, e.g. cam0")
        src.add_argument("--size", type=_size, help="WIDTHxHEIGHT of the stream (default: the first frame's)")
        src.add_argument("--channels", type=int, choices=(1, 3), help="1 grey, 3 BGR (default: the first frame's)")
        src.add_argument("--letterbox", action="store_true", help="keep the aspect ratio when resizing")
        src.add_argument("--fps", type=float, help=fps_help)
        src.add_argument("--frames", type=_positive(int), help="stop after this many frames")
        src.add_argument("--slots", type=int, default=3, help="ring slots (default 3)")
        src.set_defaults(func=_produce_source)

    view = sub.add_parser("view", help="show streams, in a window or as text")
    view.add_argument("names", nargs="+", metavar="NAME", help="stream name(s), or a block name with --raw-shape")
    view.add_argument("--headless", action="store_true", help="print lines instead of opening a window")
    view.add_argument("--interval-ms", type=_positive(int), default=300)
    view.add_argument("--json", action="store_true", help="headless: one JSON object per line")
    view.add_argument("--count", type=_positive(int), help="headless: exit after N refreshes")
    view.add_argument("--timeout", type=float, help="seconds to wait for a stream to appear (headless default 5)")
    view.add_argument("--raw-shape", type=_shape, help="read a bare array at offset 0 of a foreign block: H,W[,C]")
    view.add_argument("--dtype", default="uint8", help="with --raw-shape: uint8, uint16, float32 or float64")
    view.add_argument("--pixel-format", help="with --raw-shape: GRAY, BGR, RGB, BGRA or RGBA")
    view.add_argument("--levels", type=_levels, help="window: fixed display levels LO,HI for uint16/float frames")
    view.add_argument("--snapshot-dir", type=Path, help="window: where Ctrl+S saves frames (default: here)")
    view.set_defaults(func=_view)

    lst = sub.add_parser("list", help="list live streams")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)

    demo = sub.add_parser("demo", help="a synthetic producer and a viewer in one command")
    demo.add_argument("--name", default="demo")
    demo.add_argument("--pattern", choices=PATTERNS, default="bars")
    demo.add_argument("--headless", action="store_true", help="text instead of a window")
    demo.add_argument("--count", type=_positive(int), help="headless: exit after N refreshes")
    demo.set_defaults(func=_demo)
    return p


def _produce_synthetic(args: argparse.Namespace) -> int:
    from producers.service import serve
    from producers.synthetic import SyntheticSource

    w, h = args.size
    source = SyntheticSource(args.pattern, w, h, args.channels)
    serve(source, args.name, slots=args.slots, fps=args.fps, frames=args.frames)
    return EXIT_OK


def _produce_source(args: argparse.Namespace) -> int:
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
        fps = fps or 10.0
    serve(
        source, args.name, size=args.size, channels=args.channels, letterbox=args.letterbox,
        slots=args.slots, fps=fps, frames=args.frames,
    )
    return EXIT_OK


def _view(args: argparse.Namespace, until: Callable[[], bool] | None = None) -> int:
    from viewer import headless

    raw = None
    if args.raw_shape:
        raw = RawSpec(args.raw_shape, args.dtype, args.pixel_format)
    if not args.headless and has_display():
        from viewer import window

        return window.run(
            args.names, interval_ms=args.interval_ms, raw=raw, levels=args.levels, snapshot_dir=args.snapshot_dir
        )
    if not args.headless:
        print("shmview: no display (DISPLAY is not set): showing the stream as text", file=sys.stderr)
    timeout = args.timeout if args.timeout is not None else 5.0
    headless.run(
        args.names, interval_s=args.interval_ms / 1000, as_json=args.json, count=args.count,
        timeout_s=timeout, raw=raw, until=until,
    )
    return EXIT_OK


def stream_rows() -> list[dict[str, object]]:
    """What ``shmview list`` shows: one dict per live stream."""
    from viewer.registry import live_records
    from viewer.stream import FrameReader

    rows = []
    for rec in live_records():
        try:
            with FrameReader(rec.name) as reader:
                frame = reader.read()
                info, written = reader.info, reader.frames_written
        except ShmviewError:
            continue  # vanished or unreadable between listing and attaching
        age = (time.time_ns() - frame.timestamp_ns) / 1e9 if frame and frame.timestamp_ns else None
        rows.append({
            "name": rec.name, "block": info.block, "shape": list(info.shape), "dtype": info.dtype,
            "pixel_format": info.pixel_format, "frames": written, "pid": rec.pid,
            "age_s": None if age is None else round(age, 3),
        })
    return rows


def _list(args: argparse.Namespace) -> int:
    rows = stream_rows()
    if args.json:
        print(json.dumps(rows))
        return EXIT_OK
    if not rows:
        print("no live streams")
        return EXIT_OK
    table = [("NAME", "BLOCK", "SHAPE", "DTYPE", "FORMAT", "FRAMES", "PID", "AGE")]
    for r in rows:
        age = "-" if r["age_s"] is None else f"{r['age_s']:.2f}s"
        table.append((
            str(r["name"]), str(r["block"]), "x".join(map(str, r["shape"])),  # type: ignore[call-overload]
            str(r["dtype"]), str(r["pixel_format"]), str(r["frames"]), str(r["pid"]), age,
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    cmd = [sys.executable, "-m", "viewer", "produce", "synthetic", "--name", args.name, "--pattern", args.pattern]
    # SIGTERM and SIGHUP unwind like Ctrl-C, so the producer below is always stopped too.
    previous = {s: signal.signal(s, signal.default_int_handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    producer = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
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
    except InvalidNameError as exc:
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


if __name__ == "__main__":
    sys.exit(main())
