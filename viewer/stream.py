"""Tear-free frames through one shared-memory block: the public classes in one place.

FrameWriter (viewer/writer.py) owns a stream; FrameReader and RawReader
(viewer/reader.py) read it; Frame and StreamInfo (viewer/frames.py) are what they hand out.
"""

from viewer.frames import Frame, StreamInfo
from viewer.reader import MAX_READ_ATTEMPTS, FrameReader, RawReader
from viewer.writer import FrameWriter

__all__ = ["MAX_READ_ATTEMPTS", "Frame", "FrameReader", "FrameWriter", "RawReader", "StreamInfo"]
