"""Tear-free frames through one shared-memory block: the public classes in one place.

FrameWriter (viewer/stream/writer.py) owns a stream; FrameReader (viewer/stream/reader.py)
and RawReader (viewer/stream/raw.py) read it; Frame, StreamInfo and State
(viewer/stream/frames.py) are what they hand out.
"""

from viewer.stream.frames import Frame, State, StreamInfo
from viewer.stream.raw import RawReader
from viewer.stream.reader import MAX_READ_ATTEMPTS, FrameReader
from viewer.stream.writer import FrameWriter

__all__ = ["MAX_READ_ATTEMPTS", "Frame", "FrameReader", "FrameWriter", "RawReader", "State", "StreamInfo"]
