"""Where recorded frames go: an MCAP file, a video file, or a folder of images.

A sink takes ``write(desc, frame)`` from one thread, returns the bytes it took (the raw
frame's), says how many bytes its files hold so far (``written()``), and ``close()`` finishes
the file. ``open_sink`` picks one from the output path's extension or trailing slash, and
nothing else (``output_kind``): a name it does not know is refused, never guessed.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from viewer.errors import ConfigError, OutputError, ShmviewError
from viewer.outfiles import OutputFolder
from viewer.recording import messages as M
from viewer.stream.frames import Frame

log = logging.getLogger(__name__)

COMPRESSIONS = ("zstd", "lz4", "none")
VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}
MCAP, VIDEO, IMAGES = "mcap", "video", "images"
CHOICES = (
    "FILE.mcap (lossless: Foxglove, info, replay), FILE.mp4, FILE.avi or FILE.mkv (a lossy video), "
    "or DIR/ (one image per frame)"
)


class Sink(Protocol):
    def write(self, desc: M.Description, frame: Frame) -> int: ...

    def flush(self) -> None: ...

    def written(self) -> int: ...

    def close(self) -> None: ...


def output_kind(out: str) -> str:
    """MCAP for FILE.mcap, VIDEO for .mp4/.avi/.mkv, IMAGES for DIR/ (a trailing slash; a
    string, not a Path, which forgets it). Anything else is a ConfigError (a ValueError)
    naming the choices: a typo never becomes a file in a format nobody asked for."""
    if out.endswith("/"):
        return IMAGES
    suffix = Path(out).suffix.lower()
    if suffix == ".mcap":
        return MCAP
    if suffix in VIDEO_SUFFIXES:
        return VIDEO
    if os.path.isdir(out):
        why = f"{out} is a folder (write {out}/ for one image per frame in it)"
    elif not suffix:
        why = f"{out} has no extension (write {out}/ for a folder of images)"
    else:
        why = f"{out}: shmview does not record {suffix} files"
    raise ConfigError(f"{why}; choose {CHOICES}", path=out)


def open_sink(out: str, names: list[str], compression: str = "zstd") -> Sink:
    """The sink ``out`` asks for (``output_kind``). Every file is new, in a folder of yours
    (viewer/outfiles.py); anything else is an OutputError before a byte is written."""
    kind = output_kind(out)
    if kind == IMAGES:
        return ImageFolderSink(Path(out), names)
    if kind == VIDEO:
        return VideoSink(Path(out), names)
    return McapSink(Path(out), compression)


class McapSink:
    """An MCAP file through foxglove-sdk: one set of channels per stream (see mapping.py).

    zstd runs at level 1: several times faster than the default level 3 on camera frames,
    for a few percent of size, and it is what keeps 1080p at 30 fps on two cores."""

    def __init__(self, path: Path, compression: str = "zstd") -> None:
        import foxglove
        from foxglove.mcap import MCAPCompression, MCAPWriteOptions

        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
        kind = {"zstd": MCAPCompression.Zstd, "lz4": MCAPCompression.Lz4, "none": None}[compression]
        options = MCAPWriteOptions(compression=kind, compression_level=1 if compression == "zstd" else 0)
        self._context = foxglove.Context()  # our own: nothing else logged in this process lands here
        self._file, self._writer = self._open(
            path, lambda f: foxglove.open_mcap(f, context=self._context, writer_options=options)
        )
        self._streams: dict[str, _Channels] = {}

    @staticmethod
    def _open(path: Path, open_mcap: Callable[[io.FileIO], Any]) -> tuple[io.FileIO, Any]:
        """A new file made by us (foxglove writes through the file object, never opening the
        path itself) and foxglove's writer on it; a failure leaves no file."""
        with OutputFolder(path.parent) as folder:
            file = folder.open_new(path.name)
            made = os.fstat(file.fileno())
            try:
                return file, open_mcap(file)
            except BaseException:
                file.close()
                folder.discard(path.name, made)
                raise

    def write(self, desc: M.Description, frame: Frame) -> int:
        channels = self._streams.get(desc.name)
        if channels is None:
            channels = self._streams[desc.name] = _Channels(desc, self._context)
        return channels.write(frame)

    def flush(self) -> None:
        self._writer.flush()  # ends the chunk: what is on disk stays readable after a kill -9

    def written(self) -> int:
        """The file's size on disk: the chunks written so far (one is built in memory)."""
        return os.fstat(self._file.fileno()).st_size

    def close(self) -> None:
        try:
            self._writer.close()  # summary, index and footer
        finally:
            self._file.close()


class _Channels:
    """One stream's channels in an MCAP file."""

    def __init__(self, desc: M.Description, context: Any) -> None:
        from foxglove import Channel
        from foxglove.channels import ImageAnnotationsChannel, RawImageChannel

        self.desc = desc
        self.image = RawImageChannel(M.topic(desc.name, M.IMAGE), metadata=desc.metadata(), context=context)
        self.frame = Channel(
            M.topic(desc.name, M.FRAME), schema=M.FRAME_SCHEMA, metadata=desc.metadata(), context=context
        )
        self._overlay_topic, self._context = M.topic(desc.name, M.ANNOTATIONS), context
        self._overlays: ImageAnnotationsChannel | None = None

    def write(self, frame: Frame) -> int:
        stamp = frame.timestamp_ns
        self.frame.log(M.frame_record(frame), log_time=stamp)  # before the image: see mapping.py
        self.image.log(M.raw_image(frame, self.desc), log_time=stamp)
        marks = M.image_annotations(frame.meta, stamp)
        if marks is not None:
            if self._overlays is None:
                from foxglove.channels import ImageAnnotationsChannel

                self._overlays = ImageAnnotationsChannel(self._overlay_topic, context=self._context)
            self._overlays.log(marks, log_time=stamp)
        return frame.image.nbytes


class VideoSink:
    """A video per stream through OpenCV (lossy, 8-bit BGR: for sharing, not for replay).
    Its frame rate comes from the first frames' timestamps, so it opens after a few.

    Video encoders take even widths and heights only (4:2:0 chroma): OpenCV's writer
    would crop 641x481 to 640x480 without a word. So an odd side is padded instead, by
    repeating the last column or row, and a warning says so once per stream: every
    pixel recorded is in the video."""

    PROBE_FRAMES = 15

    def __init__(self, path: Path, names: list[str]) -> None:
        one = len(names) == 1
        self._files = {n: path.name if one else f"{path.stem}-{n}{path.suffix}" for n in names}
        self._fourcc = VIDEO_SUFFIXES[path.suffix.lower()]
        self._writers: dict[str, Any] = {}
        self._waiting: dict[str, list[np.ndarray]] = {}
        self._stamps: dict[str, list[int]] = {}
        self._levels: dict[str, Any] = {}
        self._padded: set[str] = set()
        self._reserved: dict[str, os.stat_result] = {}
        self._folder = OutputFolder(path.parent)
        try:  # every name now, so that a refusal comes before any frame, and leaves nothing
            for n, file in self._files.items():
                self._reserved[n] = self._folder.reserve(file)
        except BaseException:
            self._release()
            raise

    def write(self, desc: M.Description, frame: Frame) -> int:
        image = self._even(desc.name, self._bgr8(desc, frame.image))
        if desc.name in self._writers:
            self._writers[desc.name].write(image)
            return frame.image.nbytes
        self._waiting.setdefault(desc.name, []).append(image)
        self._stamps.setdefault(desc.name, []).append(frame.timestamp_ns or 0)
        if len(self._waiting[desc.name]) >= self.PROBE_FRAMES:
            self._open(desc.name)
        return frame.image.nbytes

    def _open(self, name: str) -> None:
        import cv2

        frames, stamps = self._waiting.pop(name), self._stamps.pop(name)
        steps = np.diff(stamps)
        fps = 1e9 / float(np.median(steps)) if len(steps) and np.median(steps) > 0 else 30.0
        fps = float(min(240, max(1, round(fps))))  # MPEG-4 takes no time base finer than 1/65535
        h, w = frames[0].shape[:2]
        # OpenCV opens (and truncates) the name itself: the empty file reserved for it, in
        # a folder no one else can change, reached through the folder's descriptor.
        target = self._folder.proc_path(self._files[name])
        writer = cv2.VideoWriter(target, cv2.VideoWriter.fourcc(*self._fourcc), fps, (w, h))
        if not writer.isOpened():
            raise ShmviewError(f"OpenCV cannot write {self._folder.path / self._files[name]} ({self._fourcc})")
        self._writers[name] = writer
        for image in frames:
            writer.write(image)

    def _bgr8(self, desc: M.Description, image: np.ndarray) -> np.ndarray:
        import cv2

        from viewer.view.imaging import AutoLevels, snapshot_array, to_uint8

        if image.dtype != np.uint8:
            levels = self._levels.setdefault(desc.name, AutoLevels())
            image = to_uint8(image, *levels.update(image))
        image = snapshot_array(image, desc.pixel_format)
        if image.ndim == 2 or image.shape[2] == 1:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) if image.shape[2] == 4 else image

    def _even(self, name: str, image: np.ndarray) -> np.ndarray:
        """``image`` with an odd width or height padded to even (see the class)."""
        import cv2

        h, w = image.shape[:2]
        if not (h % 2 or w % 2):
            return image
        if name not in self._padded:
            self._padded.add(name)
            log.warning(
                "%s: its %dx%d frames are padded to %dx%d in %s: video encoders take even sizes only "
                "(the last %s repeated)",
                name,
                w,
                h,
                w + w % 2,
                h + h % 2,
                self._folder.path / self._files[name],
                "column and row are" if w % 2 and h % 2 else "column is" if w % 2 else "row is",
            )
        return cv2.copyMakeBorder(image, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)

    def flush(self) -> None:
        pass

    def written(self) -> int:
        """The bytes in the video files so far (OpenCV writes them as it goes)."""
        return sum(os.stat(self._folder.proc_path(f)).st_size for f in self._files.values())

    def close(self) -> None:
        try:
            for name in list(self._waiting):
                self._open(name)  # a short recording: fewer frames than the probe
        finally:
            for writer in self._writers.values():
                writer.release()
            self._release()

    def _release(self) -> None:
        """Remove the names reserved for streams that gave no frame; let the folder go."""
        for name, made in self._reserved.items():
            if name not in self._writers:
                self._folder.discard(self._files[name], made)
        self._folder.close()


class ImageFolderSink:
    """One file per frame: PNG (8 or 16 bits, lossless) or TIFF (float), NAME_INDEX; after
    a producer restart (indices start again) NAME_restartK_INDEX. Refused at once in a
    folder that already holds frames of one of the streams: nothing is ever replaced."""

    def __init__(self, folder: Path, names: list[str]) -> None:
        self._folder = OutputFolder(folder, create=True)
        present = self._folder.names()
        for name in names:
            pattern = re.compile(re.escape(name) + r"_(restart[0-9]+_)?[0-9]{8,}\.(png|tiff)")
            clash = next((f for f in sorted(present) if pattern.fullmatch(f)), None)
            if clash is not None:
                self._folder.close()
                raise OutputError(
                    f"{folder} already holds frames of {name} ({clash}): shmview never "
                    "replaces anything; record into another folder",
                    path=str(folder / clash),
                )
        self._last: dict[str, int] = {}
        self._restarts: dict[str, int] = {}
        self._written = 0

    def write(self, desc: M.Description, frame: Frame) -> int:
        import cv2

        from viewer.view.imaging import snapshot_array

        suffix = ".tiff" if frame.image.dtype.kind == "f" else ".png"
        file = self._file_name(desc.name, frame.index or 0) + suffix
        # PNG's own setting for PNG only: OpenCV warns on stderr about a setting its encoder lacks
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1] if suffix == ".png" else []
        ok, data = cv2.imencode(suffix, snapshot_array(frame.image, desc.pixel_format), params)
        if not ok:
            raise ShmviewError(f"OpenCV cannot encode {file}")
        self._folder.write_new(file, data.tobytes())  # never cv2.imwrite: it would open the path itself
        self._written += data.nbytes
        return frame.image.nbytes

    def _file_name(self, name: str, index: int) -> str:
        if index <= self._last.get(name, -1):  # the producer restarted: its indices start again
            self._restarts[name] = self._restarts.get(name, 0) + 1
        self._last[name] = index
        restarts = self._restarts.get(name, 0)
        return f"{name}_restart{restarts}_{index:08d}" if restarts else f"{name}_{index:08d}"

    def flush(self) -> None:
        pass

    def written(self) -> int:
        return self._written

    def close(self) -> None:
        self._folder.close()
