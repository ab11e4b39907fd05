"""``shmview produce``: a synthetic pattern, a camera, a video file, a folder of images or
(from viewer/recording/cli.py) a recording, published as a named stream."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from pathlib import Path

import viewer.arguments as T
from viewer.arguments import EXIT_CODES, EXIT_OK
from viewer.stream.protocol import MAX_SLOTS


def register(sub: argparse._SubParsersAction) -> None:
    from producers.synthetic import PATTERNS
    from viewer.recording import cli as recording

    prod = sub.add_parser("produce", help="publish frames as a named stream", epilog=EXIT_CODES)
    kinds = prod.add_subparsers(dest="source", required=True, parser_class=type(prod))
    syn = kinds.add_parser("synthetic", help="test patterns with known content", epilog=EXIT_CODES)
    syn.add_argument("--pattern", choices=PATTERNS, default="gradient", help="what each frame shows")
    syn.add_argument("--size", type=T.size, default=(640, 480), metavar="WxH", help="WIDTHxHEIGHT (default 640x480)")
    syn.add_argument("--channels", type=int, choices=(1, 3), default=3, help="1 grey, 3 BGR")
    syn.add_argument("--fps", type=T.FPS, metavar="N", default=30.0, help="frames per second; 0: as fast as possible")
    syn.set_defaults(func=_produce_synthetic)
    sources = _add_sources(kinds)
    recording.register_replay(kinds)
    for src in (syn, *sources):
        src.add_argument("--name", required=True, help="stream name, e.g. cam0")
        src.add_argument("--frames", type=T.POSITIVE, metavar="N", help="stop after this many frames (default: never)")
        src.add_argument("--slots", type=T.SLOTS, metavar="N", default=3, help=f"ring slots, 1 to {MAX_SLOTS}")
        src.add_argument("--verbose", action="store_true", help="show OpenCV's and FFmpeg's own log messages")


def _add_sources(kinds: argparse._SubParsersAction) -> tuple[argparse.ArgumentParser, ...]:
    """camera, video and folder: sources whose frames are made to fit the stream."""
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
    fold.add_argument(
        "--threads", type=T.number(int, 1, 64), default=min(4, os.cpu_count() or 1), help="decoding threads"
    )
    fold.add_argument("--fps", type=T.FPS, metavar="N", default=10.0, help="frames per second")
    for src in (cam, vid, fold):
        src.add_argument(
            "--size", type=T.size, metavar="WxH", help="WIDTHxHEIGHT of the stream (default: the first frame's)"
        )
        src.add_argument("--channels", type=int, choices=(1, 3), help="1 grey, 3 BGR (default: the first frame's)")
        src.add_argument(
            "--stretch",
            action="store_true",
            help="fill --size, not keeping the aspect ratio (default: keep it, with black bars)",
        )
        src.add_argument("--letterbox", dest="stretch", action="store_false", help=argparse.SUPPRESS)  # old name
        src.set_defaults(func=_produce_source)
    return cam, vid, fold


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
            source,
            args.name,
            size=args.size,
            channels=args.channels,
            letterbox=not args.stretch,
            slots=args.slots,
            fps=fps,
            frames=args.frames,
        )
    return EXIT_OK
