"""shmview: live frames between processes through shared memory.

``import viewer`` pulls in numpy only: no Qt, no OpenCV.
"""

from viewer.errors import (
    BusyError,
    ConfigError,
    DtypeError,
    FormatError,
    FrameMismatchError,
    InvalidNameError,
    MetadataError,
    OutputError,
    ProtocolError,
    RegistryError,
    ShmviewError,
    SourceError,
    SourceNotFoundError,
    StreamExistsError,
    StreamGoneError,
    StreamNotFoundError,
    StreamNotFoundInTimeError,
    StreamTimeoutError,
    TornFrameError,
)
from viewer.stream import Frame, FrameReader, FrameWriter, RawReader, State, StreamInfo

__version__ = "0.3.0"

__all__ = [
    "BusyError",
    "ConfigError",
    "DtypeError",
    "FormatError",
    "Frame",
    "FrameMismatchError",
    "FrameReader",
    "FrameWriter",
    "InvalidNameError",
    "MetadataError",
    "OutputError",
    "ProtocolError",
    "RawReader",
    "RegistryError",
    "ShmviewError",
    "SourceError",
    "SourceNotFoundError",
    "State",
    "StreamExistsError",
    "StreamGoneError",
    "StreamInfo",
    "StreamNotFoundError",
    "StreamNotFoundInTimeError",
    "StreamTimeoutError",
    "TornFrameError",
]
