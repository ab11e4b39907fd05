"""``shmview bridge``: remote streams mirrored into local shmview streams.

Liveliness drives everything: when the token of a remote key ``shmview/<host>/<name>``
appears, the bridge subscribes to that key through a one-frame ring (Zenoh keeps only the
newest frame not yet taken: newest-frame semantics at this end too) and a thread writes
each frame into the local stream ``<prefix><host>.<name>``. When the token goes (its
producer stopped, its sharer died, the link broke), the subscription ends and the local
stream is closed, so local viewers say STALE; when it comes back, so does the stream, in
its new shape if it changed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from viewer.errors import InvalidNameError, ShmviewError
from viewer.net.codec import CodecError, Header, decode
from viewer.net.config import KEY_ROOT, split_key
from viewer.registry import validate_name
from viewer.writer import FrameWriter

log = logging.getLogger(__name__)

TOKEN_QUEUE = 1024  # liveliness changes are never dropped
META_BYTES = 65536  # mirrored frames carry the remote metadata plus where it came from
Report = Callable[[str], None]


def mirror_name(prefix: str, host_id: str, name: str) -> str:
    return validate_name(f"{prefix}{host_id}.{name}")


class Mirror:
    """One live remote stream written into one local stream, on its own thread, from its
    token's appearance to its disappearance (or the bridge's end)."""

    def __init__(self, session: Any, key: str, local: str, report: Report) -> None:
        import zenoh

        self.key, self.local, self.report = key, local, report
        self.host = key.split("/")[1]
        self._writer: FrameWriter | None = None
        self._subscriber = session.declare_subscriber(key, zenoh.handlers.RingChannel(1))
        self._thread = threading.Thread(target=self._run, args=(self._subscriber.handler,),
                                        name=f"mirror-{local}", daemon=True)
        self._thread.start()

    def stop(self, why: str) -> None:
        """End the subscription: the thread finishes its frame, closes the stream, ends."""
        self._why = why
        self._subscriber.undeclare()
        self._thread.join()

    def _run(self, frames: Any) -> None:
        import zenoh

        try:
            while True:
                try:
                    sample = frames.recv()
                except zenoh.ZError:  # the channel closed: stop() was called
                    return
                self._write(sample)
        except ShmviewError as exc:  # the local name taken by a producer here, no room in /dev/shm...
            log.error("not mirroring %s as %s: %s", self.key, self.local, exc)
        except Exception:  # a bad frame must not take the bridge down; say what happened
            log.exception("mirroring %s stopped", self.key)
        finally:
            self._close(getattr(self, "_why", "error"))

    def _write(self, sample: Any) -> None:
        try:
            head = Header.unpack(sample.attachment.to_bytes() if sample.attachment else b"")
            image = decode(head, sample.payload.to_bytes())
        except CodecError as exc:
            log.warning("%s: dropped a frame: %s", self.key, exc)
            return
        writer = self._writer_for(head)
        origin = {"host": self.host, "key": self.key, "codec": head.codec, "index": head.index}
        try:
            writer.write(image, timestamp_ns=head.timestamp_ns, meta={**(head.meta or {}), "_origin": origin})
        except ShmviewError as exc:  # metadata too big for the mirror: keep the pixels
            log.warning("%s: %s; frame written without its metadata", self.key, exc)
            writer.write(image, timestamp_ns=head.timestamp_ns, meta={"_origin": origin})

    def _writer_for(self, head: Header) -> FrameWriter:
        w = self._writer
        if w is not None and (w.layout.shape, w.layout.dtype.name, w.layout.pixel_format) == (
                head.shape, head.dtype, head.pixel_format):
            return w
        self._close("shape changed")
        self._writer = FrameWriter(self.local, head.shape, head.dtype, pixel_format=head.pixel_format,
                                   meta_bytes=META_BYTES)
        self.report(f"mirroring {self.key} as {self.local} ({head.codec}, {head.shape[1]}x{head.shape[0]} "
                    f"{head.pixel_format} {head.dtype})")
        return self._writer

    def _close(self, why: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self.report(f"{self.local} stale: {why}")


class Bridge:
    """Mirrors every remote stream whose key matches ``pattern``, while it is live."""

    def __init__(self, session: Any, pattern: str = f"{KEY_ROOT}/**", prefix: str = "",
                 report: Report = log.info) -> None:
        import zenoh

        self.session, self.pattern, self.prefix, self.report = session, pattern, prefix, report
        self.mirrors: dict[str, Mirror] = {}
        self._refused: set[str] = set()
        # A channel, not a callback: no Python code ever runs on Zenoh's own threads (a
        # callback still in flight while the interpreter exits aborts the process).
        self._tokens = session.liveliness().declare_subscriber(
            pattern, zenoh.handlers.FifoChannel(TOKEN_QUEUE), history=True)
        self._thread = threading.Thread(target=self._follow, args=(self._tokens.handler,),
                                        name="bridge-liveliness", daemon=True)
        self._thread.start()

    def _follow(self, tokens: Any) -> None:
        import zenoh

        while True:
            try:
                sample = tokens.recv()
            except zenoh.ZError:  # the channel closed: close() was called
                return
            key = str(sample.key_expr)
            if sample.kind == zenoh.SampleKind.PUT:
                self._start(key)
            elif key in self.mirrors:
                self.mirrors.pop(key).stop("gone")

    def _start(self, key: str) -> None:
        if key in self.mirrors or key in self._refused:
            return
        parts = split_key(key)
        try:
            if parts is None:
                raise InvalidNameError(f"{key} is not a shmview stream key")
            local = mirror_name(self.prefix, *parts)
        except InvalidNameError as exc:
            self._refused.add(key)
            log.warning("not mirroring %s: %s", key, exc)
            return
        self.mirrors[key] = Mirror(self.session, key, local, self.report)

    def close(self) -> None:
        self._tokens.undeclare()
        self._thread.join()
        for mirror in self.mirrors.values():
            mirror.stop("bridge stopped")
        self.mirrors.clear()
