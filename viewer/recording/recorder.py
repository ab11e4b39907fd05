"""Recording: follow streams at full rate and hand every frame to a sink.

One thread per stream looks for each new frame and copies it out of shared memory (once,
straight into bytes) into a queue bounded in bytes; the calling thread encodes and
writes. A slow disk or compressor fills the queue, never stalls the copying: frames the
followers could not keep up with are counted from the indices, never silently lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from viewer.errors import BusyError
from viewer.recording.messages import Description
from viewer.recording.sinks import Sink
from viewer.signals import Stop
from viewer.stream.frames import GONE, Frame
from viewer.stream.reader import FrameReader

log = logging.getLogger(__name__)

QUEUE_BYTES = 256 * 2**20  # about 1.4 s of 1920x1080x3 at 30 fps between copy and disk
FLUSH_EVERY_S = 1.0  # a kill -9 loses at most about this much
_POLL_S = 0.1  # how often the writing loop looks at the stop flag
# A follower sleeps until its writer publishes (FrameReader.sleep_until_new), looking up
# at least this often to see the stop flag and where its stream stands.
_SLEEP_S = _POLL_S / 2
_STATE_EVERY_S = 0.05  # how often a follower with nothing new asks whether its stream ended


@dataclass
class Tally:
    """One stream's count: frames recorded and bytes, frames missed."""

    name: str
    recorded: int = 0
    missed: int = 0  # by the follower: frames written while it was busy (its thread only)
    refused: int = 0  # by the writer: frames of a new format after a restart (its thread only)
    bytes: int = 0  # of raw frames (what the file takes is the sink's written())
    absent: str | None = None  # why a stream asked for was never recorded (it never appeared)

    @property
    def skipped(self) -> int:
        return self.missed + self.refused

    def line(self) -> str:
        if self.absent is not None:
            return f"recorded 0 frames of {self.name}: {self.absent}"
        return f"recorded {self.recorded:,} frames of {self.name}, skipped {self.skipped:,}"


class Latecomers(Protocol):
    """Streams asked for that were not there when the recording began (command.py)."""

    @property
    def waiting(self) -> bool:
        """Whether some are still looked for: the recording does not end before."""
        ...

    def arrived(self) -> list[FrameReader]:
        """Readers of the streams that appeared since the last call (a few times a second)."""
        ...

    def give_up(self) -> None:
        """Stop looking (the recording stops)."""
        ...


class _ByteQueue:
    """A FIFO bounded by the bytes it holds; put() blocks while full, until closed."""

    def __init__(self, limit: int) -> None:
        self._items: deque[tuple[Description, Frame]] = deque()
        self._held, self._limit, self._closed = 0, limit, False
        self._cond = threading.Condition()

    def put(self, desc: Description, frame: Frame) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: self._closed or not self._items or self._held < self._limit)
            if self._closed:
                return False
            self._items.append((desc, frame))
            self._held += frame.image.nbytes
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> tuple[Description, Frame] | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._items, timeout):
                return None
            item = self._items.popleft()
            self._held -= item[1].image.nbytes
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _Follower(threading.Thread):
    """Copies each new frame of one stream into the queue until told to stop, the stream
    ends, or ``limit`` frames are in."""

    def __init__(self, reader: FrameReader, queue: _ByteQueue, tally: Tally, limit: int | None) -> None:
        super().__init__(name=f"record-{reader.name}", daemon=True)
        self.reader, self.queue, self.tally, self.limit = reader, queue, tally, limit
        self.quit = threading.Event()
        self.gone = False  # its producer stopped (and has not come back yet)
        self._looked = 0  # frames_written when _newer last looked (a stuck writer: sleep past it)
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.gone or not self.is_alive()

    def run(self) -> None:
        try:
            self._follow()
        except BaseException as exc:  # handed to the recording thread, which raises it
            self.error = exc

    def _follow(self) -> None:
        r, last, generation, taken = self.reader, -1, self.reader.generation, 0
        next_look = 0.0
        while not self.quit.is_set() and (self.limit is None or taken < self.limit):
            if r.generation != generation:  # re-attached to a restarted producer: indices start again
                last, generation = -1, r.generation
            frame = self._newer(last)
            if frame is None:
                now = time.monotonic()
                if now >= next_look:  # where the stream stands; re-attaches after a restart
                    self.gone, next_look = r.state == GONE, now + _STATE_EVERY_S
                if self.gone:  # the recording ends when all are gone; until then, a restart is followed
                    self.quit.wait(_POLL_S / 2)
                else:
                    r.sleep_until_new(max(last, self._looked - 1), _SLEEP_S)  # past what _newer saw
                continue
            self.gone = False
            assert frame.index is not None  # a stream's frames always carry their index
            if last >= 0:
                self.tally.missed += frame.index - last - 1
            last = frame.index
            if not self.queue.put(_describe(r), frame):
                return
            taken += 1

    def _newer(self, last: int) -> Frame | None:
        """The first frame after ``last`` that the ring still holds (so a follower that was
        kept off the CPU for a moment catches up instead of skipping), else the newest;
        copied once out of its slot."""
        r, generation = self.reader, self.reader.generation
        written = self._looked = r.frames_written
        if written - 1 <= last:
            return None
        try:
            frame = None
            for k in r.held_after(last) if last >= 0 else ():
                if (frame := r.apply(_own_copy, index=k)) is not None:
                    break
            frame = frame or r.apply(_own_copy)
        except BusyError:  # a writer stuck mid-frame: as if nothing new came
            return None
        if frame is None or r.generation != generation or frame.index is None or frame.index <= last:
            return None
        return frame


def _own_copy(frame: Frame) -> Frame:
    """The frame copied out of its slot straight into bytes, which the MCAP writer takes as
    they are: one copy of the pixels fewer than read() and then tobytes()."""
    data = frame.image.tobytes()
    image = np.frombuffer(data, frame.image.dtype).reshape(frame.image.shape)
    return Frame(image, frame.index, frame.timestamp_ns, frame.meta)


def _describe(reader: FrameReader) -> Description:
    info = reader.info
    return Description(reader.name, tuple(info.shape), info.dtype, info.pixel_format, reader.layout.meta_bytes)


class Recorder:
    """Records ``readers`` into ``sink`` until each has given ``frames`` frames or ended,
    ``seconds`` have passed, or ``stop`` is set; frames already copied are still written.
    ``progress(tallies, elapsed_s)`` is called a few times a second."""

    def __init__(
        self,
        readers: list[FrameReader],
        sink: Sink,
        *,
        frames: int | None = None,
        seconds: float | None = None,
        stop: Stop | None = None,
        progress: Callable[[list[Tally], float], None] | None = None,
        latecomers: Latecomers | None = None,
    ) -> None:
        self.sink, self.seconds, self.stop, self.progress = sink, seconds, stop, progress
        self.frames, self.latecomers = frames, latecomers
        self.queue = _ByteQueue(QUEUE_BYTES)
        self.tallies = {r.name: Tally(r.name) for r in readers}
        self.followers = [_Follower(r, self.queue, self.tallies[r.name], frames) for r in readers]
        self._formats: dict[str, Description] = {}
        self._stopping = False

    def run(self) -> list[Tally]:
        start = time.monotonic()
        for f in self.followers:
            f.start()
        try:
            self._drain(start)
        finally:
            self._end_followers()
        while (item := self.queue.get(0.0)) is not None:  # copied just before the end: still kept
            self._write(*item)
        if self.progress is not None:
            self.progress(list(self.tallies.values()), time.monotonic() - start)
        for f in self.followers:
            if f.error is not None:
                raise f.error
        return list(self.tallies.values())

    def _drain(self, start: float) -> None:
        next_flush = next_show = start
        while True:
            item = self.queue.get(_POLL_S)
            if item is not None:
                self._write(*item)
            now = time.monotonic()
            if self._should_stop(now - start):
                self._stopping = True
                for f in self.followers:
                    f.quit.set()
            self._take_latecomers()
            waiting = self.latecomers is not None and self.latecomers.waiting
            if item is None and all(f.done for f in self.followers) and not waiting:
                return  # every stream ended (or gave its frames) and the queue is empty
            if now >= next_flush:
                self.sink.flush()
                next_flush = now + FLUSH_EVERY_S
            if self.progress is not None and now >= next_show:
                self.progress(list(self.tallies.values()), now - start)
                next_show = now + 0.25

    def _take_latecomers(self) -> None:
        """Start following the streams that appeared late; stop looking once stopping."""
        if self.latecomers is None:
            return
        if self._stopping:
            self.latecomers.give_up()
            return
        for reader in self.latecomers.arrived():
            tally = self.tallies[reader.name] = Tally(reader.name)
            follower = _Follower(reader, self.queue, tally, self.frames)
            self.followers.append(follower)
            follower.start()

    def _should_stop(self, elapsed: float) -> bool:
        stopped = self.stop is not None and self.stop.is_set()
        return stopped or (self.seconds is not None and elapsed >= self.seconds)

    def _write(self, desc: Description, frame: Frame) -> None:
        tally = self.tallies[desc.name]
        first = self._formats.setdefault(desc.name, desc)
        if desc != first:  # the producer restarted with another format: one channel has one
            if not tally.refused:
                log.warning(
                    "%s changed format (%s %s to %s %s) when its producer restarted: frames in the "
                    "new format are not recorded, and counted as skipped",
                    desc.name,
                    first.shape,
                    first.dtype,
                    desc.shape,
                    desc.dtype,
                )
            tally.refused += 1
            return
        tally.bytes += self.sink.write(desc, frame)
        tally.recorded += 1

    def _end_followers(self) -> None:
        for f in self.followers:
            f.quit.set()
        self.queue.close()
        for f in self.followers:
            f.join()
