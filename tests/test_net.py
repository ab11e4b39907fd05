"""shmview beyond one machine: share, bridge and list --remote over Zenoh, through real
processes, on loopback only.

Most go through `local`, the user's own unix socket in the test's private registry folder;
one through an explicit tcp/127.0.0.1:<free port> with --insecure. Every session has
multicast scouting off (shmview's default), so nothing is sent to any other address. Run
them in a network namespace of their own to be sure (see docs/network.md).
test_net_security.py has who may connect (sockets, mutual TLS, hostile peers).
"""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from producers.synthetic import SyntheticSource
from tests.support.helpers import cli, json_lines, producer, wait_for
from tests.support.net import ended, free_port, loopback_tcp, no_zenoh_files, open_mirror, running, try_open
from viewer import FrameReader, FrameWriter
from viewer.errors import StreamNotFoundError
from viewer.net.codec import Header, codec_for, decode, encode
from viewer.net.config import NetOptions, clean_host_id, get, split_key, stream_key, zenoh_config
from viewer.view.monitor import StreamMonitor

__all__ = ["no_zenoh_files"]  # the autouse fixture, imported to run here too

H, W = 120, 160  # small frames: the tests are about behaviour, the benchmark about speed
SIZE = f"{W}x{H}"
JPEG_MIN_PSNR_DB = 30.0  # quality 90, gradient pattern (its wrap from 255 to 0 is a hard edge)


def share(*names: str, mode: str = "--listen", extra: tuple[str, ...] = (), at: str = "local"):
    return running(["share", *names, mode, at, "--host-id", "robot", *extra], "share:")


def bridge(*extra: str, mode: str = "--connect", at: str = "local"):
    return running(["bridge", mode, at, *extra], "bridge:")


def origin_index(frame) -> int:
    return frame.meta["_origin"]["index"]


# -- through real processes ---------------------------------------------------------------


def test_solid_stream_shared_raw_arrives_bit_exact_and_in_order():
    with producer("cam0", "--size", SIZE, "--fps", "60"), share("cam0"), bridge(), open_mirror("robot.cam0") as mirror:
        frames = [f for _, f in zip(range(40), mirror.frames(timeout=10), strict=False)]
    indices = [origin_index(f) for f in frames]
    assert indices == sorted(set(indices)), "frames out of order or repeated"
    for f in frames:
        assert f.image.shape == (H, W, 3)
        assert int(f.image.sum(dtype=np.uint64)) == (origin_index(f) % 256) * H * W * 3
        assert f.meta["_origin"] == {
            "host": "robot",
            "key": "shmview/robot/cam0",
            "codec": "raw",
            "index": origin_index(f),
        }


def test_view_of_a_mirrored_stream_says_where_it_comes_from():
    with producer("cam0", "--size", SIZE, "--fps", "30"), share("cam0"), bridge(), open_mirror("robot.cam0") as mirror:
        mirror.wait(10)
        as_json = cli("view", "robot.cam0", "--json", "--count", "1")
        as_text = cli("view", "robot.cam0", "--headless", "--count", "1")
    assert json_lines(as_json.stdout)[0]["origin"]["host"] == "robot"
    assert "from robot, raw" in as_text.stdout


def test_jpeg_arrives_within_the_stated_error():
    reference = SyntheticSource("gradient", W, H, 3)
    with (
        producer("cam0", "--size", SIZE, "--fps", "30", pattern="gradient"),
        share("cam0", extra=("--codec", "jpeg", "--quality", "90")),
        bridge(),
        open_mirror("robot.cam0") as mirror,
    ):
        frames = [f for _, f in zip(range(10), mirror.frames(timeout=10), strict=False)]
    for f in frames:
        assert f.meta["_origin"]["codec"] == "jpeg"
        error = f.image.astype(np.float64) - reference._gradient(origin_index(f))
        psnr = 10 * np.log10(255**2 / np.mean(error**2))
        assert psnr >= JPEG_MIN_PSNR_DB, psnr


def test_killed_sharer_makes_the_mirror_stale_within_2_s_then_live_after_a_restart():
    with producer("cam0", "--size", SIZE, "--fps", "30"), bridge(mode="--listen"):
        args = ["share", "cam0", "--connect", "local", "--host-id", "robot"]
        with running(args, "share:") as sharer:
            sharer.wait("sharing cam0")
            monitor = StreamMonitor("robot.cam0")
            wait_for(lambda: monitor.poll().state == "live", what="the mirror live")
            ended(sharer.proc, signal.SIGKILL)
            wait_for(lambda: monitor.poll().state == "stale", timeout=2.0, what="STALE within 2 s")
        with running(args, "share:"):
            wait_for(lambda: monitor.poll().state == "live", what="the mirror live again")
            assert monitor.poll().frame is not None
        monitor.close()


def test_a_stopped_producer_makes_the_mirror_stale_and_its_restart_live_again():
    with share("cam0"), bridge():
        with producer("cam0", "--size", SIZE, "--fps", "30"):
            monitor = StreamMonitor("robot.cam0")
            wait_for(lambda: monitor.poll().state == "live", what="the mirror live")
        wait_for(lambda: monitor.poll().state == "stale", what="the mirror stale once its producer stopped")
        with producer("cam0", "--size", SIZE, "--fps", "30"):
            wait_for(lambda: monitor.poll().state == "live", what="the mirror live again")
        monitor.close()


def test_max_fps_sends_only_some_frames():
    with (
        producer("cam0", "--size", SIZE, "--fps", "60"),
        share("cam0", extra=("--max-fps", "5")),
        bridge(),
        open_mirror("robot.cam0") as mirror,
    ):
        indices = [origin_index(f) for _, f in zip(range(4), mirror.frames(timeout=10), strict=False)]
    assert all(b - a > 1 for a, b in itertools.pairwise(indices)), indices


def test_sharing_goes_on_when_the_writer_laps_the_ring_during_an_encode():
    """An unpaced producer rewrites its 3-slot ring many times while PNG encodes one frame:
    the share copies the frame out and encodes the copy, and never stops sharing."""
    reference = SyntheticSource("gradient", 640, 480, 3)
    with (
        producer("fast", "--size", "640x480", "--fps", "0", pattern="gradient"),
        share("fast", extra=("--codec", "png")),
        bridge(),
        open_mirror("robot.fast") as mirror,
    ):
        frames = [f for _, f in zip(range(5), mirror.frames(timeout=10), strict=False)]
    assert len(frames) == 5
    for f in frames:
        assert np.array_equal(f.image, reference._gradient(origin_index(f))), "a torn frame was sent"


def test_two_bridges_on_one_share_that_shares_every_stream_even_later_ones_over_insecure_tcp():
    tcp = loopback_tcp(free_port())
    with (
        share(at=tcp, extra=("--insecure",)),
        bridge("--prefix", "a.", "--insecure", at=tcp),
        bridge("--prefix", "b.", "--insecure", at=tcp),
        producer("late", "--size", SIZE, "--fps", "30"),
    ):
        for name in ("a.robot.late", "b.robot.late"):
            with open_mirror(name) as mirror:
                frame = mirror.wait(10)
                assert int(frame.image.sum(dtype=np.uint64)) == (origin_index(frame) % 256) * H * W * 3


def test_a_producer_that_changes_shape_is_mirrored_in_its_new_shape_with_metadata():
    with share("var"), bridge("shmview/robot/*"):
        for shape in ((H, W, 3), (2 * H, W)):
            with FrameWriter("var", shape) as writer:

                def arrived(writer=writer, shape=shape):
                    writer.write(np.full(shape, 7, np.uint8), meta={"boxes": [[1, 2, 3, 4]]})
                    mirror = try_open("robot.var")
                    if mirror is None:
                        return None
                    with mirror:
                        frame = mirror.read()
                    return frame if frame is not None and frame.image.shape == shape else None

                frame = wait_for(arrived, what=f"a mirrored frame of shape {shape}")
                assert frame.meta["boxes"] == [[1, 2, 3, 4]] and int(frame.image.max()) == 7


def test_list_remote_shows_host_shape_codec_and_rate():
    with producer("cam0", "--size", SIZE, "--fps", "30"), share("cam0", extra=("--codec", "png")) as sharer:
        sharer.wait("sharing cam0")

        def listed():
            rows = json_lines(cli("list", "--remote", "--connect", "local", "--json").stdout)[0]
            return rows if rows and rows[0]["fps"] else None

        (row,) = wait_for(listed, what="the remote stream listed with a rate")
    assert row["host"] == "robot" and row["name"] == "cam0" and row["key"] == "shmview/robot/cam0"
    assert row["shape"] == [H, W, 3] and row["codec"] == "png" and row["fps"] > 0


def test_list_remote_with_nobody_there_says_so():
    result = cli("list", "--remote", "--connect", "local")
    assert result.returncode == 1 and "no Zenoh peer or router reached" in result.stderr


@pytest.mark.parametrize("command", [["share", "cam0"], ["bridge"], ["list", "--remote"]])
def test_no_endpoint_is_a_usage_error(command):
    result = cli(*command)
    assert result.returncode == 2 and "--connect ENDPOINT" in result.stderr


def test_bad_endpoint_and_host_id_are_usage_errors():
    assert cli("share", "--listen", "127.0.0.1:7447").returncode == 2
    assert cli("share", "--listen", "local", "--host-id", "...").returncode == 2


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [
        ("tcp/127.0.0.1:99999", "a port from 0 to 65535"),
        ("tcp/127.0.0.1:abc", "a port from 0 to 65535"),
        ("tcp/127.0.0.1", "HOST:PORT"),
        ("foo/bar", "unknown protocol 'foo'"),
    ],
)
def test_an_endpoint_zenoh_would_refuse_is_a_usage_error_in_words(endpoint, says):
    """Said before any session opens (exit 2), in one line, never with Zenoh's Rust source
    path (`invalid port value at /root/.cargo/git/...rs:62.`, exit 1 before)."""
    for command in (["share", "--listen"], ["bridge", "--connect"], ["list", "--remote", "--connect"]):
        result = cli(*command, endpoint, "--insecure")
        assert result.returncode == 2, (command, result.stderr)
        assert says in result.stderr and ".rs:" not in result.stderr and ".cargo" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_zenoh_errors_lose_their_rust_source_paths():
    from viewer.net.config import zenoh_message

    raw = (
        "invalid port value at /root/.cargo/git/checkouts/zenoh-9c599d5ef3e0480e/cc83980/io/"
        "zenoh-link-commons/src/lib.rs:62."
    )
    assert zenoh_message(Exception(raw)) == "invalid port value"


# -- the pieces ---------------------------------------------------------------------------


def test_config_talks_only_to_the_endpoints_given():
    conf = zenoh_config(NetOptions(connect=["tcp/127.0.0.1:9"], insecure=True))
    assert get(conf, "listen/endpoints") == []  # never Zenoh's default, every interface
    assert get(conf, "connect/endpoints") == ["tcp/127.0.0.1:9"]
    assert get(conf, "scouting/multicast/enabled") is False
    assert get(conf, "transport/shared_memory/enabled") is False
    assert get(zenoh_config(NetOptions(scout=True, insecure=True)), "scouting/multicast/enabled") is True


def test_a_config_file_keeps_its_settings_and_gains_the_endpoints(tmp_path):
    path = tmp_path / "zenoh.json5"
    path.write_text('{mode: "client", connect: {endpoints: ["tcp/127.0.0.1:1"]}}')
    conf = zenoh_config(NetOptions(connect=["tcp/127.0.0.1:2"], config_file=path, insecure=True))
    assert get(conf, "mode") == "client"
    assert get(conf, "connect/endpoints") == ["tcp/127.0.0.1:1", "tcp/127.0.0.1:2"]
    assert get(conf, "scouting/multicast/enabled") is False


def test_host_ids_and_keys():
    assert clean_host_id("robot-1.local") == "robot-1"
    assert clean_host_id("My Laptop") == "My-Laptop"
    assert split_key(stream_key("robot", "cam0")) == ("robot", "cam0")
    assert split_key("other/robot/cam0") is None


@pytest.mark.parametrize(
    ("shape", "dtype", "codec"),
    [
        ((4, 5, 3), "uint8", "raw"),
        ((4, 5, 3), "uint8", "png"),
        ((4, 5), "uint16", "png"),
        ((4, 5, 4), "uint8", "png"),
        ((4, 5, 3), "float32", "raw"),
    ],
)
def test_lossless_codecs_round_trip(shape, dtype, codec):
    image = (np.arange(np.prod(shape)) * 37 % 251).astype(dtype).reshape(shape)
    head = Header(3, 5, shape, dtype, {1: "GRAY", 3: "BGR", 4: "BGRA"}[(*shape, 1)[2]], codec, {"a": 1})
    back = decode(Header.unpack(head.pack()), encode(image, codec))
    assert back.dtype == image.dtype and np.array_equal(back, image)


def test_codecs_fall_back_to_lossless_ones_that_can_carry_the_frame():
    assert codec_for("jpeg", (4, 5, 3), "uint8") == "jpeg"
    assert codec_for("jpeg", (4, 5, 4), "uint8") == "png"
    assert codec_for("jpeg", (4, 5), "uint16") == "png"
    assert codec_for("png", (4, 5), "float32") == "raw"


def _ignoring_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `cmd &` in a script does (FACTS 23)


def test_share_and_bridge_stop_on_sigint_even_when_started_ignoring_it():
    """`share ... &` from a script starts with SIGINT ignored; Ctrl-C's signal still stops
    share and bridge, cleanly (exit 0, and the mirror is gone)."""
    ignoring = {"preexec_fn": _ignoring_sigint, "stop_with": signal.SIGINT}
    share_args = ["share", "cam0", "--listen", "local", "--host-id", "robot"]
    with producer("cam0", "--size", SIZE), running(share_args, "share:", **ignoring):
        with running(["bridge", "--connect", "local"], "bridge:", **ignoring):
            open_mirror("robot.cam0").close()
        with pytest.raises(StreamNotFoundError):
            FrameReader("robot.cam0")


def test_a_clean_stop_leaves_nothing():
    """A clean stop of share and bridge: no block, record or *.zenoh file remains (the
    autouse fixtures check), and SIGTERM exits 0."""
    with producer("cam0", "--size", SIZE), share("cam0") as sharer, bridge() as b:
        b.wait("mirroring")
        sharer.wait("sharing")
    assert not list(Path("/dev/shm").glob("*.zenoh"))


_MANY_SAYERS = """
import threading
from viewer.net.cli import _say

def talk(k):
    for i in range(2000):
        _say(f"thread {k} line {i}")

threads = [threading.Thread(target=talk, args=(k,)) for k in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_lines_from_many_mirror_and_share_threads_never_run_together():
    """share and bridge report from one thread per stream: each line arrives whole (print()
    wrote a line and its newline separately, so two lines ran together, then an empty one)."""
    result = subprocess.run([sys.executable, "-c", _MANY_SAYERS], capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    assert len(lines) == 16000 and all(re.fullmatch(r"thread \d line \d+", line) for line in lines), [
        line for line in lines if not re.fullmatch(r"thread \d line \d+", line)
    ][:5]


# -- waits that say what they wait for (issue 21 item 3) ----------------------------------


def test_share_of_a_stream_not_there_says_so_and_names_the_live_ones():
    with producer("cam0", "--size", SIZE), share("nope") as sharer:
        sharer.wait("share: waiting for stream 'nope' to start")
        line = sharer.wait("share: still no stream 'nope'")
    assert "live here: cam0" in line


def test_share_of_every_stream_with_none_live_says_so():
    with share() as sharer:
        sharer.wait("share: no live streams here yet")


def test_bridge_that_reaches_nobody_says_so():
    with bridge() as b:
        line = b.wait("bridge: no Zenoh peer or router reached")
    assert "at local" in line


def test_bridge_whose_peer_shares_nothing_it_mirrors_says_so_and_then_mirrors():
    with share(), bridge("shmview/robot/*") as b:
        b.wait("bridge: a peer is reached, but no stream shared there matches shmview/robot/*")
        with producer("cam0", "--size", SIZE):
            b.wait("mirroring shmview/robot/cam0")
