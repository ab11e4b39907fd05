"""`shmview list`: the live streams, and whatever else sits in the registry folder."""

from __future__ import annotations

import os

import pytest

from tests.support.helpers import cli, json_lines, producer, stop
from viewer import FrameWriter
from viewer.stream.registry import registry_dir

H, W, C = 48, 64, 3
SMALL = ["--size", f"{W}x{H}"]


def test_list_shows_a_live_stream_and_forgets_it_after_its_producer_stops():
    with producer("listed", *SMALL) as (proc, block):
        shown = cli("list")
        assert shown.returncode == 0
        row = next(line for line in shown.stdout.splitlines() if line.startswith("listed "))
        assert block in row and f"{W}x{H}" in row and str(proc.pid) in row
        rows = json_lines(cli("list", "--json").stdout)[0]
        assert [r["name"] for r in rows] == ["listed"]
        stop(proc)
    assert "listed" not in cli("list").stdout


def test_list_shows_a_live_stream_it_cannot_read_instead_of_hiding_it():
    from pathlib import Path

    with FrameWriter("fine", (2, 2)), FrameWriter("broken", (2, 2)) as broken:
        with open(Path("/dev/shm") / broken.block_name, "r+b") as f:
            f.write(b"garbage!")
        rows = {r["name"]: r for r in json_lines(cli("list", "--json").stdout)[0]}
        text = cli("list").stdout
    assert rows["fine"]["error"] is None and "no shmview header" in rows["broken"]["error"]
    assert any(line.startswith("broken ") and "error:" in line for line in text.splitlines())
    # the error follows the row's columns, which keep their widths: no row is padded to its length
    header, *lines = text.splitlines()
    fine = next(line for line in lines if line.startswith("fine "))
    assert len(fine) <= len(header) + 12 and header.index("SIZE") == fine.index("2x2")
    row = next(line for line in lines if line.startswith("broken "))
    assert row[header.index("SIZE")] == "-" and row.index("error:") > header.index("AGE")


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe\x00",
        b'{"name": "x", "block": "../etc", "pid": 1, "created_ns": 1}',
        b'{"name": "x", "block": "psm_1", "pid": 99999999999, "created_ns": 1}',
        b"[1, 2]",
        b"x" * 100_000,
    ],
)
def test_a_corrupt_registry_record_is_skipped_by_list(content):
    bad = registry_dir() / "bogus.json"
    bad.write_bytes(content)
    try:
        done = cli("list", "--json")
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert json_lines(done.stdout) == [[]]
    finally:
        bad.unlink(missing_ok=True)


def test_odd_files_in_the_registry_never_hang_or_crash_list(tmp_path):
    reg = registry_dir()
    os.mkfifo(reg / "fifo.json")
    (reg / "folder.json").mkdir()
    (reg / "link.json").symlink_to(tmp_path / "nowhere")
    try:
        done = cli("list", timeout=30)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    finally:
        for leftover in ("fifo.json", "link.json"):
            (reg / leftover).unlink(missing_ok=True)
        (reg / "folder.json").rmdir()
