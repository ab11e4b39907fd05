"""Tear-free frames through one shared-memory block: the public classes in one place.

FrameWriter (viewer/stream/writer.py) owns a stream; FrameReader and RawReader
(viewer/stream/reader.py) read it; Frame, StreamInfo and State (viewer/stream/frames.py) are what they hand out.
"""

from viewer.stream.frames import Frame, State, StreamInfo
from viewer.stream.reader import MAX_READ_ATTEMPTS, FrameReader, RawReader
from viewer.stream.writer import FrameWriter

__all__ = ["MAX_READ_ATTEMPTS", "Frame", "FrameReader", "FrameWriter", "RawReader", "State", "StreamInfo"]
