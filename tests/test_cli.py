"""The shmview command line, end to end, as a user runs it."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.support.helpers import CLI as CLI_CMD
from tests.support.helpers import cli, json_lines, producer, read_line, registered, start, stop, wait_for
from viewer import FrameWriter
from viewer.cli.main import build_parser, main
from viewer.gui.display import display_problem

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


def test_producer_stops_by_itself_after_n_frames():
    proc = start(["produce", "synthetic", "--name", "short", "--frames", "3", "--fps", "0", *SMALL])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("stream short ready")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_producer_stops_cleanly_on_signals_and_says_why(sig):
    with producer("sig", *SMALL) as (proc, block):
        assert Path("/dev/shm", block).exists()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert not Path("/dev/shm", block).exists()
    assert "Traceback" not in err and "leaked" not in err
    assert re.fullmatch(rf"stream sig stopped after [\d,]+ frames?: signal {sig.name}\n", out), out


def test_a_stream_too_big_for_shared_memory_is_refused_before_any_frame():
    synthetic = cli("produce", "synthetic", "--name", "huge", "--size", "16384x16384", "--slots", "64")
    folder = cli("produce", "folder", "--name", "huge", "--path", "/nonexistent", "--size", "16384x16384",
                 "--channels", "3", "--slots", "64")  # refused before the folder is even looked at
    for done in (synthetic, folder):
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and "cannot allocate" in done.stderr
        assert done.stdout == ""


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


def test_second_producer_of_a_live_name_fails_and_the_first_goes_on():
    with producer("taken", *SMALL) as (_, block):
        done = cli("produce", "synthetic", "--name", "taken", *SMALL)
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and "already being produced" in done.stderr
        assert json_lines(cli("view", "taken", "--headless", "--json", "--count", "1").stdout)[0]["block"] == block


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


def test_demo_runs_a_producer_and_a_headless_viewer():
    done = cli("demo", "--headless", "--count", "3", "--name", "demo-test")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("stream demo-test ready")
    assert all(" live " in line or " waiting" in line for line in lines[1:]) and len(lines) == 4


# Bad input: one line on stderr, the documented exit code, and nothing else harmed.

def test_unknown_stream_exits_3_and_names_the_live_ones():
    with producer("alive", *SMALL):
        done = cli("view", "missing", "--headless", "--timeout", "0.3")
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "'missing'" in done.stderr and "alive" in done.stderr


@pytest.mark.parametrize("name", ["a/b", "x" * 300, "", "-", ".x", ".", "..", "bad name!"])
def test_invalid_names_exit_2_at_once_for_producers_and_viewers(name):
    done = cli("produce", "synthetic", "--name", name)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "invalid stream name" in done.stderr
    for view in (["view", name], ["view", name, "--headless"], ["demo", "--name", name]):  # a window would wait forever
        done = cli(*view, timeout=20)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "invalid stream name" in done.stderr


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


@pytest.mark.parametrize(
    "argv",
    [["produce", "synthetic"], ["view"], ["bogus"], ["produce", "synthetic", "--name", "x", "--size", "big"],
     ["view", "x", "--raw-shape", "1,a"], ["view", "x", "--count", "0"],
     ["produce", "synthetic", "--name", "x", "--fps", "-5"], ["produce", "synthetic", "--name", "x", "--fps", "nan"],
     ["produce", "synthetic", "--name", "x", "--slots", "0"], ["produce", "synthetic", "--name", "x", "--slots", "65"],
     ["produce", "synthetic", "--name", "x", "--frames", "0"], ["produce", "folder", "--name", "x", "--path", ".",
                                                                 "--threads", "0"],
     ["produce", "video", "--name", "x", "--path", "v", "--fps", "inf"], ["view", "x", "--timeout", "-1"],
     ["view", "x", "--interval-ms", "0"], ["view", "x", "--levels", "5,1"], ["view", "x", "--raw-shape", "2,2,9"],
     ["view", "x", "--raw-shape", "2,2", "--dtype", "int64"], ["produce", "synthetic", "--name", "x", "--size", "0x5"]],
    ids=str,
)
def test_usage_errors_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("shmview")


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


def test_without_a_display_the_demo_says_so_and_runs_headless():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    demo = subprocess.Popen([*CLI_CMD, "demo", "--name", "nodisplay"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert read_line(demo).startswith("stream nodisplay ready")
        wait_for(lambda: " live " in read_line(demo), what="text lines instead of a window")
    finally:
        code, err = stop(demo)
    assert code == 0, err
    assert err.startswith("shmview: no display: DISPLAY, WAYLAND_DISPLAY and QT_QPA_PLATFORM are not set;")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_demo_stopped_by_a_signal_stops_its_producer_too(sig):
    demo = start(["demo", "--headless", "--name", "demo-sig"])
    try:
        assert read_line(demo).startswith("stream demo-sig ready")
        wait_for(lambda: " live " in read_line(demo), what="the demo live")
        kids = psutil.Process(demo.pid).children(recursive=True)
    finally:
        code, err = stop(demo, sig)
    assert code == 0, err
    wait_for(lambda: not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids), what="producer gone")


def test_demo_ends_when_its_producer_is_stopped():
    demo = start(["demo", "--headless", "--name", "demo-lone"])
    try:
        assert read_line(demo).startswith("stream demo-lone ready")
        wait_for(lambda: " live " in read_line(demo), what="the demo live")
        (producer_process,) = [p for p in psutil.Process(demo.pid).children() if "produce" in " ".join(p.cmdline())]
        producer_process.terminate()
        _, err = demo.communicate(timeout=60)
    finally:
        stop(demo)
    assert demo.returncode == 1 and "the demo producer stopped (exit 0)" in err


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


def _free_x_display() -> int:
    return next(n for n in range(99, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists())


def test_a_stale_display_falls_back_to_text_with_one_line_saying_why():
    n = _free_x_display()
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["DISPLAY"] = f":{n}"
    done = subprocess.run([*CLI_CMD, "view", "nowhere", "--timeout", "0.2"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 3  # as text: the stream is not there; Qt never aborted (134)
    first = done.stderr.splitlines()[0]
    assert first == f"shmview: no display: cannot connect to X server :{n}; showing the stream as text"
    assert "xcb" not in done.stderr


def test_display_probe(tmp_path):
    n = _free_x_display()
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert "not set" in display_problem({})
    assert display_problem({"DISPLAY": f":{n}"}) == f"cannot connect to X server :{n}"
    assert display_problem({"DISPLAY": "elsewhere.example:0"}) is None  # not probed: Qt tries it
    assert "cannot connect to Wayland" in display_problem({"WAYLAND_DISPLAY": "w-0", "XDG_RUNTIME_DIR": str(tmp_path)})
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "w-1"))
        server.listen()
        assert display_problem({"WAYLAND_DISPLAY": "w-1", "XDG_RUNTIME_DIR": str(tmp_path)}) is None
        assert display_problem({"WAYLAND_DISPLAY": str(tmp_path / "w-1"), "QT_QPA_PLATFORM": "xcb"}) is not None


def test_headless_schedule_starts_again_after_a_stall(monkeypatch):
    from viewer.view import headless

    clock = [100.0]
    monkeypatch.setattr(headless.time, "monotonic", lambda: clock[0])
    schedule = headless.Schedule(0.1)
    clock[0] += 0.05
    assert math.isclose(schedule.delay(), 0.05)
    clock[0] += 5.0  # the machine stalled (suspend, swap): no burst of catch-up lines
    assert schedule.delay() == 0.0
    assert math.isclose(schedule.delay(), 0.1)


# Words and help ------------------------------------------------------------------------------

def test_sizes_read_width_by_height_for_people():
    with producer("wxh", *SMALL):
        text = cli("view", "wxh", "--headless", "--count", "1").stdout
        listed = cli("list").stdout
    assert f"{W}x{H} BGR uint8" in text and f"{W}x{H}" in listed
    out = cli("produce", "synthetic", "--name", "ready", *SMALL, "--frames", "1").stdout
    assert out.startswith("stream ready ready: block psm_") and f", {W}x{H} BGR uint8, 3 slots" in out


def _every_parser(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _every_parser(sub)


def test_every_option_has_help_and_every_default_is_shown():
    for parser in _every_parser(build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue  # each subcommand has its own help, checked below
            assert action.help, f"{parser.prog} {action.option_strings or action.dest} has no help"
            shown = action.help == "==SUPPRESS==" or action.default in (None, False, "==SUPPRESS==")
            assert shown or "default" in action.help or f"default: {action.default}" in " ".join(text.split())
        assert "exit codes:" in text, parser.prog
    assert "(default: gradient)" in cli("produce", "synthetic", "--help").stdout


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("shmview 0.")


def test_display_probe_follows_the_platform_qt_was_told_to_use():
    assert display_problem({"QT_QPA_PLATFORM": "xcb"}) == "QT_QPA_PLATFORM is xcb but DISPLAY is not set"
    stale = {"QT_QPA_PLATFORM": "xcb", "DISPLAY": f":{_free_x_display()}"}
    assert "cannot connect to X server" in display_problem(stale)


@pytest.mark.parametrize("problem", ["deaf", "bogus-platform"])
def test_a_display_that_never_answers_or_a_platform_qt_lacks_falls_back_to_text(problem):
    """An X server that accepts connections but never answers would leave Qt waiting
    forever, deaf to signals; a platform Qt has no plugin for would abort it."""
    n = _free_x_display()
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "DISPLAY")}
    env |= {"DISPLAY": f":{n}"} if problem == "deaf" else {"QT_QPA_PLATFORM": "bogus"}
    Path("/tmp/.X11-unix").mkdir(mode=0o1777, exist_ok=True)
    with socket.socket(socket.AF_UNIX) as deaf_server:
        deaf_server.bind(f"/tmp/.X11-unix/X{n}")
        deaf_server.listen()
        try:
            done = subprocess.run([*CLI_CMD, "view", "nowhere", "--timeout", "0.2"], env=env, capture_output=True,
                                  text=True, timeout=60)
        finally:
            Path(f"/tmp/.X11-unix/X{n}").unlink()
    assert done.returncode == 3, done.stderr
    first = done.stderr.splitlines()[0]
    why = f"X server :{n} does not answer" if problem == "deaf" else "which Qt has no plugin for"
    assert first.startswith("shmview: no display: ") and why in first and first.endswith("showing the stream as text")


def test_kill_9_of_the_demo_takes_its_producer_with_it():
    demo = start(["demo", "--headless", "--name", "demo-k9"])
    try:
        assert read_line(demo).startswith("stream demo-k9 ready")
        (child,) = [p for p in psutil.Process(demo.pid).children() if "produce" in " ".join(p.cmdline())]
        demo.kill()
        demo.wait()
        wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, timeout=10,
                 what="the demo's producer to stop")
        wait_for(lambda: "demo-k9" not in cli("list").stdout, timeout=10, what="its stream gone")
    finally:
        stop(demo)
