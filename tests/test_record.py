"""Recording streams and replaying them (issue 14), through real processes: `shmview record`
into MCAP (Foxglove's RawImage, read back by the mcap library on its own), video and image
folders; `shmview produce replay` bit for bit; SIGTERM and kill -9 in the middle."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.helpers import cli, producer, read_line, start, stop, wait_for
from viewer import FrameReader, FrameWriter
from viewer.recording.reading import Recording

H, W = 24, 32
SMALL = ["--size", f"{W}x{H}"]
OVERLAY = [{"rect": [1, 2, 10, 5], "label": "box", "colour": "#ff0000"}, {"text": "hi", "at": [3, 4]}]


def _recorded_line(text: str, name: str) -> int:
    """The frames `record` says it recorded of ``name``; also checks the line's form."""
    line = next(ln for ln in text.splitlines() if ln.endswith(f"of {name}, skipped 0") or f"of {name}," in ln)
    assert line.startswith("recorded ") and ", skipped " in line
    return int(line.split()[1].replace(",", ""))


def _pattern(dtype: str, shape: tuple[int, ...]) -> Callable[[int], np.ndarray]:
    """Frame k of a test stream: distinct, full-range values; floats with NaN, inf, -0.0."""

    def make(k: int) -> np.ndarray:
        rng = np.random.default_rng(k)
        if dtype == "uint16":
            return rng.integers(0, 65536, shape, dtype=np.uint16)
        if dtype == "uint8":
            return rng.integers(0, 256, shape, dtype=np.uint8)
        image = rng.standard_normal(shape).astype(dtype) * np.float32(1e6)
        image.flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
        return image

    return make


@contextmanager
def writing(
    name: str,
    shape: tuple[int, ...],
    dtype: str,
    pixel_format: str,
    make: Callable[[int], np.ndarray],
    fps: float = 100.0,
) -> Iterator[FrameWriter]:
    """A stream written from a thread of the test: frame k is make(k), with metadata."""
    done = threading.Event()
    with FrameWriter(name, shape, dtype, pixel_format=pixel_format, slots=16) as writer:

        def loop() -> None:
            k = 0
            while not done.wait(1 / fps):
                writer.write(make(k), meta={"k": k, "overlay": OVERLAY})
                k += 1

        thread = threading.Thread(target=loop)
        thread.start()
        try:
            yield writer
        finally:
            done.set()
            thread.join()


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    ("dtype", "shape", "fmt"),
    [
        ("uint16", (H, W), "GRAY"),
        ("uint8", (H, W), "GRAY"),
        ("float32", (H, W), "GRAY"),
        ("float32", (H, W, 3), "RGB"),
        ("float64", (H, W, 4), "BGRA"),
        ("uint16", (H, W, 3), "BGR"),
    ],
)
def test_round_trips_are_bit_exact(tmp_path: Path, dtype: str, shape: tuple[int, ...], fmt: str):
    out, make = tmp_path / "exact.mcap", _pattern(dtype, shape)
    with writing("exact", shape, dtype, fmt, make):
        done = cli("record", "exact", "--out", str(out), "--frames", "10")
    assert done.returncode == 0, done.stderr
    recorded = [r for r in Recording(out).frames()]
    assert len(recorded) == 10 and recorded[0].desc.pixel_format == fmt
    for r in recorded:
        assert same_bits(r.frame.image, make(r.frame.index))
        assert r.frame.meta == {"k": r.frame.index, "overlay": OVERLAY}

    replay = start(["produce", "replay", "--path", str(out), "--name", "again", "--loop", "--speed", "0"])
    try:
        assert read_line(replay).startswith("stream again ready")
        with FrameReader("again") as reader:
            assert (reader.info.shape, reader.info.dtype, reader.info.pixel_format) == (shape, dtype, fmt)
            seen = [reader.wait(10, after=k) for k in range(-1, 30, 3)]
    finally:
        code, err = stop(replay)
    assert code == 0, err
    for frame in seen:  # replayed frame j is recorded frame j % 10, pixels and metadata
        original = recorded[frame.index % 10].frame
        assert same_bits(frame.image, original.image) and frame.meta == original.meta


def test_the_file_is_foxglove_raw_image_to_the_mcap_library(tmp_path: Path):
    """Read back without shmview: mcap's reader, and protobuf classes built from the
    schema stored in the file."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from mcap.reader import make_reader

    out, make = tmp_path / "fox.mcap", _pattern("uint8", (H, W, 3))
    with writing("fox", (H, W, 3), "uint8", "BGR", make):
        assert cli("record", "fox", "--out", str(out), "--frames", "5").returncode == 0
    with out.open("rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        topics = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
        assert topics["/shmview/fox/image"] == "foxglove.RawImage"
        assert topics["/shmview/fox/annotations"] == "foxglove.ImageAnnotations"
        schema, channel, message = next(reader.iter_messages(topics=["/shmview/fox/image"]))
        marks_schema, _, marks = next(reader.iter_messages(topics=["/shmview/fox/annotations"]))
    assert schema.encoding == "protobuf" and channel.message_encoding == "protobuf"

    def decode(schema, data):
        files = {fd.name: fd for fd in descriptor_pb2.FileDescriptorSet.FromString(schema.data).file}
        pool = descriptor_pool.DescriptorPool()

        def add(name):  # dependencies first
            fd = files.pop(name, None)
            if fd is not None:
                for dep in fd.dependency:
                    add(dep)
                pool.Add(fd)

        while files:
            add(next(iter(files)))
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(schema.name)).FromString(data)

    image = decode(schema, message.data)
    overlay = decode(marks_schema, marks.data)  # OVERLAY: a labelled red rect and a text
    assert len(overlay.points) == 1 and len(overlay.points[0].points) == 4 and overlay.points[0].outline_color.r == 1
    assert sorted(t.text for t in overlay.texts) == ["box", "hi"] and marks.log_time == message.log_time
    assert (image.width, image.height, image.encoding, image.step) == (W, H, "bgr8", W * 3)
    pixels = np.frombuffer(image.data, np.uint8).reshape(H, W, 3)
    frame = next(Recording(out).frames()).frame
    assert same_bits(pixels, make(frame.index))
    assert message.log_time == frame.timestamp_ns == image.timestamp.seconds * 10**9 + image.timestamp.nanos


def test_sigterm_finishes_the_file(tmp_path: Path):
    out = tmp_path / "term.mcap"
    with producer("term", *SMALL, "--fps", "100"):
        rec = start(["record", "term", "--out", str(out)])
        wait_for(lambda: out.exists() and out.stat().st_size > 20_000, what="frames in the file")
        rec.send_signal(signal.SIGTERM)
        text, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err
    count = _recorded_line(text, "term")
    info = cli("info", str(out))
    assert info.returncode == 0 and "complete" in info.stdout and f"{count:,} frames" in info.stdout
    from mcap.reader import make_reader

    with out.open("rb") as f:
        stats = make_reader(f).get_summary().statistics
    assert stats.message_count >= 2 * count > 0  # summary written: image + frame record per frame


def test_kill_9_leaves_a_readable_file(tmp_path: Path):
    out = tmp_path / "killed.mcap"
    with producer("kill9", *SMALL, "--fps", "100"):
        rec = start(["record", "kill9", "--out", str(out)])
        wait_for(lambda: out.exists() and out.stat().st_size > 20_000, what="frames in the file")
        stop(rec, signal.SIGKILL)
    info = cli("info", str(out))
    assert info.returncode == 0, info.stderr
    assert "cut short" in info.stdout and "kill9" in info.stdout
    frames = [r.frame for r in Recording(out).frames()]
    assert frames and all(f.image.sum() == (f.index % 256) * H * W * 3 for f in frames)


# -- other outputs and errors --------------------------------------------------------------


def test_a_folder_gets_one_lossless_image_per_frame(tmp_path: Path):
    make = _pattern("uint16", (H, W))
    with (
        writing("png16", (H, W), "uint16", "GRAY", make),
        writing("flt", (H, W), "float32", "GRAY", _pattern("float32", (H, W))),
    ):
        done = cli("record", "png16", "flt", "--out", f"{tmp_path}/imgs/", "--frames", "3")
    assert done.returncode == 0, done.stderr
    pngs, tiffs = sorted((tmp_path / "imgs").glob("png16_*.png")), sorted((tmp_path / "imgs").glob("flt_*.tiff"))
    assert len(pngs) == 3 and len(tiffs) == 3
    for path in pngs:
        assert same_bits(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), make(int(path.stem.split("_")[1])))
    assert cv2.imread(str(tiffs[0]), cv2.IMREAD_UNCHANGED).dtype == np.float32


def test_image_folders_let_no_opencv_warning_through(tmp_path: Path):
    """A float stream becomes TIFF files: OpenCV warned on stderr about PNG's setting
    (`[ WARN:0@0.071] ... imencodeWithMetadata`), which docs/recording.md says never shows."""
    with writing("flt", (H, W), "float32", "GRAY", _pattern("float32", (H, W))):
        done = cli("record", "flt", "--out", f"{tmp_path}/imgs/", "--frames", "3")
    assert done.returncode == 0 and done.stderr == ""


def test_a_video_of_odd_size_is_padded_and_says_so_once(tmp_path: Path):
    """Video encoders take even sizes; OpenCV crops 33x25 to 32x24 without a word."""
    out = tmp_path / "odd.mp4"
    with producer("odd", "--size", "33x25", "--fps", "50", pattern="bars"):
        done = cli("record", "odd", "--out", str(out), "--frames", "20")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("padded") == 1 and "its 33x25 frames are padded to 34x26" in done.stderr
    video = cv2.VideoCapture(str(out))
    try:
        ok, image = video.read()
    finally:
        video.release()
    assert ok and image.shape == (26, 34, 3)


def test_a_video_file_is_written(tmp_path: Path):
    out = tmp_path / "clip.mp4"
    with producer("vid", *SMALL, "--fps", "50", pattern="bars"):
        done = cli("record", "vid", "--out", str(out), "--frames", "20")
    assert done.returncode == 0, done.stderr
    video = cv2.VideoCapture(str(out))
    try:
        assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
        ok, image = video.read()
        assert ok and image.shape == (H, W, 3)
    finally:
        video.release()


def test_errors_are_one_line_with_their_exit_code(tmp_path: Path):
    missing = cli("record", "nobody", "--out", str(tmp_path / "x.mcap"), "--timeout", "0.00021")
    assert missing.returncode == 3
    assert missing.stderr.splitlines()[-1] == "shmview: error: no stream 'nobody' after 0.2 ms; live streams: none"
    (tmp_path / "taken.mcap").write_bytes(b"")
    with producer("busy", *SMALL):
        taken = cli("record", "busy", "--out", str(tmp_path / "taken.mcap"), "--frames", "1")
        nowhere = cli("record", "busy", "--out", "/proc/x.mcap", "--frames", "1")
    assert taken.returncode == 1 and "already exists" in taken.stderr
    assert nowhere.returncode == 1 and nowhere.stderr.startswith("shmview: error: cannot create /proc/x.mcap: ")
    assert cli("info", str(tmp_path / "none.mcap")).returncode == 3
    bad = cli("info", str(tmp_path / "taken.mcap"))
    assert bad.returncode == 1 and "not an MCAP file" in bad.stderr
    assert cli("record", "busy", "--out", "x.mcap", "--compress", "gzip").returncode == 2


@pytest.mark.parametrize("out", ["out.png", "clip.mp5", "x.txt", "frames", "folder", "run.mcap.bak"])
def test_the_format_comes_from_the_extension_or_a_slash_and_nothing_else(tmp_path: Path, out: str):
    """A name that says no format is refused at once (exit 2), in one line naming the
    choices, and nothing is written: issue 21 found each of these written as MCAP."""
    (tmp_path / "folder").mkdir()
    done = cli("record", "cam", "--out", str(tmp_path / out), "--frames", "1")
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "argument --out" in done.stderr
    assert all(choice in done.stderr for choice in ("FILE.mcap", "FILE.mp4", "FILE.avi", "FILE.mkv", "DIR/"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"] and not any((tmp_path / "folder").iterdir())


def test_the_python_api_refuses_a_format_before_waiting():
    from viewer.errors import ConfigError
    from viewer.recording.command import record

    with pytest.raises(ConfigError, match=r"choose FILE\.mcap"):
        record(["nobody"], "clip.mp5", timeout=0)  # else StreamNotFoundError: the format is checked first


def test_a_missing_stream_costs_only_itself_and_is_said(tmp_path: Path):
    """The default, --missing skip: the streams that are there are recorded, and the one
    that never came is named on stderr and in its own summary line, with the live ones."""
    out = tmp_path / "m.mcap"
    with producer("here", *SMALL, "--fps", "50"):
        done = cli("record", "here", "typo", "--out", str(out), "--frames", "10", "--timeout", "0.3")
    assert done.returncode == 0, done.stderr
    assert _recorded_line(done.stdout, "here") == 10
    assert "recorded 0 frames of typo: no such stream after 0.3 s (live streams: here)" in done.stdout
    assert "waiting up to 0.3 s for 'typo' (live streams: here)" in done.stderr
    assert "not recording 'typo'" in done.stderr
    assert {r.desc.name for r in Recording(out).frames()} == {"here"}


def test_a_stream_that_comes_late_is_taken_in(tmp_path: Path):
    out = tmp_path / "late.mcap"
    with producer("early", *SMALL, "--fps", "50"):
        rec = start(["record", "early", "late", "--out", str(out), "--frames", "10", "--timeout", "60"])
        try:
            wait_for(out.exists, what="the recording to begin with the stream that is there")
            with producer("late", *SMALL, "--fps", "50"):
                text, err = rec.communicate(timeout=60)
        finally:
            if rec.poll() is None:
                stop(rec)
    assert rec.returncode == 0, err
    assert _recorded_line(text, "early") == 10 and _recorded_line(text, "late") == 10
    assert "stream 'late' appeared" in err
    assert {r.desc.name for r in Recording(out).frames()} == {"early", "late"}


def test_missing_wait_records_nothing_until_all_are_there(tmp_path: Path):
    out = tmp_path / "w.mcap"
    with producer("one", *SMALL, "--fps", "50"):
        done = cli("record", "one", "two", "--out", str(out), "--missing", "wait", "--timeout", "0.3")
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.splitlines()[-1] == "shmview: error: no stream 'two' after 0.3 s; live streams: one"
    assert not out.exists()


def test_recording_ends_with_its_streams_and_follows_a_restart_meanwhile(tmp_path: Path):
    out = tmp_path / "restart.mcap"
    with producer("steady", *SMALL, "--fps", "50"):
        with producer("flaky", *SMALL, "--fps", "50"):
            rec = start(["record", "steady", "flaky", "--out", str(out)])
            wait_for(lambda: out.exists() and out.stat().st_size > 20_000, what="frames in the file")
        with producer("flaky", *SMALL, "--fps", "50"):  # back, under the same name
            wait_for(lambda: "1 restart" in _info_after_flush(out), timeout=30, what="the restart recorded")
        rec.send_signal(signal.SIGTERM)
        text, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err
    assert _recorded_line(text, "steady") > 0 and _recorded_line(text, "flaky") > 0
    # a recording whose only stream ends, ends by itself
    ending = start(["produce", "synthetic", "--name", "ending", *SMALL, "--fps", "50", "--frames", "100"])
    try:
        assert read_line(ending).startswith("stream ending ready")
        done = cli("record", "ending", "--out", str(tmp_path / "ends.mcap"))
    finally:
        stop(ending)
    assert done.returncode == 0 and "of ending" in done.stdout


def _info_after_flush(path: Path) -> str:
    return cli("info", str(path)).stdout  # the recorder flushes every second


def test_on_a_terminal_it_shows_progress(tmp_path: Path):
    import os
    import pty
    import subprocess

    from tests.support.helpers import CLI

    main, child = pty.openpty()
    try:
        with producer("tty", *SMALL, "--fps", "50"):
            rec = subprocess.Popen(
                [*CLI, "record", "tty", "--out", str(tmp_path / "t.mcap"), "--seconds", "1.5"],
                stdout=subprocess.PIPE,
                stderr=child,
                text=True,
            )
            out, _ = rec.communicate(timeout=60)
        os.close(child)
        child = -1
        shown = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
        if child >= 0:
            os.close(child)
    assert rec.returncode == 0 and out.startswith("recorded ")
    assert b"tty" in shown and b"frames" in shown and b"MB" in shown and b"skipped" in shown
    assert b"MB raw" in shown and b"t.mcap" in shown and b"written" in shown  # the raw frames, and the file
