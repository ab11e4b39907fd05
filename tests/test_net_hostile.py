"""A network peer can neither break a bridge's mirror nor make it cost more than its limits
(issue 18, items 2-4).

The hostile peer is plain Zenoh in a subprocess (tests/support/hostile_peer.py), connected to
the bridge over loopback only (``endpoint()``), scouting off. Run this file in a network
namespace of its own to be sure nothing else is reachable:
``unshare -m -n sh -c 'ip link set lo up && mount -t tmpfs tmpfs /dev/shm && pytest ...'``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.helpers import CLI, wait_for
from tests.support.net import free_port, try_open
from viewer import FrameWriter
from viewer.errors import CodecError, ShmviewError
from viewer.net.codec import Header, decode
from viewer.stream import protocol as P

HOSTILE = Path(__file__).parent / "support" / "hostile_peer.py"
H, W = 48, 64
KEY = "shmview/robot/cam0"
GOOD = Header(0, 1, (H, W, 3), "uint8", "BGR", "raw")


def endpoint(port: int) -> str:
    """The one place the tests name where the bridge listens (loopback only)."""
    return f"tcp/127.0.0.1:{port}"


class Output:
    """Every line a pipe gives, collected by a thread."""

    def __init__(self, pipe) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=lambda: self.lines.extend(pipe), daemon=True)
        self._thread.start()

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def join(self) -> None:
        self._thread.join(10)


@contextmanager
def bridge(port: int, *extra: str) -> Iterator[tuple[subprocess.Popen, Output, Output]]:
    """``shmview bridge`` listening on loopback; yields (process, stdout, stderr)."""
    proc = subprocess.Popen(
        [*CLI, "bridge", "--listen", endpoint(port), "--insecure", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = Output(proc.stdout), Output(proc.stderr)
    try:
        wait_for(lambda: out.has("bridge:") or proc.poll() is not None, what="the bridge ready")
        assert proc.poll() is None, err.lines
        yield proc, out, err
    finally:
        if proc.poll() is None:
            proc.terminate()
        code = proc.wait(20)
        out.join(), err.join()
        proc.stdout.close(), proc.stderr.close()
        assert code == 0, err.lines


class Peer:
    """tests/support/hostile_peer.py, driven one command at a time."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HOSTILE), endpoint(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline() == "ready\n"

    def __call__(self, **command) -> None:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "ok\n", f"the hostile peer failed on {command}"

    def put(self, header: bytes | str | None, payload: bytes, tmp: Path, key: str = KEY) -> None:
        path = tmp / "payload"
        path.write_bytes(payload)
        head = {"header_hex": header.hex()} if isinstance(header, bytes) else {"header": header}
        self(put=key, payload=str(path), **head)

    def close(self) -> None:
        self.proc.stdin.close()
        code = self.proc.wait(20)
        self.proc.stdout.close()
        assert code == 0


@contextmanager
def peer(port: int) -> Iterator[Peer]:
    p = Peer(port)
    try:
        yield p
    finally:
        p.close()


def good_frame(index: int) -> tuple[bytes, bytes]:
    head = Header(index, 1000 + index, (H, W, 3), "uint8", "BGR", "raw")
    return head.pack(), np.full((H, W, 3), index % 256, np.uint8).tobytes()


def mirrored_after(p: Peer, tmp: Path, index: int) -> None:
    """Send good frame ``index`` until the mirror shows it: the mirror is alive and well."""
    header, payload = good_frame(index)

    def arrived() -> bool:
        p.put(header, payload, tmp)
        mirror = try_open("robot.cam0")
        if mirror is None:
            return False
        with mirror:
            frame = mirror.read()
        return frame is not None and frame.meta["_origin"]["index"] == index and int(frame.image[0, 0, 0]) == index

    wait_for(arrived, what=f"good frame {index} mirrored")


def peak_rss(pid: int) -> int:
    """Bytes: the most the process ever had resident (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# -- bad frames ----------------------------------------------------------------------------


def png(width: int, height: int, bits: int, colour: int, rows: int | None = None, level: int = 1) -> bytes:
    """A PNG whose IHDR says width x height; ``rows`` rows of zeros in its IDAT (all of
    them by default: a real image, and a real decompression bomb when large)."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    channels = {0: 1, 2: 3, 6: 4}[colour]
    row = b"\0" * (1 + width * channels * bits // 8)
    z = zlib.compressobj(level)
    idat = b"".join(z.compress(row) for _ in range(height if rows is None else rows)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def header(**changes) -> bytes:
    fields = {
        "v": 1,
        "index": 7,
        "timestamp_ns": 5,
        "shape": [H, W, 3],
        "dtype": "uint8",
        "pixel_format": "BGR",
        "codec": "raw",
        **changes,
    }
    return json.dumps(fields).encode()


RAW = bytes(H * W * 3)
BAD_FRAMES = {  # what a peer sends -> a word of the reason the bridge gives
    "unknown dtype": (header(dtype="garbage"), RAW),
    "negative timestamp": (header(timestamp_ns=-1), RAW),
    "timestamp past 2**63": (header(timestamp_ns=2**63), RAW),
    "boolean index": (header(index=True), RAW),
    "unknown pixel format": (header(pixel_format="YUYV"), RAW),
    "pixel format that does not fit": (header(pixel_format="GRAY"), RAW),
    "overflowing shape": (header(shape=[2**40, 2**40, 3]), RAW),
    "zero height": (header(shape=[0, W, 3]), b""),
    "five channels": (header(shape=[H, W, 5]), RAW),
    "shape as text": (header(shape="48x64"), RAW),
    "payload too short": (header(), RAW[:-1]),
    "payload too long": (header(), RAW + b"\0"),
    "unknown codec": (header(codec="webp"), RAW),
    "jpeg of float pixels": (header(codec="jpeg", dtype="float32"), RAW),
    "undecodable png": (header(codec="png"), png(W, H, 8, 2, rows=0)[:60]),
    "png of another size": (header(codec="png"), png(W + 1, H, 8, 2)),
    "jpeg that is not": (header(codec="jpeg"), b"\xff\xd8\xff\xd9"),
    "not JSON": (b'{"v": 1, ', RAW),
    "not UTF-8": (b"\xff\xfe", RAW),
    "a list": (b"[1, 2]", RAW),
    "no header at all": (None, RAW),
    "huge header": (header(meta={"x": "y" * (3 << 20)}), RAW),
}


@pytest.mark.parametrize("case", BAD_FRAMES)
def test_the_codec_refuses_each_bad_frame_with_a_codec_error(case):
    head_bytes, payload = BAD_FRAMES[case]
    with pytest.raises(CodecError):
        decode(Header.unpack(head_bytes or b""), payload)


@pytest.mark.parametrize("case", BAD_FRAMES)
def test_each_bad_frame_is_dropped_counted_and_the_next_good_one_mirrored(mirror_rig, case):
    """Through Zenoh into a real Mirror: the frame is counted as dropped (it was taken,
    not overwritten in the ring), and the mirror goes on."""
    session, mirror = mirror_rig
    put_until_mirrored(session, 0)
    head_bytes, payload = BAD_FRAMES[case]
    session.put(KEY, payload, attachment=head_bytes)
    wait_for(lambda: mirror.drops.count == 1, what="the frame dropped")
    put_until_mirrored(session, 1)


def test_bad_frames_are_dropped_with_few_warning_lines_and_the_mirror_goes_on(tmp_path):
    """Through real processes: after every bad frame the next good one is mirrored, and
    the warnings are a few lines that count what they held back. (A bad frame may be
    replaced in the one-frame ring by the good one after it before the mirror takes it;
    the test above counts them one by one.)"""
    port = free_port()
    with bridge(port) as (_, _, err), peer(port) as p:
        p(token=KEY)
        mirrored_after(p, tmp_path, 0)
        for n, (head_bytes, payload) in enumerate(BAD_FRAMES.values(), start=1):
            p.put(head_bytes, payload, tmp_path)
            if n == 1:
                wait_for(lambda: err.has("dropped a frame"), what="the first warning")
            mirrored_after(p, tmp_path, n)
    warnings = [line for line in err.lines if KEY in line]
    assert 1 <= len(warnings) < len(BAD_FRAMES) / 2, warnings
    assert "dropped a frame" in warnings[0]
    assert any("more like it" in line for line in warnings), warnings


def test_a_crafted_png_is_refused_from_its_ihdr_before_decoding(tmp_path):
    """A 0.6 MB PNG that really decodes to 4096x4096 RGBA16 (128 MiB), sent with a header
    that says 640x480 (so its size is plausible): refused from its IHDR, and the bridge's
    peak memory does not grow by it. (With a 64x48 header, its size alone refuses it.)"""
    bomb = png(4096, 4096, 16, 6)
    assert len(bomb) < 1 << 20
    port = free_port()
    with bridge(port) as (proc, _, err), peer(port) as p:
        p(token=KEY)
        mirrored_after(p, tmp_path, 0)
        before = peak_rss(proc.pid)
        p.put(header(codec="png", shape=[480, 640, 4], pixel_format="BGRA", dtype="uint16"), bomb, tmp_path)
        wait_for(lambda: err.has("not decoded"), what="the PNG refused")
        mirrored_after(p, tmp_path, 1)
        grown = peak_rss(proc.pid) - before
    assert grown < 64 << 20, f"peak memory grew by {grown:,} bytes"
    assert any("4096x4096" in line and "not decoded" in line for line in err.lines), err.lines


def test_an_honest_header_over_max_frame_bytes_makes_no_block(tmp_path):
    """16384x16384x4 said honestly in the header, 1 MB of PNG: dropped from the header,
    no block made, the stream's own later good frames still mirrored."""
    port = free_port()
    big = png(16384, 16384, 8, 6, rows=1)
    with bridge(port, "--max-frame-bytes", str(1 << 20)) as (_, out, err), peer(port) as p:
        p(token=KEY)
        mirrored_after(p, tmp_path, 0)
        p.put(header(codec="png", shape=[16384, 16384, 4], pixel_format="BGRA"), big, tmp_path)
        # before the next good frame: the mirror keeps only the newest sample, which would replace it
        wait_for(lambda: err.has("over --max-frame-bytes (1,048,576)"), what="the frame refused")
        mirrored_after(p, tmp_path, 1)
    assert not any("16384" in line for line in out.lines)  # never mirrored in that shape


def test_a_message_over_zenohs_cap_is_dropped_and_the_link_stays(tmp_path):
    """--max-frame-bytes also caps what Zenoh reassembles: 4 MiB against a cap of about
    2.3 MB goes nowhere, and the peer's next good frame is mirrored."""
    port = free_port()
    with bridge(port, "--max-frame-bytes", "100000") as (proc, _, _), peer(port) as p:
        p(token=KEY)
        mirrored_after(p, tmp_path, 0)
        before = peak_rss(proc.pid)
        p.put(header(), bytes(4 << 20), tmp_path)
        mirrored_after(p, tmp_path, 1)
        assert peak_rss(proc.pid) - before < 4 << 20


# -- fuzzing the header --------------------------------------------------------------------

_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=12),
    st.lists(st.integers(-3, 2**33), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers()),
    st.sampled_from(
        [
            "garbage",
            "int64",
            "float16",
            "uint8",
            "uint16",
            "float64",
            "GRAY",
            "BGR",
            "RGBA",
            "raw",
            "png",
            "jpeg",
            "|u1",
            "<u2",
            "O",
            "V8",
        ]
    ),
)
_FIELDS = {
    "v": st.just(1),
    "index": st.integers(0, 2**64 - 1),
    "timestamp_ns": st.integers(0, P.MAX_NS),
    "shape": st.lists(st.integers(1, 64), min_size=2, max_size=3),
    "dtype": st.sampled_from(P.DTYPES),
    "pixel_format": st.sampled_from(list(P.PIXEL_FORMATS)),
    "codec": st.sampled_from(["raw", "png", "jpeg"]),
    "meta": st.one_of(st.none(), st.dictionaries(st.text(max_size=4), st.integers())),
}
HEADERS = st.fixed_dictionaries({}, optional={k: st.one_of(v, _JUNK) for k, v in _FIELDS.items()})
PAYLOADS = st.one_of(st.binary(max_size=64), st.sampled_from([RAW, png(W, H, 8, 2), png(4, 4, 16, 0)]))


@settings(max_examples=400, deadline=None)
@given(fields=HEADERS, payload=PAYLOADS)
def test_any_header_is_either_refused_with_a_codec_error_or_writable(fields, payload):
    """Whatever a peer puts in a header, the receiver gets a CodecError or a header that a
    local stream can carry, and decode gives a CodecError or exactly the pixels it says."""
    try:
        head = Header.unpack(json.dumps(fields).encode())
    except CodecError:
        return
    P.make_layout(head.shape, head.dtype, head.pixel_format, 3)
    assert 0 <= head.timestamp_ns <= P.MAX_NS
    try:
        image = decode(head, payload)
    except CodecError:
        return
    assert image.shape == head.shape and image.dtype.name == head.dtype


@pytest.fixture
def mirror_rig(tmp_path):
    """A real Mirror on an isolated Zenoh session (no endpoints, no scouting): frames the
    test puts on that session reach the mirror through Zenoh, as a peer's would."""
    from viewer.net.bridge import Limits, Mirror
    from viewer.net.config import NetOptions, open_session

    session = open_session(NetOptions())
    mirror = Mirror(session, KEY, "robot.cam0", lambda line: None, Limits())
    try:
        yield session, mirror
    finally:
        mirror.stop("test over")
        session.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=HEADERS)
def test_no_header_stops_a_live_mirror(mirror_rig, fields):
    session, mirror = mirror_rig
    dropped = mirror.drops.count
    session.put(KEY, RAW, attachment=json.dumps(fields).encode())
    wait_for(
        lambda: mirror.drops.count > dropped or _newest_index() == fields.get("index"),
        what="the frame dropped or mirrored",
    )
    put_until_mirrored(session, 1)


def put_until_mirrored(session, index: int) -> None:
    header_bytes, payload = good_frame(index)
    wait_for(
        lambda: session.put(KEY, payload, attachment=header_bytes) or _newest_index() == index,
        what=f"good frame {index} mirrored",
    )


def _newest_index() -> int | None:
    mirror = try_open("robot.cam0")
    if mirror is None:
        return None
    with mirror:
        frame = mirror.read()
    return None if frame is None else frame.meta["_origin"]["index"]


# -- cost: streams, tokens, /dev/shm -------------------------------------------------------


def test_3000_tokens_make_at_most_max_streams_mirrors_and_no_thread_each(tmp_path):
    port = free_port()
    with bridge(port, "--max-streams", "4") as (proc, _, err), peer(port) as p:
        threads = threads_of(proc.pid)
        p(token=KEY)
        mirrored_after(p, tmp_path, 0)
        p(tokens="shmview/robot/s", count=3000)
        p(untoken=KEY)  # liveliness changes are taken in order: once this one is seen, all were
        wait_for(lambda: try_open("robot.cam0") is None, what="the mirror closed")
        grown = threads_of(proc.pid) - threads
    assert grown <= 4, f"{grown} threads more for 3000 tokens"
    refusals = [line for line in err.lines if "--max-streams limit" in line]
    assert 1 <= len(refusals) <= 3, refusals


def test_memory_stays_flat_over_10000_token_cycles(tmp_path):
    """A mirror made and ended 10,000 times, bad keys refused 1,000 times: resident memory
    after them is what it was after a warm-up."""
    port = free_port()
    with bridge(port, "--max-streams", "3") as (proc, _, _), peer(port) as p:
        p(tokens="shmview/robot/keep", count=1)
        p(churn="shmview/robot/warmup", count=1000)
        sync(p, tmp_path, 0)
        before = rss(proc.pid)
        for _ in range(10):
            p(churn="shmview/robot/churn", count=1000)
        p(churn="shmview/robot/not/a/stream", count=1000)  # refused each time, never remembered
        sync(p, tmp_path, 1)
        grown = rss(proc.pid) - before
    assert grown < 16 << 20, f"resident memory grew by {grown:,} bytes over 10,000 token cycles"


def sync(p: Peer, tmp: Path, index: int) -> None:
    """Once KEY's token (declared after everything before) is mirrored, the bridge has
    taken every earlier liveliness change: they come in order."""
    p(token=KEY)
    mirrored_after(p, tmp, index)
    p(untoken=KEY)
    wait_for(lambda: try_open("robot.cam0") is None, what="the mirror closed")


ROOM_CHECK = """
import threading, numpy as np
from viewer.errors import ShmviewError
from viewer.net.bridge import claimed_writer
from viewer.net.codec import Header
from viewer.stream.writer import FrameWriter

head = Header(0, 0, (1024, 1024, 4), "uint8", "BGRA", "raw")  # 4 MiB frames, 12 MiB blocks
made, refused, start = [], [], threading.Barrier(4)

def mirror(i):
    start.wait()
    try:
        made.append(claimed_writer(f"m{i}", head, 0.25))
    except ShmviewError as exc:
        refused.append(str(exc))

threads = [threading.Thread(target=mirror, args=(i,)) for i in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
own = FrameWriter("own", (1024, 1024, 3))  # the user's own producer still has room
print(len(made), len(refused), all("would leave less than 25%" in r for r in refused), flush=True)
own.close()
[w.close() for w in made]
"""


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("unshare"), reason="needs root for a tmpfs of its own")
def test_four_mirrors_racing_for_dev_shm_never_run_it_out(tmp_path):
    """In a 40 MiB /dev/shm of its own, four mirrors of 12 MiB blocks race: two are made,
    two refused before allocating anything (no ENOSPC), and a producer still fits."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    script = tmp_path / "room.py"
    script.write_text(ROOM_CHECK)
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=40m tmpfs /dev/shm && exec {sys.executable} {script}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.stdout.split() == ["2", "2", "True"], result.stdout + result.stderr


def test_a_mirror_name_a_local_producer_holds_is_refused_then_taken_once_free():
    """A producer here already owns the mirror's name: the mirror's stream is refused
    with a ShmviewError (the mirror drops and retries), and made once the name is free."""
    from viewer.net.bridge import claimed_writer

    with FrameWriter("robot.cam0", (H, W, 3)), pytest.raises(ShmviewError):
        claimed_writer("robot.cam0", GOOD, 0.25)
    with claimed_writer("robot.cam0", GOOD, 0.25) as writer:
        writer.write(np.zeros((H, W, 3), np.uint8))
