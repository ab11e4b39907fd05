"""The shmview command line, end to end, as a user runs it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.helpers import CLI as CLI_CMD
from tests.helpers import cli, json_lines, producer, read_line, start, stop, wait_for
from viewer.__main__ import main

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
def test_producer_stops_cleanly_on_signals(sig):
    with producer("sig", *SMALL) as (proc, block):
        assert Path("/dev/shm", block).exists()
        code, err = stop(proc, sig)
    assert code == 0, err
    assert not Path("/dev/shm", block).exists()
    assert "Traceback" not in err and "leaked" not in err


def test_list_shows_a_live_stream_and_forgets_it_after_its_producer_stops():
    with producer("listed", *SMALL) as (proc, block):
        shown = cli("list")
        assert shown.returncode == 0
        row = next(line for line in shown.stdout.splitlines() if line.startswith("listed "))
        assert block in row and f"{H}x{W}x{C}" in row and str(proc.pid) in row
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
    script = Path(__file__).with_name("bare_producer.py")
    bare = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    try:
        block = read_line(bare).strip()
        raw = ["--raw-shape", "480,640,3", "--dtype", "uint8"]
        done = cli("view", block, *raw, "--headless", "--json", "--count", "2")
        assert done.returncode == 0, done.stderr
        for line in json_lines(done.stdout):
            assert line["sum"] == 5 * 480 * 640 * 3 and line["frame"] is None and line["state"] == "live"
        too_big = cli("view", block, "--raw-shape", "1080,1920,3", "--headless")
        assert too_big.returncode == 1
        assert "needs 6,220,800" in too_big.stderr and too_big.stderr.count("\n") == 1
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


@pytest.mark.parametrize("name", ["a/b", "x" * 300, "", "-", ".x"])
def test_invalid_names_exit_2(name):
    done = cli("produce", "synthetic", "--name", name)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "invalid stream name" in done.stderr
    if "/" in name or len(name) > 250 or not name:  # not even a block name
        done = cli("view", name, "--headless", "--timeout", "0")
        assert done.returncode == 2 and done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [["produce", "synthetic"], ["view"], ["bogus"], ["produce", "synthetic", "--name", "x", "--size", "big"],
     ["view", "x", "--raw-shape", "1,a"], ["view", "x", "--count", "0"]],
    ids=str,
)
def test_usage_errors_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("shmview")


def test_garbage_header_is_one_clear_line_exit_1():
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(create=True, size=4096)
    try:
        shm.buf[:16] = b"not a header at!"
        done = cli("view", shm.name, "--headless", "--count", "1")
        assert done.returncode == 1
        assert "no shmview header" in done.stderr and done.stderr.count("\n") == 1
    finally:
        shm.close()
        shm.unlink()


def test_viewer_waits_for_a_stream_that_appears_later():
    viewer = start(["view", "later", "--headless", "--json", "--timeout", "60", "--interval-ms", "50"])
    try:
        assert '"waiting"' in read_line(viewer)
        with producer("later", *SMALL):
            wait_for(lambda: '"live"' in read_line(viewer), what="the viewer to go live")
    finally:
        stop(viewer)


def test_without_a_display_the_demo_says_so_and_runs_headless():
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run(
        [*CLI_CMD, "demo", "--count", "2", "--name", "nodisplay"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "no display" in done.stderr
    assert len(done.stdout.splitlines()) == 3


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
