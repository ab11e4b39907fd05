"""``shmview bridge``: remote streams mirrored into local shmview streams.

Each remote key ``shmview/<host>/<name>`` becomes the local stream
``<prefix><host>.<name>``, written by its own thread from a one-frame mailbox (a newer
frame replaces one not yet written: newest-frame semantics at this end too). When the
remote stream's liveliness token goes (its producer stopped, its sharer died, the link
broke), the local stream is closed, so local viewers say STALE; the next frame opens it
again, with the new shape if it changed.
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

DATA_RING = 16  # frames waiting to be sorted into mailboxes: the oldest go first when full
TOKEN_QUEUE = 1024  # liveliness changes are never dropped
META_BYTES = 65536  # mirrored frames carry the remote metadata plus where it came from
Report = Callable[[str], None]


def mirror_name(prefix: str, host_id: str, name: str) -> str:
    return validate_name(f"{prefix}{host_id}.{name}")


class Mirror:
    """One remote stream written into one local stream, on its own thread."""

    def __init__(self, key: str, local: str, report: Report) -> None:
        self.key, self.local, self.report = key, local, report
        self.host = key.split("/")[1]
        self.alive: bool | None = None  # from liveliness: None until a token was seen
        self._cond = threading.Condition()
        self._sample: Any = None
        self._lost = self._stopping = False
        self._writer: FrameWriter | None = None
        self._thread = threading.Thread(target=self._run, name=f"mirror-{local}", daemon=True)
        self._thread.start()

    def offer(self, sample: Any) -> None:
        """A new frame from Zenoh's thread: keep only the newest."""
        if self.alive is False:
            return  # a frame still in flight after its stream was declared gone
        with self._cond:
            self._sample = sample
            self._cond.notify()

    def set_alive(self, alive: bool) -> None:
        with self._cond:
            self.alive = alive
            if not alive:
                self._sample, self._lost = None, True
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping or self._lost or self._sample is not None)
                    if self._stopping:
                        return
                    sample, lost, self._sample, self._lost = self._sample, self._lost, None, False
                if lost:
                    self._close("gone")
                if sample is not None:
                    self._write(sample)
        finally:
            self._close("bridge stopped")

    def _write(self, sample: Any) -> None:
        try:
            head = Header.unpack(sample.attachment.to_bytes() if sample.attachment else b"")
            image = decode(head, sample.payload.to_bytes())
        except CodecError as exc:
            log.warning("%s: dropped a frame: %s", self.key, exc)
            return
        writer = self._writer_for(head)
        meta = dict(head.meta or {})
        meta["_origin"] = {"host": self.host, "key": self.key, "codec": head.codec, "index": head.index}
        try:
            writer.write(image, timestamp_ns=head.timestamp_ns, meta=meta)
        except ShmviewError as exc:  # metadata too big for the mirror: keep the pixels
            log.warning("%s: %s; frame written without its metadata", self.key, exc)
            writer.write(image, timestamp_ns=head.timestamp_ns, meta={"_origin": meta["_origin"]})

    def _writer_for(self, head: Header) -> FrameWriter:
        w = self._writer
        if w is not None and (w.layout.shape, w.layout.dtype.name, w.layout.pixel_format) == (
                head.shape, head.dtype, head.pixel_format):
            return w
        self._close("shape changed")
        self._writer = FrameWriter(self.local, head.shape, head.dtype, pixel_format=head.pixel_format,
                                   meta_bytes=META_BYTES)
        self.report(f"mirroring {self.key} as {self.local} ({head.codec}, {_size(head.shape)} "
                    f"{head.pixel_format} {head.dtype})")
        return self._writer

    def _close(self, why: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self.report(f"{self.local} stale: {why}")


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"


class Bridge:
    """Mirrors every remote stream whose key matches ``pattern``."""

    def __init__(self, session: Any, pattern: str = f"{KEY_ROOT}/**", prefix: str = "",
                 report: Report = log.info) -> None:
        self.session, self.pattern, self.prefix, self.report = session, pattern, prefix, report
        self.mirrors: dict[str, Mirror] = {}
        self._lock = threading.Lock()
        self._refused: set[str] = set()
        # Channels, not callbacks: no Python code ever runs on Zenoh's own threads (a
        # callback still in flight while the interpreter exits aborts the process).
        import zenoh

        self._tokens = session.liveliness().declare_subscriber(
            pattern, zenoh.handlers.FifoChannel(TOKEN_QUEUE), history=True)
        self._data = session.declare_subscriber(pattern, zenoh.handlers.RingChannel(DATA_RING))
        self._threads = [self._drain(self._tokens.handler, self._on_token, "tokens"),
                         self._drain(self._data.handler, self._on_sample, "frames")]

    @staticmethod
    def _drain(handler: Any, deliver: Callable[[Any], None], what: str) -> threading.Thread:
        """A thread handing each sample of ``handler`` to ``deliver``, until the channel
        closes (its subscriber was undeclared)."""
        import zenoh

        def run() -> None:
            while True:
                try:
                    sample = handler.recv()
                except zenoh.ZError:
                    return
                deliver(sample)

        thread = threading.Thread(target=run, name=f"bridge-{what}", daemon=True)
        thread.start()
        return thread

    def _mirror(self, key: str) -> Mirror | None:
        with self._lock:
            if key in self.mirrors or key in self._refused:
                return self.mirrors.get(key)
            parts = split_key(key)
            try:
                if parts is None:
                    raise InvalidNameError(f"{key} is not a shmview stream key")
                local = mirror_name(self.prefix, *parts)
            except InvalidNameError as exc:
                self._refused.add(key)
                log.warning("not mirroring %s: %s", key, exc)
                return None
            mirror = self.mirrors[key] = Mirror(key, local, self.report)
            return mirror

    def _on_token(self, sample: Any) -> None:
        import zenoh

        mirror = self._mirror(str(sample.key_expr))
        if mirror is not None:
            mirror.set_alive(sample.kind == zenoh.SampleKind.PUT)

    def _on_sample(self, sample: Any) -> None:
        mirror = self._mirror(str(sample.key_expr))
        if mirror is not None:
            mirror.offer(sample)

    def close(self) -> None:
        self._data.undeclare()
        self._tokens.undeclare()
        for thread in self._threads:
            thread.join()
        with self._lock:
            mirrors, self.mirrors = list(self.mirrors.values()), {}
        for mirror in mirrors:
            mirror.stop()

