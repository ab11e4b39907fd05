"""FrameReader: read-only, tear-free access to the newest frame of a stream, from any
number of processes (RawReader, for a bare array, is viewer/stream/raw.py's).

The read procedure is in viewer/stream/protocol.py (docs/PROTOCOL.md).
"""

from __future__ import annotations

import math
import mmap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import orjson

from viewer.durations import duration
from viewer.errors import (
    BusyError,
    ConfigError,
    FrameMismatchError,
    ProtocolError,
    StreamGoneError,
    StreamNotFoundError,
    StreamNotFoundInTimeError,
    StreamTimeoutError,
    TornFrameError,
)
from viewer.stream import protocol as P
from viewer.stream.bell import ReaderBell
from viewer.stream.blocks import ReadOnlyBlock
from viewer.stream.frames import (
    GONE,
    INDEX,
    LIVE,
    META_LEN,
    META_LEN_MASK,
    PUBLISHED,
    SEQ,
    STALE,
    STAMP,
    BlockViews,
    Closing,
    Frame,
    State,
    StreamInfo,
)
from viewer.stream.registry import StreamRecord, is_live, read_record, reap, record_path, record_stamp, validate_name
from viewer.stream.views import ReaderMapping

T = TypeVar("T")
MAX_READ_ATTEMPTS = 64  # a live writer laps a 3-slot ring far less often than this
STALE_AFTER_S = 2.0  # no new frame for this long: stale (the default)
CHECK_EVERY_S = 0.05  # how often wait() and a following read() look for a restart
_BACKOFF_S = (0.0001, 0.01)  # waiting for a stream to appear: the longest sleep is 4x this


@dataclass(frozen=True)
class _Attachment:
    """One block a reader is attached to, and what it knows of it."""

    mapping: ReaderMapping
    layout: P.Layout
    info: StreamInfo
    record: StreamRecord | None  # None when opened by block name
    fixed: bytes  # the header's write-once bytes, as they were when we attached


def _fixed_bytes(mm: mmap.mmap) -> bytes:
    """The header bytes a writer writes once: everything but state and frames_written."""
    return mm[: P.STATE_OFFSET] + mm[P.META_BYTES_OFFSET : P.META_BYTES_OFFSET + 4]


def _attach(name: str, block_name: str | None) -> _Attachment:
    record = None
    if block_name is None:
        record = _find_live(name)
        block_name = record.block
    block = ReadOnlyBlock(block_name)
    mm = block.mm
    assert mm is not None
    try:
        head = P.parse_header(mm[: P.HEADER_SIZE], block.size)
        if record is not None and head.created_ns != record.created_ns:
            raise ProtocolError(f"block {block_name} is not the one the registry names")
    except ProtocolError as exc:
        block.close()
        raise ProtocolError(f"{name}: {exc}", name=name) from None
    lay = head.layout
    info = StreamInfo(
        block.name, lay.shape, lay.dtype.name, lay.pixel_format, lay.slot_count, head.producer_pid, head.created_ns
    )
    mapping = ReaderMapping(block, BlockViews.of(mm, lay), lay.block_size)
    return _Attachment(mapping, lay, info, record, _fixed_bytes(mm))


def _find_live(name: str) -> StreamRecord:
    """The record of a running stream ``name``; a dead producer's record is reaped."""
    validate_name(name)
    rec = read_record(name)
    if rec is not None and not is_live(name):
        reap(record_path(name))
        rec = None
    if rec is None:
        raise StreamNotFoundError(f"no stream {name!r}", name=name)
    return rec


def _seconds(timeout: float, what: str = "timeout") -> float:
    """A timeout the caller can rely on: a finite number of seconds, 0 or more."""
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{what} must be a finite number of seconds, 0 or more; got {timeout!r}")
    return value


def _wait_for_stream(name: str, timeout: float) -> None:
    deadline = time.monotonic() + _seconds(timeout)
    while True:
        try:
            _find_live(name)
            return
        except StreamNotFoundError:
            if time.monotonic() >= deadline:
                raise StreamNotFoundInTimeError(f"no stream {name!r} after {duration(timeout)}", name=name) from None
        time.sleep(min(_BACKOFF_S[1] * 4, max(0.0, deadline - time.monotonic())))


class FrameReader(Closing):
    """Reads the newest complete frame of a stream, read-only, never torn.

    ``FrameReader(name)`` looks ``name`` up in the user's stream registry, and nothing
    else: a name never means a block someone else put in /dev/shm. To open a block by
    its block name, say so with ``FrameReader.from_block(block)``.

    ``timeout`` waits that long for the stream to appear. ``follow=True`` re-attaches by
    itself when the stream's producer restarts (a new block behind the name); without it
    the reader stays on its block and ``state`` says ``gone`` once the producer ended.
    ``stale_after_s``: how long without a new frame before ``state`` says ``stale``.
    Each attached block holds one file descriptor and one mapping; arrays from view() and
    apply() keep the mapping until they are gone, even past close().
    """

    def __init__(
        self,
        name: str,
        *,
        follow: bool = False,
        timeout: float | None = None,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        if timeout is not None:
            _wait_for_stream(name, timeout)
        self._start(name, _attach(name, None), follow=follow, stale_after_s=stale_after_s)

    def _start(self, name: str, att: _Attachment, *, follow: bool, stale_after_s: float) -> None:
        self.name = name
        self.follow = follow
        self.stale_after_s = stale_after_s
        self.skipped = 0  # frames frames() could not keep up with
        self.generation = -1  # bumps on every attach: 0 for the first block
        self._use(att)

    @classmethod
    def open(cls, name: str, timeout: float = 5.0, **options: Any) -> FrameReader:
        """Wait up to ``timeout`` s for stream ``name`` to appear, and attach to it."""
        return cls(name, timeout=timeout, **options)

    @classmethod
    def from_block(cls, block: str, *, stale_after_s: float = STALE_AFTER_S) -> FrameReader:
        """A reader of the shmview block named ``block`` (``psm_...``), which must be a
        regular file in /dev/shm owned by the current user. It does not follow by itself;
        reattach() moves it to a new block created under the same name."""
        reader = cls.__new__(cls)
        reader._start(block, _attach(block, block), follow=False, stale_after_s=stale_after_s)
        return reader

    def _use(self, att: _Attachment) -> None:
        if (old := getattr(self, "_bell", None)) is not None:
            old.close()
        self._bell = ReaderBell(att.info.block, att.info.created_ns)  # sleeps until a frame comes
        self._att = att
        self.layout, self.info, self.record = att.layout, att.info, att.record
        self.generation += 1
        self._stamp = record_stamp(self.name) if att.record is not None else None
        self._next_check = self._next_gone_check = time.monotonic() + CHECK_EVERY_S
        self._last_written, self._last_change = -1, time.monotonic()
        self._handed: tuple[int, int | None] = (self.generation, None)  # the last frame wait() or frames() gave

    # -- the hot path ------------------------------------------------------------------

    @property
    def frames_written(self) -> int:
        return self._att.mapping.held(self.name)[1].q[PUBLISHED]

    @property
    def closed_by_producer(self) -> bool:
        return int(self._att.mapping.held(self.name)[1].state[0]) == P.STATE_CLOSED

    def read(self, out: np.ndarray | None = None, *, index: int | None = None) -> Frame | None:
        """The newest complete frame, or None before the first one. Never torn.

        ``out`` (same shape and dtype) receives the pixels instead of a new array.
        ``index``: that frame instead of the newest, if the ring still holds it (with N
        slots, the newest N - 1 frames); None if it is not written yet or already
        overwritten. A reader that fell behind catches up this way, frame by frame.
        """
        if self.follow:
            self._follow()
        lay = self.layout
        if out is None:
            image = np.empty(lay.shape, lay.dtype)
        elif out.shape != lay.shape or out.dtype != lay.dtype:
            raise FrameMismatchError(
                f"{self.name}: out must be {lay.shape} {lay.dtype.name}, got {out.shape} {out.dtype}"
            )
        else:
            image = out
        _, v = self._att.mapping.held(self.name)  # v keeps the block mapped, whatever close() does
        for _ in range(MAX_READ_ATTEMPTS):
            slot, seq = self._newest_slot(v) if index is None else self._slot_of(v, index)
            if slot is None:
                return None
            if slot < 0:
                continue
            np.copyto(image, v.pixels[slot])
            k, stamp, payload = self._stamps(v, slot)
            if v.q[v.at[slot] + SEQ] == seq and k != P.NO_FRAME:  # seq loaded last
                return Frame._make(image, k, stamp, None if payload == b"" else self._decode(payload, k))
        raise self._busy()

    @contextmanager
    def view(
        self, *, index: int | None = None, after: int | None = None, timeout: float | None = None
    ) -> Iterator[Frame | None]:
        """The newest frame without a copy: ``image`` is a read-only view of the slot
        (``meta`` is decoded, so it is yours).

        With ``after`` or ``timeout``, first sleeps (as wait() does) until a frame with an
        index greater than ``after`` (any frame if None) is published, for up to
        ``timeout`` s (default 5): ``with reader.view(after=k, timeout=1) as frame:``.
        StreamTimeoutError if none came, StreamGoneError if the stream ended meanwhile.

        Use it inside the block only (copy what you keep). On leaving, the slot is checked:
        if the writer reused it meanwhile, TornFrameError says that whatever was computed
        inside may mix two frames. Yields None before the first frame (or, with ``index``,
        when the ring no longer holds that frame). A close() meanwhile (another thread, a
        signal handler) leaves the view valid: the block stays mapped while it lives.
        """
        if after is not None or timeout is not None:
            self._until(5.0 if timeout is None else timeout, after, _published_after)
        elif self.follow:
            self._follow()
        _, v = self._att.mapping.held(self.name)
        slot, seq = self._stable_slot(v, index)
        if slot is None:
            yield None
            return
        k, stamp, payload = self._stamps(v, slot)
        still = self._still(v, slot, seq) is not None
        frame = Frame(v.pixels[slot], k, stamp, self._decode(payload, k)) if still else None
        if frame is not None:
            yield frame
        if frame is None or self._still(v, slot, seq) is None:
            which = "the newest frame" if frame is None else f"frame {frame.index}"
            raise TornFrameError(f"{self.name}: {which} was overwritten while in use", name=self.name)

    def apply(
        self,
        fn: Callable[[Frame], T],
        *,
        index: int | None = None,
        after: int | None = None,
        timeout: float | None = None,
    ) -> T | None:
        """``fn(frame)`` on a zero-copy view of the newest frame, retried (up to
        MAX_READ_ATTEMPTS times) until the writer left the slot alone for the whole call,
        so the result never comes from a torn frame. None before the first frame, or
        when the ring no longer holds frame ``index``. ``fn`` must not keep the view:
        copy out what it needs. ``after`` and ``timeout``: first sleep until a newer
        frame exists, as view() does."""
        if after is not None or timeout is not None:
            self._until(5.0 if timeout is None else timeout, after, _published_after)
        for _ in range(MAX_READ_ATTEMPTS):
            try:
                with self.view(index=index) as frame:
                    if frame is None:
                        return None
                    result = fn(frame)
            except TornFrameError:
                continue
            return result
        raise self._busy()

    def _stable_slot(self, v: BlockViews, index: int | None = None) -> tuple[int | None, int]:
        for _ in range(MAX_READ_ATTEMPTS):
            slot, seq = self._newest_slot(v) if index is None else self._slot_of(v, index)
            if slot is None or slot >= 0:
                return slot, seq
        raise self._busy()

    def _newest_slot(self, v: BlockViews) -> tuple[int | None, int]:
        """(slot, seq) of the newest published frame, checked before any copy: slot None
        before the first frame, -1 while the slot is being written or does not hold that
        frame (then no copy is worth making). The order of the loads is the protocol's."""
        q = v.q
        n = q[PUBLISHED]
        if n == 0:
            return None, 0
        slot = (n - 1) % self.layout.slot_count
        at = v.at[slot]
        seq, k = q[at + SEQ], q[at + INDEX]
        return (-1, 0) if seq & 1 or k != n - 1 else (slot, seq)

    def _slot_of(self, v: BlockViews, k: int) -> tuple[int | None, int]:
        """(slot, seq) of frame ``k``, like _newest_slot: None if frame k is not published
        yet or its slot has moved on to a later frame; -1 while that slot is being written."""
        q = v.q
        n = q[PUBLISHED]
        if not 0 <= k < n:
            return None, 0
        slot = k % self.layout.slot_count
        at = v.at[slot]
        seq, index = q[at + SEQ], q[at + INDEX]
        # Odd: the writer is already overwriting frame k with a later one. Either way, gone.
        return (None, 0) if seq & 1 or index != k else (slot, seq)

    @staticmethod
    def _still(v: BlockViews, slot: int, seq: int) -> tuple[int, int] | None:
        """(index, timestamp) if slot ``slot`` still holds what it held at sequence ``seq``."""
        q, at = v.q, v.at[slot]
        index, stamp = q[at + INDEX], q[at + STAMP]
        return (index, stamp) if q[at + SEQ] == seq and index != P.NO_FRAME else None

    def _stamps(self, v: BlockViews, slot: int) -> tuple[int, int, bytes | None]:
        """The slot's index and timestamp, and a copy of its metadata bytes (b"" for none;
        None if its length is out of range, which a consistent slot only has when its writer
        breaks the protocol). Loaded before the slot's seq is checked again."""
        q, at = v.q, v.at[slot]
        k, stamp = q[at + INDEX], q[at + STAMP]
        if not v.meta_offsets or not (n := q[at + META_LEN] & META_LEN_MASK):  # no room for any, or none
            return k, stamp, b""
        start = v.meta_offsets[slot]
        return k, stamp, v.mm[start : start + n] if n <= self.layout.meta_bytes else None

    def _decode(self, payload: bytes | None, index: int) -> dict[str, Any] | None:
        if payload == b"":
            return None
        try:
            meta = orjson.loads(payload) if payload is not None else None
        except orjson.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict):
            raise ProtocolError(
                f"{self.name}: frame {index} carries metadata that is not a JSON object", name=self.name
            )
        return meta

    def _busy(self) -> BusyError:
        return BusyError(
            f"{self.name}: no consistent frame in {MAX_READ_ATTEMPTS} attempts "
            "(is the writer stuck in the middle of a frame?)",
            name=self.name,
        )

    # -- waiting -----------------------------------------------------------------------

    def wait(self, timeout: float = 5.0, *, after: int | None = None) -> Frame:
        """The newest frame with an index greater than ``after`` (any frame if None),
        waiting up to ``timeout`` s. Sleeps in the kernel until the writer publishes
        (viewer/stream/bell.py), so waiting costs no CPU. After a restart that a following reader re-attached
        to, indices start again, and any frame of the new block counts.

        StreamTimeoutError if none came; StreamGoneError if the stream ended meanwhile
        (and the reader does not follow).
        """
        frame = self._wait(timeout, after, next_first=False)
        self._handed = self.generation, frame.index  # frames() goes on after it
        return frame

    def _wait(self, timeout: float, after: int | None, *, next_first: bool) -> Frame:
        return self._until(timeout, after, lambda r, a, n: r._newer_than(a, n, next_first=next_first))

    def _until(self, timeout: float, after: int | None, ready: Callable[[FrameReader, int | None, int], T | None]) -> T:
        """``ready(self, after, frames_written)``'s first answer that is not None, sleeping
        between looks until the writer publishes (frames_written is noted before each look,
        so a frame published meanwhile ends the sleep at once)."""
        deadline = time.monotonic() + _seconds(timeout)
        generation = self.generation
        while True:
            self._follow()
            if self.generation != generation:
                after, generation = None, self.generation
            _, v = self._att.mapping.held(self.name)
            seen = v.q[PUBLISHED]
            found = ready(self, after, seen)
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                what = "a frame" if after is None else f"a frame after index {after}"
                raise StreamTimeoutError(
                    f"no new frame of {self.name!r} in {duration(timeout)} (waited for {what})",
                    name=self.name,
                    after=after,
                )
            if self._bell.sleep(v.published, seen, left):
                self._next_gone_check = 0.0  # a ring without a frame: a close, or a producer's death

    def sleep_until_new(self, after: int | None = None, timeout: float = 5.0) -> bool:
        """Sleep until a frame with an index greater than ``after`` (any, if None) is
        published, reading nothing: True then; False if ``timeout`` s passed first or the
        stream ended. For loops that read in their own way (apply(index=k), catching up)."""
        try:
            return bool(self._until(timeout, after, _published_after))
        except (StreamTimeoutError, StreamGoneError):
            return False

    def frames(self, timeout: float = 5.0) -> Iterator[Frame]:
        """New frames as they come, each at most once and in order, until the stream ends
        (a following reader goes on across restarts). The first is the newest; after that,
        a reader that fell behind catches up through the ring (which holds the producer's
        last ``slots`` frames), so only frames already overwritten are missed, and counted
        in ``skipped``. StreamTimeoutError if none comes within ``timeout`` s."""
        _seconds(timeout)  # refused now, not at the first wait
        generation = self.generation
        handed_generation, last = self._handed
        if handed_generation != generation:
            last = None  # what wait() gave came from a block since left behind
        while True:
            try:
                frame = self._wait(timeout, last, next_first=True)
            except StreamGoneError:
                return
            assert frame.index is not None
            if self.generation == generation and last is not None:
                self.skipped += frame.index - last - 1
            last, generation = frame.index, self.generation
            self._handed = generation, last
            yield frame

    def _newer_than(self, after: int | None, written: int, *, next_first: bool = False) -> Frame | None:
        if written and (after is None or written - 1 > after):
            try:
                return (self._oldest_after(after) if next_first else None) or self.read()
            except BusyError:
                return None  # a writer stuck mid-frame: keep waiting, up to the deadline
        self._check_gone()
        return None

    def _check_gone(self) -> None:
        now = time.monotonic()
        if now >= self._next_gone_check:
            self._next_gone_check = now + CHECK_EVERY_S
            if self._state() == GONE:
                raise StreamGoneError(f"stream {self.name!r} ended", name=self.name)

    def _oldest_after(self, after: int | None) -> Frame | None:
        """The first frame after ``after`` that the ring still holds (None if none is)."""
        if after is None:
            return None
        for k in self.held_after(after):
            frame = self.read(index=k)
            if frame is not None:
                return frame
        return None

    # -- where the stream stands ---------------------------------------------------------

    @property
    def state(self) -> State:
        """``live``, ``stale`` (its producer runs, but no new frame for ``stale_after_s``)
        or ``gone`` (the producer closed the stream or died; for a reader that does not
        follow, also when the name now belongs to a restarted producer)."""
        if self.follow:
            self._follow(now=True)
        return self._state()

    def _state(self) -> State:
        _, v = self._att.mapping.held(self.name)
        if int(v.state[0]) == P.STATE_CLOSED:
            return GONE
        written, now = int(v.published[0]), time.monotonic()
        if written != self._last_written:
            looked_before = self._last_written >= 0
            self._last_written, self._last_change = written, now
            if looked_before:
                return LIVE  # a frame came since the last look: no need to ask the kernel
        if not self.producer_alive() or (self.record is not None and self._moved()):
            return GONE
        return STALE if now - self._last_change > self.stale_after_s else LIVE

    def producer_alive(self) -> bool:
        """The kernel's word: the stream's record is still locked by its producer (for a
        block opened by name: the block is still linked under it). Never a pid."""
        if self.record is None:
            return not self._block().unlinked()
        return is_live(self.name)

    def held_after(self, after: int) -> range:
        """The indices after ``after`` that the ring may still hold (its last ``slots``
        frames): where a reader that fell behind catches up, oldest first."""
        written = self.frames_written
        return range(max(after + 1, written - self.layout.slot_count), written)

    def check_header(self) -> None:
        """ProtocolError if the block's write-once header changed since we attached: only
        its owner can do that, and then nothing this reader knows of it holds any more."""
        mm, _ = self._att.mapping.held(self.name)
        if _fixed_bytes(mm) != self._att.fixed:
            raise ProtocolError(f"{self.name}: the block's header changed under the reader", name=self.name)

    def replaced(self) -> bool:
        """Whether the stream's name now points to another block (its producer restarted)
        or to none; for a reader opened by block name, whether its block was unlinked or
        another one now has its name. Identity is compared, never names alone."""
        if self.record is None:
            return self._block().unlinked()
        rec = read_record(self.name)
        return rec is None or (rec.block, rec.created_ns) != (self.record.block, self.record.created_ns)

    def reattach(self) -> bool:
        """The one stream follower: if the stream now lives in another block (its producer
        restarted; for a reader opened by block name, a new block under that name), attach
        to that one and return True (``generation`` counts the attaches). False while it
        stays, or points to nothing live yet. A following reader calls it as it reads (at
        most every CHECK_EVERY_S); a viewer calls it when it chooses."""
        if self._att.mapping.closed or not self._moved():
            return False
        try:
            att = _attach(self.name, None if self.record is not None else self.name)
        except StreamNotFoundError:
            return False  # the producer is gone and not back yet
        old = self._att.mapping
        self._use(att)
        if old.closed:  # closed meanwhile (another thread, a signal handler): stay closed
            att.mapping.close()
        old.close()
        return True

    def _moved(self) -> bool:
        """replaced(), for a stream name read from the registry only when its record file
        changed: one stat() otherwise."""
        if self.record is None:
            return self.replaced()
        stamp = record_stamp(self.name)
        if stamp is not None and stamp == self._stamp:
            return False
        moved = self.replaced()
        if not moved:
            self._stamp = stamp
        return moved

    def _follow(self, now: bool = False) -> None:
        """For a following reader: reattach(), looking at most every CHECK_EVERY_S."""
        t = time.monotonic()
        if not self.follow or (t < self._next_check and not now):
            return
        self._next_check = t + CHECK_EVERY_S
        self.reattach()

    def _block(self) -> ReadOnlyBlock:
        """The attached block, after the checks every access makes (closed, shrunk)."""
        mapping = self._att.mapping
        mapping.held(self.name)
        return mapping.block

    def close(self) -> None:
        """Drop the mapping. Idempotent; safe from another thread or a signal handler (no
        lock): a read running meanwhile finishes, arrays from view() or apply() stay valid
        (the block is unmapped when the last one is gone), and every later use raises
        ShmviewError."""
        self._att.mapping.close()
        self._bell.close()


def _published_after(reader: FrameReader, after: int | None, written: int) -> bool | None:
    """True once a frame after ``after`` (any, if None) is published; None before."""
    if written and (after is None or written - 1 > after):
        return True
    reader._check_gone()
    return None
