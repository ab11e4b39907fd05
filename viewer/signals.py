"""Stop flags, and the one way shmview's long-running commands take SIGINT, SIGTERM and SIGHUP.

``Stop`` is what a loop needs from a stop flag (threading.Event is one). ``SignalStop`` is
the flag those three signals raise: produce, replay, view (text and window), record, share,
bridge and demo all stop through it. stdlib only: producers, recording, net, the window and
the CLI build on it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Iterator
from typing import Protocol

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_LONGEST_WAIT_S = 86400.0  # select() refuses what time_t cannot hold: a day at a time


class Stop(Protocol):
    """What a loop needs from a stop flag: whether to stop, and a sleep that ends when it
    is set (returning whether it is). threading.Event is one; SignalStop is another."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float) -> bool: ...


class SignalStop:
    """A stop flag that SIGINT, SIGTERM and SIGHUP raise, and a sleep they cut short.

    The handlers must not take locks: a ``threading.Event.set()`` in a handler deadlocks
    when the signal lands while the main thread holds the event's own lock (inside
    ``wait()``). So the handler sets a plain flag, and ``signal.set_wakeup_fd`` writes to a
    pipe that wakes whoever sleeps: wait() here, or an event loop watching fileno(). The
    handlers are installed whatever the inherited disposition: a process started with ``&``
    from a script inherits SIGINT ignored, and an unhandled SIGTERM skips every exit
    handler, which leaves shared-memory blocks behind. Only the main thread may install
    handlers: see installed().
    """

    def __init__(self) -> None:
        self.signal: str | None = None  # the name of the signal that stopped us
        self._read = self._write = -1

    def is_set(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, _frame: object) -> None:
        self.signal = signal.Signals(signum).name

    def fileno(self) -> int:
        """The end of the wakeup pipe that becomes readable when a signal arrives: for an
        event loop to watch (the window's QSocketNotifier). Call drain() when it is."""
        return self._read

    def drain(self) -> None:
        """Empty the wakeup pipe (it holds a byte per signal Python handled, any signal)."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 512):
                pass

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` s, less if a stop signal arrives; return whether to stop."""
        deadline = time.monotonic() + min(max(0.0, timeout), _LONGEST_WAIT_S)
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if select.select([self._read], [], [], left)[0]:
                self.drain()  # any handled signal wakes us; only the stop signals stop us
        return self.is_set()

    @classmethod
    @contextlib.contextmanager
    def installed(cls) -> Iterator[SignalStop]:
        """Handlers and wakeup pipe for the time inside; the previous ones are back after."""
        stop = cls()
        stop._read, stop._write = os.pipe()
        try:
            for fd in (stop._read, stop._write):
                os.set_blocking(fd, False)
            # The pipe first, then the handlers: no signal lands before it can wake anyone.
            previous_fd = signal.set_wakeup_fd(stop._write, warn_on_full_buffer=False)
            try:
                previous = {s: signal.signal(s, stop._handle) for s in STOP_SIGNALS}
                try:
                    yield stop
                finally:
                    for s, handler in previous.items():
                        signal.signal(s, signal.SIG_DFL if handler is None else handler)  # None: not set from Python
            finally:
                signal.set_wakeup_fd(previous_fd)
        finally:
            os.close(stop._read)
            os.close(stop._write)


def interruptible() -> None:
    """Let SIGINT stop this process from now on, even if it was inherited ignored (a `cmd &`
    from a script): Python's KeyboardInterrupt until a command installs SignalStop. main()
    calls it first, so a SIGINT that lands while a command is still starting (importing,
    opening its session) is not lost; nothing can catch one sent before Python runs this."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def stop_reason(stop: Stop) -> str:
    """How a stopped line says why a set flag stopped it: 'signal SIGTERM', or 'asked to stop'."""
    if isinstance(stop, SignalStop) and stop.signal is not None:
        return f"signal {stop.signal}"
    return "asked to stop"


@contextlib.contextmanager
def stop_flag(stop: Stop | None) -> Iterator[Stop]:
    """The caller's stop flag; else SignalStop in the main thread; else a flag nobody sets
    (a thread that wants to stop a loop early passes ``stop``)."""
    if stop is not None:
        yield stop
    elif threading.current_thread() is threading.main_thread():
        with SignalStop.installed() as by_signal:
            yield by_signal
    else:
        yield threading.Event()
