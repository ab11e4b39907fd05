"""``shmview bridge``: remote streams mirrored into local shmview streams.

Liveliness drives everything: when the token of a remote key ``shmview/<host>/<name>``
appears, the bridge subscribes to that key through a one-frame ring (Zenoh keeps only the
newest frame not yet taken: newest-frame semantics at this end too) and a thread writes
each frame into the local stream ``<prefix><host>.<name>``. When the token goes (its
producer stopped, its sharer died, the link broke), the subscription ends and the local
stream is closed, so local viewers say STALE; when it comes back, so does the stream, in
its new shape if it changed.

Whatever a peer sends, it can neither end a mirror nor cost more than ``Limits`` allow:
a bad frame is dropped with a rate-limited warning and the next good one is mirrored;
a frame's size is checked from its header before anything is decoded; at most
``max_streams`` keys are mirrored (one thread each, none for tokens over the cap); and
mirror blocks are made one at a time, allocated in full, only while /dev/shm keeps a
share of its size free for the user's own producers.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from viewer.errors import CodecError, InvalidNameError, ShmviewError
from viewer.net.codec import MAX_HEADER_BYTES, Header, decode
from viewer.net.config import KEY_ROOT, split_key
from viewer.stream import protocol as P
from viewer.stream.blocks import SHM_DIR
from viewer.stream.registry import validate_name
from viewer.stream.writer import FrameWriter

log = logging.getLogger(__name__)

TOKEN_QUEUE = 1024  # liveliness changes are never dropped
META_BYTES = 65536  # mirrored frames carry the remote metadata plus where it came from
SLOTS = 3
DEFAULT_MAX_FRAME_BYTES = 64 << 20  # a 3840x2160 frame of 4 uint16 channels fits; /dev/shm is GBs
DEFAULT_MAX_STREAMS = 16
KEEP_FREE = 0.25  # share of /dev/shm a bridge never takes: the user's own producers need room
WARN_EVERY_S = 5.0  # at most one warning line per mirror (and per bridge) this often
REMAKE_EVERY_S = 1.0  # a mirror's block is remade (new shape) at most this often
WAITING_MAX = 1024  # keys over --max-streams remembered, to mirror once a slot frees
Report = Callable[[str], None]


@dataclass(frozen=True)
class Limits:
    """What one bridge lets its peers cost."""

    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_streams: int = DEFAULT_MAX_STREAMS
    keep_free: float = KEEP_FREE

    def zenoh_settings(self) -> dict[str, int]:
        """Zenoh reassembles a message in memory before anyone sees it (1 GiB by default):
        no bigger than the largest frame this bridge would take, encoded, with its header."""
        return {"transport/link/rx/max_message_size": _payload_cap(self.max_frame_bytes) + MAX_HEADER_BYTES}


def _payload_cap(frame_bytes: int) -> int:
    # PNG of noise is a little bigger than the raw pixels, a small JPEG's tables are ~600 bytes
    return 2 * frame_bytes + 65536


def mirror_name(prefix: str, host_id: str, name: str) -> str:
    return validate_name(f"{prefix}{host_id}.{name}")


class Throttled:
    """Warnings about one subject: the first at once, then at most one line every
    WARN_EVERY_S saying how many were held back, so a peer cannot flood the log."""

    def __init__(self, subject: str) -> None:
        self.subject, self.count, self._held, self._last, self._next = subject, 0, 0, "", 0.0

    def warn(self, what: str) -> None:
        self.count += 1
        self._held, self._last = self._held + 1, what
        now = time.monotonic()
        if now >= self._next:
            self._next = now + WARN_EVERY_S
            self.flush()

    def flush(self) -> None:
        if self._held > 1:
            log.warning("%s: %s (and %d more like it since the last warning)", self.subject, self._last, self._held - 1)
        elif self._held:
            log.warning("%s: %s", self.subject, self._last)
        self._held = 0


_room = threading.Lock()  # process-wide: one mirror block at a time is checked and made


def claimed_writer(name: str, head: Header, keep_free: float) -> FrameWriter:
    """A mirror's stream, made only if /dev/shm still has ``keep_free`` of its size free
    after it. The check and the making happen under one lock, and FrameWriter allocates
    and touches the whole block before it returns, so the next check sees it: two mirrors
    can never both pass the check and then run /dev/shm out."""
    layout = P.make_layout(head.shape, head.dtype, head.pixel_format, SLOTS, META_BYTES)
    with _room:
        vfs = os.statvfs(SHM_DIR)
        free, total = vfs.f_bavail * vfs.f_frsize, vfs.f_blocks * vfs.f_frsize
        if free - layout.block_size < keep_free * total:
            raise ShmviewError(
                f"a {layout.block_size:,}-byte mirror would leave less than "
                f"{keep_free:.0%} of {SHM_DIR} free ({free:,} of {total:,} bytes free)"
            )
        return FrameWriter(
            name, head.shape, head.dtype, pixel_format=head.pixel_format, slots=SLOTS, meta_bytes=META_BYTES
        )


class Mirror:
    """One live remote stream written into one local stream, on its own thread, from its
    token's appearance to its disappearance (or the bridge's end)."""

    def __init__(self, session: Any, key: str, local: str, report: Report, limits: Limits) -> None:
        import zenoh

        self.key, self.local, self.report, self.limits = key, local, report, limits
        self.host = key.split("/")[1]
        self.drops = Throttled(key)
        self._writer: FrameWriter | None = None
        self._remake_at = 0.0
        self._subscriber = session.declare_subscriber(key, zenoh.handlers.RingChannel(1))
        self._thread = threading.Thread(
            target=self._run, args=(self._subscriber.handler,), name=f"mirror-{local}", daemon=True
        )
        self._thread.start()

    def stop(self, why: str) -> None:
        """End the subscription: the thread finishes its frame, closes the stream, ends."""
        self.end(why)
        self._thread.join()

    def end(self, why: str) -> None:
        """stop() without waiting: the thread closes the stream (its manager's shutdown
        included) on its own, so a bridge ends all its mirrors at once, not one by one."""
        self._why = why
        self._subscriber.undeclare()

    def join(self) -> None:
        self._thread.join()

    def _run(self, frames: Any) -> None:
        import zenoh

        try:
            while True:
                try:
                    sample = frames.recv()
                except zenoh.ZError:  # the channel closed: stop() was called
                    return
                try:
                    self._write(sample)
                except Exception as exc:  # nothing a peer sends may end the mirror: drop, say, go on
                    log.debug("%s: frame failed", self.key, exc_info=True)
                    self.drops.warn(f"dropped a frame: {type(exc).__name__}: {exc}")
        finally:
            self.drops.flush()
            self._close(getattr(self, "_why", "error"))

    def _write(self, sample: Any) -> None:
        try:
            head = self._header(sample)
            image = decode(head, sample.payload.to_bytes())
        except CodecError as exc:
            self.drops.warn(f"dropped a frame: {exc}")
            return
        writer = self._writer_for(head)
        if writer is None:
            return
        origin = {"host": self.host, "key": self.key, "codec": head.codec, "index": head.index}
        try:
            writer.write(image, timestamp_ns=head.timestamp_ns, meta={**(head.meta or {}), "_origin": origin})
        except ShmviewError as exc:  # metadata too big for the mirror: keep the pixels
            self.drops.warn(f"{exc}; frame written without its metadata")
            writer.write(image, timestamp_ns=head.timestamp_ns, meta={"_origin": origin})

    def _header(self, sample: Any) -> Header:
        """The frame's header, checked, with its size checked against the limit before
        its payload is copied or decoded."""
        if sample.attachment is None or len(sample.attachment) > MAX_HEADER_BYTES:
            raise CodecError("a message without a shmview frame header (or with one too big)")
        head = Header.unpack(sample.attachment.to_bytes())
        if head.frame_bytes > self.limits.max_frame_bytes:
            raise CodecError(
                f"a {head.shape[1]}x{head.shape[0]} {head.dtype} frame of {head.frame_bytes:,} bytes "
                f"is over --max-frame-bytes ({self.limits.max_frame_bytes:,})"
            )
        if len(sample.payload) > _payload_cap(head.frame_bytes):
            raise CodecError(f"a {len(sample.payload):,}-byte payload for a {head.frame_bytes:,}-byte frame")
        return head

    def _writer_for(self, head: Header) -> FrameWriter | None:
        """The local stream for frames like ``head``'s: (re)made at most once every
        REMAKE_EVERY_S, so a peer that changes shape every frame cannot make the bridge
        allocate a block every frame; None while that, or /dev/shm, says no."""
        w = self._writer
        if w is not None and (w.layout.shape, w.layout.dtype.name, w.layout.pixel_format) == (
            head.shape,
            head.dtype,
            head.pixel_format,
        ):
            return w
        if time.monotonic() < self._remake_at:
            self.drops.warn(f"dropped a frame: its stream changed shape again within {REMAKE_EVERY_S} s")
            return None
        self._remake_at = time.monotonic() + REMAKE_EVERY_S
        self._close("shape changed")
        try:
            self._writer = claimed_writer(self.local, head, self.limits.keep_free)
        except ShmviewError as exc:  # the name taken by a producer here, no room: try again later
            self.drops.warn(f"not mirroring as {self.local} for now: {exc}")
            return None
        self.report(
            f"mirroring {self.key} as {self.local} ({head.codec}, {head.shape[1]}x{head.shape[0]} "
            f"{head.pixel_format} {head.dtype})"
        )
        return self._writer

    def _close(self, why: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self.report(f"{self.local} stale: {why}")


class Bridge:
    """Mirrors every remote stream whose key matches ``pattern``, while it is live, up to
    ``limits.max_streams`` at a time."""

    def __init__(
        self,
        session: Any,
        pattern: str = f"{KEY_ROOT}/**",
        prefix: str = "",
        report: Report = log.info,
        limits: Limits | None = None,
    ) -> None:
        import zenoh

        self.session, self.pattern, self.prefix, self.report = session, pattern, prefix, report
        self.limits = limits or Limits()
        self.mirrors: dict[str, Mirror] = {}
        self._waiting: dict[str, None] = {}  # over the cap, oldest first (a dict keeps order)
        self.refusals = Throttled("bridge")
        # A channel, not a callback: no Python code ever runs on Zenoh's own threads (a
        # callback still in flight while the interpreter exits aborts the process).
        self._tokens = session.liveliness().declare_subscriber(
            pattern, zenoh.handlers.FifoChannel(TOKEN_QUEUE), history=True
        )
        self._thread = threading.Thread(
            target=self._follow, args=(self._tokens.handler,), name="bridge-liveliness", daemon=True
        )
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
                continue
            self._waiting.pop(key, None)
            if key in self.mirrors:
                self.mirrors.pop(key).stop("gone")
                self._start_waiting()

    def _start(self, key: str) -> None:
        if key in self.mirrors or key in self._waiting:
            return
        local = self._local_name(key)
        if local is None:
            return
        if len(self.mirrors) >= self.limits.max_streams:
            if len(self._waiting) < WAITING_MAX:
                self._waiting[key] = None
            self.refusals.warn(
                f"not mirroring {key} (yet): already mirroring {len(self.mirrors)} streams, the --max-streams limit"
            )
            return
        self.mirrors[key] = Mirror(self.session, key, local, self.report, self.limits)

    def _local_name(self, key: str) -> str | None:
        """The local name for ``key``; None (and a throttled warning) if it has none. Not
        remembered: a peer could otherwise grow the bridge's memory one bad key at a time."""
        parts = split_key(key)
        try:
            if parts is None:
                raise InvalidNameError(f"{key} is not a shmview stream key")
            return mirror_name(self.prefix, *parts)
        except InvalidNameError as exc:
            self.refusals.warn(f"not mirroring {key}: {exc}")
            return None

    def _start_waiting(self) -> None:
        while self._waiting and len(self.mirrors) < self.limits.max_streams:
            key = next(iter(self._waiting))
            del self._waiting[key]
            self._start(key)

    def idle(self) -> str | None:
        """What a bridge that mirrors nothing says it waits for (None while it mirrors)."""
        if self.mirrors or self._waiting:
            return None
        return (
            f"a peer is reached, but no stream shared there matches {self.pattern} yet "
            "(shmview list --remote shows what is); waiting"
        )

    def close(self) -> None:
        self._tokens.undeclare()
        self._thread.join()
        for mirror in self.mirrors.values():
            mirror.end("bridge stopped")
        for mirror in self.mirrors.values():
            mirror.join()
        self.mirrors.clear()
        self.refusals.flush()
