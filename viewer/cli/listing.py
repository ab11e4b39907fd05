"""``shmview list``: the live streams of this user, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import time

from viewer.arguments import EXIT_CODES
from viewer.errors import ShmviewError, StreamNotFoundError


def register(sub: argparse._SubParsersAction) -> None:
    """``list``, with the options of ``list --remote`` from viewer/net/cli.py."""
    from viewer.net import cli as net

    lst = sub.add_parser("list", help="list live streams", epilog=EXIT_CODES)
    lst.add_argument("--json", action="store_true", help="one JSON array of objects instead of a table")
    lst.set_defaults(func=list_command)
    net.add_remote_options(lst)


def stream_rows() -> list[dict[str, object]]:
    """What ``shmview list`` shows: one dict per live stream."""
    from viewer.stream import FrameReader
    from viewer.stream.registry import live_records

    rows: list[dict[str, object]] = []
    for rec in live_records():
        try:
            with FrameReader(rec.name) as reader:
                frame = reader.read()
                info, written = reader.info, reader.frames_written
        except StreamNotFoundError:
            continue  # ended between listing and attaching
        except ShmviewError as exc:  # live, but unreadable: shown, never hidden
            rows.append(
                {
                    "name": rec.name,
                    "block": rec.block,
                    "shape": None,
                    "dtype": None,
                    "pixel_format": None,
                    "frames": None,
                    "pid": rec.pid,
                    "age_s": None,
                    "error": str(exc),
                }
            )
            continue
        age = (time.time_ns() - frame.timestamp_ns) / 1e9 if frame and frame.timestamp_ns else None
        rows.append(
            {
                "name": rec.name,
                "block": info.block,
                "shape": list(info.shape),
                "dtype": info.dtype,
                "pixel_format": info.pixel_format,
                "frames": written,
                "pid": rec.pid,
                "age_s": None if age is None else round(age, 3),
                "error": None,
            }
        )
    return rows


def list_command(args: argparse.Namespace) -> int:
    if args.remote:
        from viewer.net.cli import list_command

        return list_command(args)
    from viewer.stream.frames import size_text

    rows = stream_rows()
    if args.json:
        print(json.dumps(rows, allow_nan=False))
        return 0
    if not rows:
        print("no live streams")
        return 0
    table = [("NAME", "BLOCK", "SIZE", "FORMAT", "DTYPE", "FRAMES", "PID", "AGE")]
    errors = {len(table) + i: f"error: {r['error']}" for i, r in enumerate(rows) if r["error"]}
    for r in rows:
        if r["error"]:  # its columns say "-", and why goes after them: no column takes its width
            table.append((str(r["name"]), str(r["block"]), "-", "-", "-", "-", str(r["pid"]), "-"))
            continue
        age = "-" if r["age_s"] is None else f"{r['age_s']:.2f}s"
        table.append(
            (
                str(r["name"]),
                str(r["block"]),
                size_text(r["shape"]),  # type: ignore[arg-type]
                str(r["pixel_format"]),
                str(r["dtype"]),
                str(r["frames"]),
                str(r["pid"]),
                age,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        print(f"{line}  {errors[i]}" if i in errors else line.rstrip())
    return 0
