"""Edges a stranger found by trying to break shmview from the outside: each holds now."""

from __future__ import annotations

import math
import signal

import numpy as np
import pytest

from producers.convert import _to_dtype
from tests.support.helpers import cli, json_lines, producer, read_line, start, stop
from viewer import ConfigError, FormatError, FrameReader, FrameWriter

SMALL = ["--size", "64x48"]


def test_raw_mode_on_a_shmview_block_says_what_it_is():
    with producer("headered", *SMALL) as (_, block):
        done = cli("view", block, "--raw-shape", "48,64,3", "--count", "1")
    assert done.returncode == 1 and "shmview stream's block" in done.stdout + done.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_the_text_viewer_stops_cleanly_on_stop_signals(sig):
    with producer("textstop", *SMALL):
        viewer = start(["view", "textstop", "--headless", "--interval-ms", "50"])
        assert " live " in read_line(viewer)
        code, err = stop(viewer, sig)
    assert code == 0 and "Traceback" not in err, err


@pytest.mark.parametrize(("value", "dtype", "expected"), [
    (0.5, "uint8", 128), (1.0, "uint16", 65535), (2.0, "uint8", 255), (math.nan, "uint8", 0),
    (4000, "uint8", 16), (255, "float32", 1.0), (65535, "float64", 1.0),
])
def test_one_dtype_convention_for_frames_of_another_dtype(value, dtype, expected):
    source_dtype = "uint16" if value == 4000 or value == 65535 else ("uint8" if value == 255 else "float32")
    frame = np.full((2, 2), value, source_dtype)
    converted = _to_dtype(frame, dtype)
    assert converted.dtype == dtype and converted[0, 0] == pytest.approx(expected)


def test_a_big_endian_frame_is_written_as_the_stream_stores_it():
    with FrameWriter("endian", (2, 2), ">u2") as w, FrameReader("endian") as r:
        w.write(np.full((2, 2), 258, ">u2"))
        assert int(r.read().image.sum()) == 4 * 258


@pytest.mark.parametrize("stamp", [-1, 2**64, 1.5, "now"])
def test_a_timestamp_out_of_range_is_refused_and_nothing_published(stamp):
    with FrameWriter("stamps", (2, 2)) as w:
        with pytest.raises(FormatError, match="timestamp_ns"):
            w.write(np.zeros((2, 2), np.uint8), timestamp_ns=stamp)
        with pytest.raises(FormatError, match="timestamp_ns"), w.loan(timestamp_ns=stamp):
            pass
        assert w.frames_written == 0


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -1, "soon"])
def test_a_timeout_that_could_never_end_or_makes_no_sense_is_refused(timeout):
    with pytest.raises(ConfigError, match="timeout"):
        FrameReader.open("nothere", timeout=timeout)
    with FrameWriter("timeouts", (2, 2)) as w, FrameReader("timeouts") as r:
        w.write(np.zeros((2, 2), np.uint8))
        with pytest.raises(ConfigError, match="timeout"):
            r.wait(timeout, after=0)
        with pytest.raises(ConfigError, match="timeout"):
            next(r.frames(timeout))


def test_a_float_frame_that_overflows_its_sum_says_null_without_warnings():
    with FrameWriter("huge", (2, 2), "float64") as w:
        w.write(np.full((2, 2), 1.7e308))
        done = cli("view", "huge", "--json", "--count", "1")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert json_lines(done.stdout)[0]["sum"] is None


def test_list_shows_a_live_stream_it_cannot_read_instead_of_hiding_it():
    from pathlib import Path

    with FrameWriter("fine", (2, 2)), FrameWriter("broken", (2, 2)) as broken:
        with open(Path("/dev/shm") / broken.block_name, "r+b") as f:
            f.write(b"garbage!")
        rows = {r["name"]: r for r in json_lines(cli("list", "--json").stdout)[0]}
        text = cli("list").stdout
    assert rows["fine"]["error"] is None and "no shmview header" in rows["broken"]["error"]
    assert any(line.startswith("broken ") and "error:" in line for line in text.splitlines())


def test_a_header_rewritten_under_a_running_viewer_is_an_error_it_shows():
    from pathlib import Path

    from viewer.view.monitor import ERROR, LIVE, StreamMonitor

    with FrameWriter("rewritten", (2, 2)) as w:
        w.write(np.zeros((2, 2), np.uint8))
        monitor = StreamMonitor("rewritten")
        try:
            assert monitor.poll().state == LIVE
            with open(Path("/dev/shm") / w.block_name, "r+b") as f:
                f.seek(16)
                f.write((3).to_bytes(4, "little"))  # the height, changed under the viewer
            status = monitor.poll()
            assert status.state == ERROR and "header changed" in status.error
        finally:
            monitor.close()
