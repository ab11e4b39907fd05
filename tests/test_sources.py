"""Real sources without hardware: video files and folders made here, a fake camera that
fails the way cameras do, and a user's own source exactly as docs/python-api.md shows it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from producers.base import NoFrameYet
from producers.camera import CameraSource
from tests.support.fakes import FakeCapture
from tests.support.helpers import cli, json_lines, read_line, start, stop, wait_for
from viewer import FrameReader

HERE = Path(__file__).parent


def collect(name: str, proc: subprocess.Popen) -> tuple[dict[int, np.ndarray], int]:
    """The frames of a stream seen while its producer runs, by index, and how many it wrote.

    The reader polls far faster than the producers here write (10 fps or less), so it sees
    (nearly) every frame; tests check content on every frame seen and the exact count.
    """
    assert read_line(proc).startswith(f"stream {name} ready")
    frames: dict[int, np.ndarray] = {}
    with FrameReader(name) as reader:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = proc.poll() is not None
            frame = reader.read()
            if frame is not None:
                frames.setdefault(frame.index, frame.image)
            if done:
                return frames, reader.frames_written
    raise AssertionError("producer did not finish")


# Video files ------------------------------------------------------------------------------


def make_video(path: Path, count: int) -> list[int]:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    assert writer.isOpened()
    values = [(10 * k) % 256 for k in range(count)]
    for v in values:
        writer.write(np.full((48, 64, 3), v, np.uint8))
    writer.release()
    return values


def test_video_frames_match_the_file_and_the_end_stops_the_producer(tmp_path):
    values = make_video(tmp_path / "clip.avi", 12)
    proc = start(["produce", "video", "--name", "clip", "--path", str(tmp_path / "clip.avi"), "--fps", "10"])
    frames, written = collect("clip", proc)
    code, err = stop(proc)
    assert code == 0, err
    assert written == 12 and len(frames) > 1
    for k, image in frames.items():
        assert image.shape == (48, 64, 3)
        assert abs(float(image.mean()) - values[k]) < 3  # MJPG is lossy: within codec tolerance


def test_video_loop_wraps_around(tmp_path):
    values = make_video(tmp_path / "loop.avi", 5)
    proc = start(
        [
            "produce",
            "video",
            "--name",
            "loop",
            "--path",
            str(tmp_path / "loop.avi"),
            "--loop",
            "--fps",
            "10",
            "--frames",
            "12",
        ]
    )
    frames, written = collect("loop", proc)
    assert stop(proc)[0] == 0
    assert written == 12 and max(frames) >= 5  # past the end of the file
    for k, image in frames.items():
        assert abs(float(image.mean()) - values[k % 5]) < 3


def test_video_at_its_own_rate_by_default(tmp_path):
    make_video(tmp_path / "own.avi", 3)
    done = cli("produce", "video", "--name", "own", "--path", str(tmp_path / "own.avi"))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("content", "code", "message"), [(None, 3, "no video file"), (b"not a video", 1, "video")])
def test_bad_video_files_are_one_clear_line(tmp_path, content, code, message):
    path = tmp_path / "bad.avi"
    if content is not None:
        path.write_bytes(content)
    done = cli("produce", "video", "--name", "bad", "--path", str(path))
    assert done.returncode == code and message in done.stderr and done.stderr.count("\n") == 1, done.stderr


# Folders ----------------------------------------------------------------------------------


def make_folder(folder: Path) -> list[tuple[int, int, int]]:
    folder.mkdir()
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    cv2.imwrite(str(folder / "000.png"), np.full((48, 64, 3), colours[0], np.uint8))
    cv2.imwrite(str(folder / "001.png"), np.full((48, 64, 3), colours[1], np.uint8))
    (folder / "002.png").write_bytes(b"\x89PNG but not really")
    cv2.imwrite(str(folder / "003.png"), np.full((24, 32, 3), colours[2], np.uint8))  # another size
    cv2.imwrite(str(folder / "004.jpg"), np.full((48, 64), 200, np.uint8))  # grey
    (folder / "notes.txt").write_text("not an image")
    return colours


def test_folder_in_order_skips_the_corrupt_file_and_resizes(tmp_path):
    colours = make_folder(tmp_path / "imgs")
    proc = start(["produce", "folder", "--name", "imgs", "--path", str(tmp_path / "imgs"), "--fps", "5"])
    frames, written = collect("imgs", proc)
    code, err = stop(proc)
    assert code == 0, err
    assert "skipping" in err and "002.png" in err and err.count("\n") == 1
    assert written == 4 and sorted(frames) == [0, 1, 2, 3]
    for k, expected in enumerate([*colours[:3], (200, 200, 200)]):
        assert frames[k].shape == (48, 64, 3)
        assert tuple(frames[k][24, 32]) == expected


def test_folder_loop_and_threads(tmp_path):
    make_folder(tmp_path / "many")
    proc = start(
        [
            "produce",
            "folder",
            "--name",
            "many",
            "--path",
            str(tmp_path / "many"),
            "--loop",
            "--threads",
            "3",
            "--fps",
            "20",
            "--frames",
            "10",
        ]
    )
    frames, written = collect("many", proc)
    assert stop(proc)[0] == 0
    assert written == 10
    for k, image in frames.items():  # 4 readable images, then again
        if k + 4 in frames:
            np.testing.assert_array_equal(image, frames[k + 4])


def test_opencv_and_libjpeg_noise_only_with_verbose(tmp_path):
    folder = tmp_path / "damaged"
    folder.mkdir()
    _, jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8))
    (folder / "0.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])  # decodes, with a libjpeg warning
    args = ["produce", "folder", "--name", "damaged", "--path", str(folder), "--loop", "--frames", "2", "--fps", "0"]
    quiet, loud = cli(*args), cli(*args, "--verbose")
    assert quiet.returncode == 0 and loud.returncode == 0, loud.stderr
    assert quiet.stderr == "" and "Premature end of JPEG file" in loud.stderr
    assert quiet.stdout.splitlines()[-1] == "stream damaged stopped after 2 frames: frame limit reached"


def test_folder_and_video_paths_point_to_each_other(tmp_path):
    make_video(tmp_path / "clip.avi", 2)
    as_video = cli("produce", "video", "--name", "v", "--path", str(tmp_path))
    as_folder = cli("produce", "folder", "--name", "f", "--path", str(tmp_path / "clip.avi"))
    assert as_video.returncode == 1 and "use `shmview produce folder" in as_video.stderr
    assert as_folder.returncode == 1 and "use `shmview produce video" in as_folder.stderr


def test_folder_errors(tmp_path):
    missing = cli("produce", "folder", "--name", "f", "--path", str(tmp_path / "nope"))
    assert missing.returncode == 3 and "no folder" in missing.stderr
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"junk")
    (tmp_path / "junk" / "b.jpg").write_bytes(b"junk")
    junk = cli("produce", "folder", "--name", "f", "--path", str(tmp_path / "junk"))
    assert junk.returncode == 1 and "no readable image" in junk.stderr
    assert junk.stderr.strip().splitlines()[-1].startswith("shmview: error:")


# Cameras (fake hardware) ------------------------------------------------------------------


def fake_camera(cues: Path, *args: str) -> subprocess.Popen:
    script = HERE / "support" / "fake_camera_producer.py"
    return subprocess.Popen(
        [sys.executable, str(script), str(cues), "produce", "camera", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_camera_that_cannot_be_opened_exits_3(tmp_path):
    (tmp_path / "missing").touch()
    proc = fake_camera(tmp_path, "--name", "cam", "--device", "/dev/video7")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3
    assert err == "shmview: error: cannot open camera '/dev/video7': no such device: /dev/video7 does not exist\n"


def test_a_camera_that_cannot_be_opened_says_what_is_known_of_its_device(tmp_path):
    from producers.camera import why_not_opened

    assert why_not_opened(str(tmp_path / "video9")) == f"no such device: {tmp_path / 'video9'} does not exist"
    assert why_not_opened("99") == "no such device: /dev/video99 does not exist"
    device = tmp_path / "video3"
    device.touch()
    assert "exists but gives no video: busy in another program, or not a capture device" in why_not_opened(str(device))
    assert "OpenCV could not open it" in why_not_opened("rtsp://127.0.0.1:1/none")
    if os.geteuid() != 0:  # root opens anything
        device.chmod(0)
        assert why_not_opened(str(device)).startswith(f"permission denied on {device}")


def test_a_camera_that_gives_a_frame_now_and_then_is_reported_lost_once_and_never_back(tmp_path):
    """A device whose every reopen delivers one frame, then nothing: "reopening" and "is
    back" must not alternate every half second."""
    (tmp_path / "flicker").touch()
    proc = fake_camera(tmp_path, "--name", "cam", "--device", "0")
    try:
        line = read_line(proc)
        assert line.startswith("stream cam ready"), line + proc.stderr.read()
        wait_for(lambda: len(list(tmp_path.glob("opened-*"))) >= 4, what="the camera reopened 3 times")
    finally:
        code, err = stop(proc)
    assert code == 0
    assert err.count("delivered no frame") == 1 and "is back after" not in err, err


def test_camera_stall_goes_stale_then_live_and_the_stream_stays_up(tmp_path):
    proc = fake_camera(tmp_path, "--name", "cam", "--device", "0")
    viewer = None
    try:
        line = read_line(proc)
        assert line.startswith("stream cam ready"), line + proc.stderr.read()
        viewer = start(["view", "cam", "--headless", "--json", "--interval-ms", "100"])

        def state() -> str:
            return json_lines(read_line(viewer))[0]["state"]

        wait_for(lambda: state() == "live", what="live")
        (tmp_path / "stall").touch()
        wait_for(lambda: state() == "stale", what="stale while the camera delivers nothing")
        assert proc.poll() is None
        (tmp_path / "stall").unlink()
        wait_for(lambda: state() == "live", what="live again after recovery")
        back = json_lines(read_line(viewer))[0]["frame"]
        # "is back" once it delivered for a second (60 fps): not on the first frame
        wait_for(lambda: json_lines(read_line(viewer))[0]["frame"] > back + 90, what="frames for over a second")
    finally:
        if viewer is not None:
            stop(viewer)
        code, err = stop(proc)
    assert code == 0
    assert "delivered no frame; reopening" in err and re.search(r"camera 0 is back after \d+\.\d s", err), err


def test_camera_source_hands_out_only_new_frames(tmp_path):
    source = CameraSource("0", capture=lambda target: FakeCapture(target, tmp_path), wait_s=0.2)
    with source:
        first = wait_for(lambda: _read_or_none(source), what="a frame")[0]
        second = wait_for(lambda: _read_or_none(source), what="another frame")[0]
        assert int(second[0, 0, 0]) > int(first[0, 0, 0])
        (tmp_path / "stall").touch()
        with pytest.raises(NoFrameYet):
            for _ in range(3):  # a frame already in flight may still arrive
                source.read()
    source.close()  # twice is fine


def _read_or_none(source) -> tuple[np.ndarray] | None:
    try:
        return (source.read(),)
    except NoFrameYet:
        return None


def test_letterbox_by_default_and_stretch_on_request(tmp_path):
    folder = tmp_path / "wide"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.full((48, 64, 3), 255, np.uint8))
    cv2.imwrite(str(folder / "1.png"), np.full((48, 48, 3), 255, np.uint8))  # square into 4:3
    for extra, edge in (([], 0), (["--stretch"], 255)):
        proc = start(["produce", "folder", "--name", "wide", "--path", str(folder), "--fps", "5", *extra])
        frames, written = collect("wide", proc)
        assert stop(proc)[0] == 0 and written == 2
        assert frames[1][24, 0].tolist() == [edge] * 3 and frames[1][24, 32].tolist() == [255] * 3


# A user's own source, exactly as in docs/python-api.md ---------------------------------------


def test_the_readme_source_example_works_end_to_end(tmp_path):
    readme = (HERE.parent / "docs" / "python-api.md").read_text()
    code = re.search(r"<!-- user-source -->\s*```python\n(.*?)```", readme, re.S)
    assert code, "docs/python-api.md lost its user-source example"
    script = tmp_path / "my_source.py"
    script.write_text(code.group(1))
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE.parent
    )
    try:
        assert read_line(proc).startswith("stream ramp ready")
        lines = json_lines(cli("view", "ramp", "--headless", "--json", "--count", "3").stdout)
    finally:
        code_, err = stop(proc)
    assert code_ == 0, err
    for line in lines:
        assert line["state"] == "live" and line["shape"] == [240, 320]
        assert line["sum"] == ((line["frame"] + 1) % 256) * 240 * 320
