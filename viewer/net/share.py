"""``shmview share``: local streams published on Zenoh, newest frame first.

Each stream gets a publisher on ``shmview/<host-id>/<name>`` with congestion control
DROP (a slow link drops frames; it never queues them or slows the producer), a
liveliness token on the same key while its producer is live, and a queryable there that
answers what ``shmview list --remote`` shows. Frames are encoded straight from their slot
(``FrameReader.apply``), so the only copies are the payload's and Zenoh's own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from viewer.errors import BusyError, ShmviewError, StreamNotFoundError
from viewer.net.codec import codec_for, encode_frame
from viewer.net.config import stream_key
from viewer.net.presence import NOTICE_AFTER_S
from viewer.signals import Stop
from viewer.stream.frames import GONE
from viewer.stream.reader import FrameReader
from viewer.view.monitor import RateMeter

log = logging.getLogger(__name__)

DISCOVER_EVERY_S = 0.5  # how often share-all looks for new streams, a named share for its stream
LIVENESS_EVERY_S = 0.1  # how often a stream's producer is checked (token declared or not)
QUERIES_EVERY_S = 0.1  # longest sleep waiting for a frame: queries and the stop flag wait this long

Report = Callable[[str], None]


def live_names() -> list[str]:
    from viewer.stream.registry import live_records

    try:
        return [rec.name for rec in live_records()]
    except (ShmviewError, OSError) as exc:
        log.warning("cannot list local streams: %s", exc)
        return []


class StreamShare:
    """One local stream on Zenoh, on its own thread: follows the producer's restarts, and
    holds the liveliness token only while the producer is live."""

    def __init__(
        self,
        session: Any,
        name: str,
        host_id: str,
        *,
        codec: str,
        quality: int,
        max_fps: float | None,
        explicit: bool,
        report: Report,
    ) -> None:
        self.session, self.name, self.key = session, name, stream_key(host_id, name)
        self.wanted, self.quality, self.explicit, self.report = codec, quality, explicit, report
        self.min_gap_s = 1.0 / max_fps if max_fps else 0.0
        self.sent, self.fps, self.codec = 0, 0.0, codec
        self.shape: tuple[int, ...] | None = None
        self._rate, self._token, self._queryable = RateMeter(), None, None
        self._missing_since: float | None = None  # the named stream not there: since when
        self._missing_said = 0  # 0 nothing said yet, 1 waiting said, 2 what is there said
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"share-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import zenoh

        self._publisher = self.session.declare_publisher(
            self.key, congestion_control=zenoh.CongestionControl.DROP, express=True
        )
        try:
            while not self._stop.is_set():
                reader = self._open()
                if reader is None:
                    continue
                with reader:
                    self._serve(reader)
        except Exception:  # a sharer must outlive one bad stream; say what happened
            log.exception("sharing %s stopped", self.name)
        finally:
            self._set_live(False)
            self._publisher.undeclare()

    def _open(self) -> FrameReader | None:
        try:
            reader = FrameReader(self.name, follow=True)
        except StreamNotFoundError:
            self._missing()
            self._stop.wait(DISCOVER_EVERY_S)
            return None
        self._missing_since, self._missing_said = None, 0
        return reader

    def _missing(self) -> None:
        """Say at once that the stream is awaited, and within NOTICE_AFTER_S what is live
        instead (a typo would otherwise wait in silence forever)."""
        if not self.explicit:
            return
        now = time.monotonic()
        if self._missing_since is None:
            self._missing_since = now
        if self._missing_said == 0:
            self.report(f"share: waiting for stream {self.name!r} to start")
            self._missing_said = 1
        elif self._missing_said == 1 and now - self._missing_since >= NOTICE_AFTER_S:
            live = [name for name in live_names() if name != self.name]
            there = f"live here: {', '.join(live)}" if live else "no live streams here"
            self.report(f"share: still no stream {self.name!r} after {NOTICE_AFTER_S:g} s ({there}); waiting")
            self._missing_said = 2

    def _serve(self, reader: FrameReader) -> None:
        """Send each new frame (or the newest, when frames come faster than we can)."""
        seen, next_check, next_send = (-1, -1), 0.0, 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_check:
                next_check = now + LIVENESS_EVERY_S
                self._set_live(reader.state != GONE)
            self._answer_queries()
            current = (reader.generation, reader.frames_written)
            if now < next_send:  # --max-fps
                self._stop.wait(next_send - now)
                continue
            if current == seen or current[1] == 0:  # sleeps until the producer publishes
                reader.sleep_until_new(current[1] - 1, min(QUERIES_EVERY_S, max(0.0, next_check - now)))
                continue
            if current[0] != seen[0] and not self.explicit and self._mirrored(reader):
                log.info("not sharing %s: it mirrors a remote stream", self.name)
                self._stop.set()
                return
            seen, next_send = current, now + self.min_gap_s
            self._send(reader)

    @staticmethod
    def _mirrored(reader: FrameReader) -> bool:
        """A bridge's mirror, which share-all leaves alone (two machines sharing and
        bridging everything would otherwise echo each other's streams forever)."""
        meta = reader.apply(lambda f: f.meta)
        return isinstance(meta, dict) and "_origin" in meta

    def _send(self, reader: FrameReader) -> None:
        info = reader.info
        codec = codec_for(self.wanted, info.shape, info.dtype)
        if (codec, info.shape) != (self.codec, self.shape):
            self.codec, self.shape = codec, info.shape
            self.report(f"sharing {self.name} as {self.key} ({codec}, {info.pixel_format} {info.dtype})")
        try:
            message = reader.apply(lambda f: encode_frame(f, codec, self.quality, info.pixel_format))
        except BusyError:  # the writer lapped the ring during a slow encode: encode a copy
            message = self._from_copy(reader, codec, info.pixel_format)
        if message is None:
            return
        payload, header = message
        self._publisher.put(payload, attachment=header)
        self.sent += 1
        self.fps = self._rate.add(time.monotonic(), self.sent) or 0.0

    def _from_copy(self, reader: FrameReader, codec: str, pixel_format: str) -> tuple[bytes, bytes] | None:
        """The newest frame copied out (microseconds, where an encode can take longer than
        an unpaced writer needs to lap the ring), then encoded; None if even that tore."""
        try:
            frame = reader.read()
        except BusyError:
            log.debug("%s: no consistent frame to send this time", self.name)
            return None
        return None if frame is None else encode_frame(frame, codec, self.quality, pixel_format)

    def _set_live(self, live: bool) -> None:
        if live and self._token is None:
            self._token = self.session.liveliness().declare_token(self.key)
            self._queryable = self.session.declare_queryable(self.key)  # answered in _serve
        elif not live and self._token is not None:
            self._token.undeclare()
            self._queryable.undeclare()
            self._token = self._queryable = None

    def _answer_queries(self) -> None:
        """What ``list --remote`` shows of this stream. Queries wait in Zenoh's channel
        for this thread: no Python code runs on Zenoh's own threads."""
        while self._queryable is not None and (query := self._queryable.try_recv()) is not None:
            info = {
                "key": self.key,
                "name": self.name,
                "shape": self.shape,
                "codec": self.codec,
                "fps": round(self.fps, 2),
                "sent": self.sent,
            }
            try:
                query.reply(self.key, orjson.dumps(info))
            except Exception as exc:  # an asker that went away: nothing to answer
                log.debug("query on %s: %s", self.key, exc)


class Sharer:
    """Shares the named streams, or every live local stream (including ones that start
    later) when none is named."""

    def __init__(
        self,
        session: Any,
        names: Sequence[str],
        host_id: str,
        *,
        codec: str = "raw",
        quality: int = 90,
        max_fps: float | None = None,
        report: Report = log.info,
    ) -> None:
        self.session, self.names, self.host_id = session, list(names), host_id
        self.options = {"codec": codec, "quality": quality, "max_fps": max_fps}
        self.report = report
        self.shares: dict[str, StreamShare] = {}

    def run(self, stop: Stop, tick: Callable[[], None] = lambda: None) -> None:
        """Until ``stop`` is set: share what is there, look again every half second (and
        call ``tick``, which says what the share waits for)."""
        started, said = time.monotonic(), False
        try:
            while not stop.is_set():
                for name in self.names or live_names():
                    if name not in self.shares:
                        self._add(name)
                if not (self.shares or said) and time.monotonic() - started >= NOTICE_AFTER_S:
                    self.report("share: no live streams here yet; each is shared as soon as it starts")
                    said = True
                tick()
                stop.wait(DISCOVER_EVERY_S)
        finally:
            self.close()

    def _add(self, name: str) -> None:
        options = self.options  # codec, quality, max_fps: typed where they are given
        share = StreamShare(
            self.session,
            name,
            self.host_id,
            explicit=bool(self.names),
            report=self.report,
            **options,  # type: ignore[arg-type]
        )
        self.shares[name] = share
        share.start()

    def close(self) -> None:
        for share in self.shares.values():
            share.stop()
        self.shares.clear()
