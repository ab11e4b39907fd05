"""`shmview view` without a window, end to end, as a user runs it: text and JSON lines, raw
blocks, and streams that are missing, bad, late, rewritten or restarted."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tests.support.blocks import SHM
from tests.support.helpers import cli, json_lines, producer, read_line, registered, start, stop, wait_for
from viewer import FrameWriter
from viewer.stream.frames import LIVE, STALE

H, W, C = 48, 64, 3
SMALL = ["--size", f"{W}x{H}"]


def test_headless_json_sums_match_the_solid_pattern():
    with producer("e2e", *SMALL):
        done = cli("view", "e2e", "--headless", "--json", "--count", "5", "--interval-ms", "50")
    assert done.returncode == 0, done.stderr
    lines = json_lines(done.stdout)
    assert len(lines) == 5
    for line in lines:
        assert line["state"] == "live"
        assert line["sum"] == (line["frame"] % 256) * H * W * C
        assert line["shape"] == [H, W, C] and line["dtype"] == "uint8"
        assert set(line) >= {"stream", "frame", "sum", "shape", "dtype", "state", "fps", "latency_ms"}
    assert lines[-1]["frame"] > lines[0]["frame"]


def test_headless_text_line_shows_index_and_exact_sum():
    with producer("text", *SMALL, "--channels", "1"):
        done = cli("view", "text", "--headless", "--count", "1")
    assert done.returncode == 0, done.stderr
    fields = done.stdout.split()
    frame = int(fields[fields.index("frame") + 1])
    assert fields[fields.index("sum") + 1] == f"{(frame % 256) * H * W:,}"


def test_raw_mode_reads_a_bare_block_from_a_plain_numpy_program():
    script = Path(__file__).parent / "support" / "bare_producer.py"
    bare = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    try:
        block = read_line(bare).strip()
        raw = ["--raw-shape", "480,640,3", "--dtype", "uint8"]
        done = cli("view", block, *raw, "--headless", "--json", "--count", "2")
        assert done.returncode == 0, done.stderr
        for line in json_lines(done.stdout):
            assert line["sum"] == 5 * 480 * 640 * 3 and line["frame"] is None and line["state"] == "live"
        too_big = cli("view", block, "--raw-shape", "1080,1920,3", "--headless", "--count", "1")
        assert too_big.returncode == 1  # an error line, as for any bad stream, and exit 1 at the end
        assert too_big.stdout.startswith(f"{block}  error  ") and "needs 6,220,800" in too_big.stdout
    finally:
        bare.communicate("\n", timeout=30)  # it unlinks its block and exits


# Bad input: one line on stderr, the documented exit code, and nothing else harmed.


def test_unknown_stream_exits_3_and_names_the_live_ones():
    with producer("alive", *SMALL):
        done = cli("view", "missing", "--headless", "--timeout", "0.3")
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "'missing'" in done.stderr and "alive" in done.stderr


def test_a_missing_raw_block_is_named_as_a_block():
    done = cli("view", "psm_nothere", "--raw-shape", "2,2", "--headless", "--timeout", "0.2")
    assert done.returncode == 3 and done.stderr == "shmview: error: no shared-memory block 'psm_nothere' after 0.2 s\n"


@pytest.mark.parametrize("name", [".", "..", "/", "a/b"])
def test_invalid_block_names_in_raw_mode_exit_2(name):
    done = cli("view", name, "--raw-shape", "2,2", timeout=20)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "invalid block name" in done.stderr


def test_raw_mode_given_a_stream_name_says_what_it_is():
    with producer("notraw", *SMALL):
        done = cli("view", "notraw", "--raw-shape", f"{H},{W},{C}", "--headless", timeout=20)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "'notraw' is a shmview stream" in done.stderr and "without --raw-shape" in done.stderr


@contextmanager
def garbage_stream(name: str) -> Iterator[None]:
    """A live stream (its record locked by this process) whose block has no shmview header."""
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(create=True, size=4096)
    try:
        shm.buf[:16] = b"not a header at!"
        with registered(name, shm.name, created_ns=1):
            yield
    finally:
        shm.close()
        shm.unlink()


def test_a_bad_stream_is_an_error_line_and_the_others_go_on():
    with garbage_stream("garbage"), producer("fine", *SMALL):
        as_json = cli("view", "garbage", "fine", "--json", "--count", "3", "--interval-ms", "50")
        as_text = cli("view", "garbage", "fine", "--headless", "--count", "1")
    assert as_json.returncode == 1, as_json.stderr  # the last look at a stream was an error
    lines = json_lines(as_json.stdout)
    assert [line["stream"] for line in lines] == ["garbage", "fine"] * 3
    for bad, good in zip(lines[::2], lines[1::2], strict=True):
        assert bad["state"] == "error" and "no shmview header" in bad["error"] and bad["frame"] is None
        assert good["state"] == "live" and good["error"] is None
    bad_line = as_text.stdout.splitlines()[0]
    assert bad_line.startswith("garbage  error  ") and "no shmview header" in bad_line
    assert " live " in as_text.stdout.splitlines()[1]


def test_viewer_waits_for_a_stream_that_appears_later():
    viewer = start(["view", "later", "--headless", "--json", "--timeout", "60", "--interval-ms", "50"])
    try:
        assert '"waiting"' in read_line(viewer)
        with producer("later", *SMALL):
            wait_for(lambda: '"live"' in read_line(viewer), what="the viewer to go live")
    finally:
        stop(viewer)


# Machine-readable output and automation ------------------------------------------------------


def _strict(text: str) -> list[dict]:
    """JSON lines as a strict parser (JSON.parse) reads them: NaN and Infinity are errors."""

    def refuse(word: str) -> None:
        raise AssertionError(f"not strict JSON: {word}")

    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def test_json_is_strict_when_frames_hold_nan_and_infinity():
    frame = np.ones((H, W), np.float32)
    frame[0, :3] = [np.nan, np.inf, -np.inf]
    with FrameWriter("floaty", (H, W), "float32") as writer:
        writer.write(frame)
        done = cli("view", "floaty", "--json", "--count", "1")
        text = cli("view", "floaty", "--headless", "--count", "1")
    assert done.returncode == 0, done.stderr
    (line,) = _strict(done.stdout)
    assert line["sum"] is None and line["nonfinite"] == 3
    assert line["producer_pid"] == os.getpid() and line["timestamp_ns"] > 0 and line["error"] is None
    assert "(3 non-finite)" in text.stdout


def test_json_lines_carry_timestamps_pids_and_skipped_frames():
    with producer("skips", *SMALL, "--fps", "200") as (proc, _):
        done = cli("view", "skips", "--json", "--count", "4", "--interval-ms", "100")
    assert done.returncode == 0, done.stderr
    lines = _strict(done.stdout)
    assert lines[0]["skipped"] == 0  # counted from the viewer's first line on
    for before, line in itertools.pairwise(lines):
        assert line["skipped"] == line["frame"] - before["frame"] - 1
        assert line["producer_pid"] == proc.pid and line["timestamp_ns"] >= before["timestamp_ns"]
    assert sum(line["skipped"] for line in lines) > 0  # 200 fps against a look every 100 ms


def test_json_and_count_never_open_a_window():
    # conftest sets QT_QPA_PLATFORM=offscreen: a display, so only --json / --count keep us headless
    with producer("nowindow", *SMALL):
        counted = cli("view", "nowindow", "--count", "2", timeout=30)
        as_json = cli("view", "nowindow", "--json", "--count", "1", timeout=30)
    assert counted.returncode == 0 and len(counted.stdout.splitlines()) == 2, counted.stderr
    assert as_json.returncode == 0 and _strict(as_json.stdout)[0]["state"] == "live"


def test_count_reached_while_a_stream_never_appeared_exits_3():
    with producer("present", *SMALL):
        done = cli("view", "present", "absent", "--json", "--count", "2", "--timeout", "60")
    assert done.returncode == 3 and done.stderr.count("\n") == 1 and "'absent'" in done.stderr
    assert len(_strict(done.stdout)) == 4


def test_kill_9_of_a_reader_does_not_disturb_producer_or_other_readers():
    with producer("sturdy", *SMALL) as (proc, block):
        victim = start(["view", "sturdy", "--headless", "--json", "--interval-ms", "20"])
        other = start(["view", "sturdy", "--headless", "--json", "--interval-ms", "20"])
        try:
            for v in (victim, other):
                wait_for(lambda v=v: '"live"' in read_line(v), what="viewers live")
            victim.kill()
            victim.wait()
            seen = [json_lines(read_line(other))[0]["frame"] for _ in range(5)]
            assert seen[-1] > seen[0]  # still following new frames
            assert proc.poll() is None and Path("/dev/shm", block).exists()
        finally:
            stop(victim)
            stop(other)


def test_restarted_producer_is_followed_live_stale_live():
    viewer = start(["view", "phoenix", "--headless", "--json", "--interval-ms", "50", "--timeout", "60"])
    try:
        states: list[tuple[str, int | None]] = []

        def record_until(state: str) -> bool:
            line = json_lines(read_line(viewer))[0]
            states.append((line["state"], line["frame"]))
            return line["state"] == state and line["frame"] is not None

        with producer("phoenix", *SMALL) as (proc, first_block):
            wait_for(lambda: record_until(LIVE), what="live")
            wait_for(lambda: record_until(LIVE) and states[-1][1] > 20, what="some frames")
            before = states[-1][1]
            proc.kill()  # the harshest stop; SIGTERM is the polite one
        wait_for(lambda: record_until(STALE), what="stale")
        with producer("phoenix", *SMALL) as (_, second_block):
            assert second_block != first_block
            wait_for(lambda: record_until(LIVE) and states[-1][1] < before, what="live again, counting anew")
    finally:
        stop(viewer)
    order = [s for i, (s, _) in enumerate(states) if i == 0 or states[i - 1][0] != s]
    assert order[-3:] == [LIVE, STALE, LIVE], order


def test_raw_mode_on_a_shmview_block_says_what_it_is():
    with producer("headered", *SMALL) as (_, block):
        done = cli("view", block, "--raw-shape", "48,64,3", "--count", "1")
    assert done.returncode == 1 and "shmview stream's block" in done.stdout + done.stderr


def test_a_float_frame_that_overflows_its_sum_says_null_without_warnings():
    with FrameWriter("huge", (2, 2), "float64") as w:
        w.write(np.full((2, 2), 1.7e308))
        done = cli("view", "huge", "--json", "--count", "1")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert json_lines(done.stdout)[0]["sum"] is None


def test_a_viewer_shows_a_bad_stream_and_goes_on_with_the_good_one():
    with FrameWriter("good", (4, 4)) as good, FrameWriter("bad", (4, 4)) as bad:
        good.write(np.ones((4, 4), np.uint8))
        with open(SHM / bad.block_name, "r+b") as f:
            f.write(b"garbage!")  # its header is no longer a shmview header
        viewer = start(["view", "good", "bad", "--headless", "--json", "--interval-ms", "50"])
        try:
            lines = [json_lines(read_line(viewer))[0] for _ in range(6)]
        finally:
            stop(viewer)
    by_stream = {line["stream"]: line for line in lines}
    assert by_stream["good"]["state"] == "live" and by_stream["good"]["sum"] == 16
    assert by_stream["bad"]["state"] == "error" and "no shmview header" in by_stream["bad"]["error"]
