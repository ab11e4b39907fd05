"""The exceptions shmview raises. Catch ShmviewError for all of them."""

from __future__ import annotations

from typing import Any


class ShmviewError(Exception):
    """Base class. ``details`` carries structured context for programs that want it."""

    def __init__(self, message: str, /, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class InvalidNameError(ShmviewError, ValueError):
    """A stream name that is empty, too long, or could escape its namespace."""


class StreamNotFoundError(ShmviewError):
    """No live stream (or block) of that name."""


class StreamTimeoutError(ShmviewError, TimeoutError):
    """No frame (or no new frame) within the time a caller was willing to wait."""


class StreamNotFoundInTimeError(StreamNotFoundError, StreamTimeoutError):
    """``FrameReader.open(name, timeout=...)`` waited for the stream and it did not appear:
    a StreamNotFoundError and a TimeoutError alike, so either ``except`` catches it."""


class StreamGoneError(ShmviewError):
    """The stream a reader was attached to ended: its producer closed it or died."""


class StreamExistsError(ShmviewError):
    """Another live producer already owns that stream name."""


class ProtocolError(ShmviewError):
    """A block whose header is missing, corrupt, or describes more than the block holds."""


class FrameMismatchError(ShmviewError, ValueError):
    """A frame whose shape or dtype differs from the stream's."""


class UsageError(ShmviewError):
    """Bad arguments at the command line: the message is the line to print (exit code 2)."""


class ReplayArgumentError(ShmviewError, ValueError):
    """Arguments that do not fit the recording (``--name`` with several streams)."""


class ConfigError(ShmviewError, ValueError):
    """An argument out of range for a producer or source (a pattern, a thread count)."""


class RegistryError(ShmviewError, PermissionError):
    """The stream registry folder is not a private folder of the current user."""


class FormatError(ShmviewError, ValueError):
    """A shape, pixel format, slot count or frame size a stream cannot carry."""


class MetadataError(ShmviewError, ValueError):
    """Per-frame metadata that is not a JSON-serialisable dict, or does not fit the
    stream's metadata capacity. Nothing is published."""


class DtypeError(FormatError, TypeError):
    """A dtype a stream cannot carry (shmview takes uint8, uint16, float32 and float64)."""


class NoFrameYet(ShmviewError):
    """Raised by a live source's read() when nothing new arrived in its wait: ask again.
    Not a failure: the producer loop catches it and asks again."""

    def __init__(self, message: str = "no new frame yet", /, **details: Any) -> None:
        super().__init__(message, **details)


class ProducerError(ShmviewError):
    """A producer under test did not come up (it exited before its ready line, or printed
    none in time) or did not end when asked to; the message quotes its stderr."""


class SourceNotFoundError(ShmviewError):
    """A producer's device, file or folder is not there or cannot be opened."""


class SourceError(ShmviewError):
    """A producer's source is there but unusable (undecodable file, no readable image)."""


class RecordingError(SourceError):
    """A recording that is not what it claims: a corrupt or oversized record, a chunk that
    does not decompress to its stated size, a stream description or frame record that does
    not hold up. (A file merely cut short is not an error: it is read up to where it stops.)"""


class TornFrameError(ShmviewError):
    """A zero-copy view whose slot the writer reused while the caller was using it: what
    was computed from it may mix two frames."""


class BusyError(ShmviewError):
    """No consistent frame could be copied within the retry cap (a writer stuck mid-frame)."""


class OutputError(ShmviewError):
    """An output (recording, image, snapshot) that would follow a symlink, replace what is
    there, or land in a folder another user can change. Nothing is written."""


class CodecError(ShmviewError):
    """A network message that is not a shmview frame, asks for more than the receiver
    allows, or whose pixels do not decode to what its header says."""


class NetError(ShmviewError):
    """A Zenoh session that cannot be opened, or a network setting that cannot work."""


class InsecureNetworkError(NetError):
    """A network setting through which another user or machine could read or publish
    without proving it may: a plain tcp endpoint, a socket outside a private folder, TLS
    without client certificates. Refused unless the caller says ``insecure``."""


class CertificateError(NetError):
    """A TLS folder that cannot be used: a file missing or unreadable, a private key
    others may read, a certificate not from the folder's CA or out of its dates."""
