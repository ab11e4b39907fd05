"""Where recorded frames go: an MCAP file, a video file, or a folder of images.

A sink takes ``write(desc, frame)`` from one thread, returns the bytes it took (the raw
frame's), and ``close()`` finishes the file. ``open_sink`` picks one from the output path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from viewer.errors import ShmviewError
from viewer.frames import Frame
from viewer.recording import mapping as M

log = logging.getLogger(__name__)

COMPRESSIONS = ("zstd", "lz4", "none")
VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class Sink(Protocol):
    def write(self, desc: M.Description, frame: Frame) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def open_sink(out: str, names: list[str], compression: str = "zstd") -> Sink:
    """The sink ``out`` asks for: DIR/ (or an existing folder) for images, .mp4/.avi/.mkv
    for video, anything else (normally .mcap) for MCAP. A string, not a Path: a Path
    forgets the trailing slash that says "folder"."""
    if out.endswith("/") or Path(out).is_dir():
        return ImageFolderSink(Path(out))
    path = Path(out)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoSink(path, names)
    return McapSink(path, compression)


class McapSink:
    """An MCAP file through foxglove-sdk: one set of channels per stream (see mapping.py).

    zstd runs at level 1: several times faster than the default level 3 on camera frames,
    for a few percent of size, and it is what keeps 1080p at 30 fps on two cores."""

    def __init__(self, path: Path, compression: str = "zstd") -> None:
        import foxglove
        from foxglove.mcap import MCAPCompression, MCAPWriteOptions

        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
        if path.exists():
            raise ShmviewError(f"{path} already exists: choose another name or remove it")
        if not path.parent.is_dir():
            raise ShmviewError(f"folder {path.parent} does not exist")
        kind = {"zstd": MCAPCompression.Zstd, "lz4": MCAPCompression.Lz4, "none": None}[compression]
        options = MCAPWriteOptions(compression=kind, compression_level=1 if compression == "zstd" else 0)
        self._context = foxglove.Context()  # our own: nothing else logged in this process lands here
        self._writer = foxglove.open_mcap(path, context=self._context, writer_options=options)
        self._streams: dict[str, _Channels] = {}

    def write(self, desc: M.Description, frame: Frame) -> int:
        channels = self._streams.get(desc.name)
        if channels is None:
            channels = self._streams[desc.name] = _Channels(desc, self._context)
        return channels.write(frame)

    def flush(self) -> None:
        self._writer.flush()  # ends the chunk: what is on disk stays readable after a kill -9

    def close(self) -> None:
        self._writer.close()  # summary, index and footer


class _Channels:
    """One stream's channels in an MCAP file."""

    def __init__(self, desc: M.Description, context: Any) -> None:
        from foxglove import Channel
        from foxglove.channels import ImageAnnotationsChannel, RawImageChannel

        self.desc = desc
        self.image = RawImageChannel(M.topic(desc.name, M.IMAGE), metadata=desc.metadata(), context=context)
        self.frame = Channel(M.topic(desc.name, M.FRAME), schema=M.FRAME_SCHEMA, metadata=desc.metadata(),
                             context=context)
        self._overlay_topic, self._context = M.topic(desc.name, M.ANNOTATIONS), context
        self._overlays: ImageAnnotationsChannel | None = None

    def write(self, frame: Frame) -> int:
        stamp = frame.timestamp_ns
        self.frame.log(M.frame_record(frame), log_time=stamp)  # before the image: see mapping.py
        self.image.log(M.raw_image(frame, self.desc), log_time=stamp)
        marks = M.annotations(frame.meta, stamp)
        if marks is not None:
            if self._overlays is None:
                from foxglove.channels import ImageAnnotationsChannel

                self._overlays = ImageAnnotationsChannel(self._overlay_topic, context=self._context)
            self._overlays.log(marks, log_time=stamp)
        return frame.image.nbytes


class VideoSink:
    """A video per stream through OpenCV (lossy, 8-bit BGR: for sharing, not for replay).
    Its frame rate comes from the first frames' timestamps, so it opens after a few."""

    PROBE_FRAMES = 15

    def __init__(self, path: Path, names: list[str]) -> None:
        if not path.parent.is_dir():
            raise ShmviewError(f"folder {path.parent} does not exist")
        self._paths = {n: path if len(names) == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}") for n in names}
        for p in self._paths.values():
            if p.exists():
                raise ShmviewError(f"{p} already exists: choose another name or remove it")
        self._fourcc = VIDEO_SUFFIXES[path.suffix.lower()]
        self._writers: dict[str, Any] = {}
        self._waiting: dict[str, list[np.ndarray]] = {}
        self._stamps: dict[str, list[int]] = {}
        self._levels: dict[str, Any] = {}

    def write(self, desc: M.Description, frame: Frame) -> int:
        image = self._bgr8(desc, frame.image)
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
        writer = cv2.VideoWriter(str(self._paths[name]), cv2.VideoWriter.fourcc(*self._fourcc), fps, (w, h))
        if not writer.isOpened():
            raise ShmviewError(f"OpenCV cannot write {self._paths[name]} ({self._fourcc})")
        self._writers[name] = writer
        for image in frames:
            writer.write(image)

    def _bgr8(self, desc: M.Description, image: np.ndarray) -> np.ndarray:
        import cv2

        from viewer.imaging import AutoLevels, snapshot_array, to_uint8

        if image.dtype != np.uint8:
            levels = self._levels.setdefault(desc.name, AutoLevels())
            image = to_uint8(image, *levels.update(image))
        image = snapshot_array(image, desc.pixel_format)
        if image.ndim == 2 or image.shape[2] == 1:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) if image.shape[2] == 4 else image

    def flush(self) -> None:
        pass

    def close(self) -> None:
        for name in list(self._waiting):
            self._open(name)  # a short recording: fewer frames than the probe
        for writer in self._writers.values():
            writer.release()


class ImageFolderSink:
    """One file per frame: PNG (8 or 16 bits, lossless) or TIFF (float), NAME_INDEX."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder

    def write(self, desc: M.Description, frame: Frame) -> int:
        import cv2

        from viewer.imaging import snapshot_array

        suffix = ".tiff" if frame.image.dtype.kind == "f" else ".png"
        path = self.folder / f"{desc.name}_{frame.index:08d}{suffix}"
        ok, data = cv2.imencode(suffix, snapshot_array(frame.image, desc.pixel_format),
                                [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise ShmviewError(f"OpenCV cannot encode {path.name}")
        path.write_bytes(data.tobytes())  # an OSError says why; cv2.imwrite's False never does
        return frame.image.nbytes

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
