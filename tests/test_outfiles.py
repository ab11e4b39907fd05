"""Files shmview writes (issue 18): recordings (MCAP, video, image folders) and snapshots
are always new files, never written through a symlink and never over anything, and only
in a folder of the user's own. A second local user (a setuid child) plants the traps."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.helpers import cli, producer
from tests.support.users import NOBODY, as_root, as_user
from viewer import FrameWriter, OutputError
from viewer.outfiles import OutputFolder
from viewer.recording.messages import Description
from viewer.recording.sinks import ImageFolderSink, open_sink
from viewer.stream.frames import Frame

SMALL = ["--size", "32x24"]
PRECIOUS = b"the victim's own data\n"
OUTPUTS = ["clip.mcap", "clip.mp4", "frames/"]  # what --out may ask for


@pytest.fixture
def public() -> Iterator[Path]:
    """A folder other users can reach (tmp_path's parents are root's alone), removed after."""
    folder = Path(tempfile.mkdtemp(prefix="shmview-outputs-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def victim(folder: Path) -> Path:
    path = folder / "victim.txt"
    path.write_bytes(PRECIOUS)
    return path


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """What a folder holds, by name: (inode, size), without following links."""
    return {p.name: (p.lstat().st_ino, p.lstat().st_size) for p in folder.iterdir()}


def shared_folder(public: Path, mode: int, owner: int) -> Path:
    """A folder of ``mode`` belonging to user ``owner`` (chmod after mkdir: the umask would mask the mode)."""
    folder = public / "shared"
    folder.mkdir()
    folder.chmod(mode)
    os.chown(folder, owner, owner)
    return folder


def planted_symlinks(folder: Path, target: Path, names: list[str]) -> None:
    def plant() -> None:
        for name in names:
            os.symlink(target, folder / name)

    as_user(NOBODY, plant)


def refused(done, *words: str) -> None:
    """One line on stderr, exit 1, naming why."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stderr
    assert all(w in done.stderr for w in words), done.stderr


# -- the issue: another user's 0777 folder full of symlinks named like the output ---------------


@as_root
def test_the_reported_attack_writes_nothing(public: Path):
    target = victim(public)
    folder = shared_folder(public, 0o777, NOBODY)
    planted_symlinks(folder, target, [f"cam0_{k:08d}.png" for k in range(400)] + ["clip.mcap", "clip.mp4"])
    before = listing(folder)
    with producer("cam0", *SMALL, "--fps", "50"):
        for out in OUTPUTS:
            done = cli("record", "cam0", "--out", f"{folder}/{out}", "--frames", "3")
            refused(done, str(folder), "another user")
    assert target.read_bytes() == PRECIOUS and listing(folder) == before


@as_root
@pytest.mark.parametrize("out", OUTPUTS)
def test_a_folder_others_may_write_is_refused_even_if_it_is_yours(public: Path, out: str):
    folder = shared_folder(public, 0o777, 0)
    with producer("cam1", *SMALL, "--fps", "50"):
        done = cli("record", "cam1", "--out", f"{folder}/{out}", "--frames", "3")
    refused(done, "writable by other users", "0777")
    assert listing(folder) == {}


@as_root
@pytest.mark.parametrize("out", ["clip.mcap", "clip.mp4"])
def test_in_a_sticky_folder_another_users_file_is_never_touched(public: Path, out: str):
    folder = shared_folder(public, 0o1777, 0)  # like /tmp: root's, sticky

    def plant() -> None:
        (folder / out).write_bytes(PRECIOUS)

    as_user(NOBODY, plant)
    with producer("cam2", *SMALL, "--fps", "50"):
        done = cli("record", "cam2", "--out", str(folder / out), "--frames", "3")
        refused(done, "already exists")
        assert (folder / out).read_bytes() == PRECIOUS and (folder / out).stat().st_uid == NOBODY
        fresh = cli("record", "cam2", "--out", str(folder / f"new-{out}"), "--frames", "3")
    assert fresh.returncode == 0, fresh.stderr  # new names in a sticky folder are fine
    assert (folder / f"new-{out}").stat().st_uid == os.getuid()


@as_root
def test_another_users_folder_is_refused(public: Path):
    folder = shared_folder(public, 0o755, NOBODY)
    with pytest.raises(OutputError, match="another user"):
        open_sink(f"{folder}/clip.mcap", ["x"])
    with pytest.raises(OutputError, match="another user"):
        open_sink(f"{folder}/frames/", ["x"])  # nobody's folder: not even a subfolder is made
    assert listing(folder) == {}


# -- the user's own folders: nothing there is replaced, no link is followed ---------------------


def trap(folder: Path, name: str, kind: str, target: Path) -> None:
    path = folder / name
    if kind == "file":
        path.write_bytes(PRECIOUS)
    elif kind == "symlink":
        path.symlink_to(target)
    elif kind == "dangling":
        path.symlink_to(folder / "not-there-yet")
    elif kind == "fifo":
        os.mkfifo(path)  # opening it to write would block forever
    else:
        path.mkdir()


KINDS = ["file", "symlink", "dangling", "fifo", "folder"]


@pytest.mark.parametrize("kind", KINDS[:-1])  # a folder named clip.mcap is an image folder: DIR/ or a folder
@pytest.mark.parametrize("out", ["clip.mcap", "clip.mp4"])
def test_a_file_output_never_opens_what_is_there(tmp_path: Path, kind: str, out: str):
    target = victim(tmp_path)
    trap(tmp_path, out, kind, target)
    before = listing(tmp_path)
    with pytest.raises(OutputError, match="already exists"):
        open_sink(str(tmp_path / out), ["cam"])
    assert listing(tmp_path) == before and target.read_bytes() == PRECIOUS
    assert not (tmp_path / "not-there-yet").exists()  # a dangling link's target is not created


@pytest.mark.parametrize("kind", KINDS)
def test_an_image_folder_already_holding_a_streams_frames_is_refused(tmp_path: Path, kind: str):
    target = victim(tmp_path)
    frames = tmp_path / "frames"
    frames.mkdir()
    trap(frames, "cam_00000007.png", kind, target)
    before = listing(frames)
    with pytest.raises(OutputError, match="already holds frames of cam"):
        open_sink(f"{frames}/", ["other", "cam"])
    assert listing(frames) == before and target.read_bytes() == PRECIOUS
    open_sink(f"{frames}/", ["ca", "cam_0"]).close()  # other streams' names do not clash


def fake(name: str, index: int, value: int = 0) -> tuple[Description, Frame]:
    image = np.full((4, 6), value, np.uint8)
    return Description(name, image.shape, "uint8", "GRAY", 0), Frame(image, index, 1, None)


def test_image_frames_are_new_files_and_a_restart_gets_its_own_names(tmp_path: Path):
    sink = ImageFolderSink(tmp_path / "imgs", ["cam"])
    try:
        for index, value in [(5, 1), (6, 2), (0, 3), (1, 4)]:  # the producer restarted after 6
            sink.write(*fake("cam", index, value))
    finally:
        sink.close()
    written = {p.name: int(cv2.imread(str(p), cv2.IMREAD_UNCHANGED)[0, 0]) for p in (tmp_path / "imgs").iterdir()}
    assert written == {
        "cam_00000005.png": 1,
        "cam_00000006.png": 2,
        "cam_restart1_00000000.png": 3,
        "cam_restart1_00000001.png": 4,
    }


def test_an_image_name_made_meanwhile_stops_the_recording_instead_of_being_replaced(tmp_path: Path):
    sink = ImageFolderSink(tmp_path, ["cam"])
    try:
        trap(tmp_path, "cam_00000002.png", "symlink", victim(tmp_path))
        sink.write(*fake("cam", 1))
        with pytest.raises(OutputError, match=r"cam_00000002\.png already exists"):
            sink.write(*fake("cam", 2))
    finally:
        sink.close()
    assert (tmp_path / "victim.txt").read_bytes() == PRECIOUS


def test_a_refused_second_video_leaves_no_first_one(tmp_path: Path):
    (tmp_path / "run-right.mp4").write_bytes(PRECIOUS)
    with pytest.raises(OutputError, match=r"run-right\.mp4 already exists"):
        open_sink(str(tmp_path / "run.mp4"), ["left", "right"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-right.mp4"]


def test_a_stream_that_gave_no_frame_leaves_no_empty_video(tmp_path: Path):
    sink = open_sink(str(tmp_path / "run.mp4"), ["left", "right"])
    for k in range(3):
        sink.write(*fake("left", k))
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-left.mp4"]


def test_files_are_created_with_the_usual_modes(tmp_path: Path):
    old = os.umask(0o022)
    try:
        with OutputFolder(tmp_path / "made" / "here", create=True) as folder:
            path = folder.write_new("x.bin", b"123")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"123" and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "made" / "here").stat().st_mode) == 0o755


# -- snapshots (Ctrl+S): refusals are shown in the window, never raised out of the slot ---------


@pytest.fixture
def snapshot_window(qtbot, tmp_path: Path):
    from viewer.gui.window import ViewerWindow

    with FrameWriter("snap", (8, 8, 3)) as writer:
        writer.write(np.full((8, 8, 3), 9, np.uint8))
        win = ViewerWindow(["snap"], interval_s=3600, snapshot_dir=tmp_path)
        qtbot.addWidget(win)
        win.refresh()
        yield win


def test_saving_the_same_frame_twice_keeps_the_first_file(snapshot_window, tmp_path: Path):
    (path,) = snapshot_window.save_snapshots()
    first = path.read_bytes()
    assert snapshot_window.save_snapshots() == []
    message = snapshot_window.statusBar().currentMessage()
    assert "snapshot failed" in message and "snap-000000.png already exists" in message
    assert path.read_bytes() == first


@pytest.mark.parametrize("kind", ["symlink", "dangling", "file"])
def test_a_snapshot_never_writes_through_what_is_there(snapshot_window, tmp_path: Path, kind: str):
    target = victim(tmp_path)
    trap(tmp_path, "snap-000000.png", kind, target)
    before = listing(tmp_path)
    snapshot_window.snapshot_action.trigger()  # as Ctrl+S does: through the slot
    assert "already exists" in snapshot_window.statusBar().currentMessage()
    assert listing(tmp_path) == before and target.read_bytes() == PRECIOUS


@as_root
@pytest.mark.parametrize(
    ("mode", "owner", "why"),
    [(0o777, NOBODY, "another user"), (0o777, 0, "writable by other"), (0o755, NOBODY, "another user")],
)
def test_snapshots_go_only_into_a_folder_of_your_own(snapshot_window, public: Path, mode: int, owner: int, why: str):
    snapshot_window.snapshot_dir = shared_folder(public, mode, owner)
    snapshot_window.snapshot_action.trigger()
    assert why in snapshot_window.statusBar().currentMessage()
    assert listing(public / "shared") == {}


def test_one_panels_refusal_does_not_stop_the_others(qtbot, tmp_path: Path):
    from viewer.gui.window import ViewerWindow

    (tmp_path / "left-000000.png").write_bytes(PRECIOUS)
    with FrameWriter("left", (8, 8)) as left, FrameWriter("right", (8, 8)) as right:
        left.write(np.zeros((8, 8), np.uint8))
        right.write(np.zeros((8, 8), np.uint8))
        win = ViewerWindow(["left", "right"], interval_s=3600, snapshot_dir=tmp_path)
        qtbot.addWidget(win)
        win.refresh()
        assert win.save_snapshots() == [tmp_path / "right-000000.png"]
    message = win.statusBar().currentMessage()
    assert "saved" in message and "right-000000.png" in message and "left-000000.png already exists" in message
    assert (tmp_path / "left-000000.png").read_bytes() == PRECIOUS
