"""viewer/signals.py: the one signal helper (SignalStop) and the one Stop protocol."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from viewer.signals import STOP_SIGNALS, SignalStop, Stop, stop_flag, stop_reason


@pytest.fixture(autouse=True)
def dispositions_kept() -> Iterator[None]:
    """Whatever a test does to the handlers, the next one starts from what pytest had."""
    saved = {s: signal.getsignal(s) for s in (*STOP_SIGNALS, signal.SIGUSR1)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def _signal_soon(sig: int) -> threading.Timer:
    """``sig`` to this process from another thread, while the main thread waits."""
    timer = threading.Timer(0.05, os.kill, (os.getpid(), sig))
    timer.start()
    return timer


@pytest.mark.parametrize("sig", STOP_SIGNALS)
def test_a_stop_signal_sets_the_flag_and_cuts_a_wait_short(sig):
    with SignalStop.installed() as stop:
        assert not stop.is_set()
        timer = _signal_soon(sig)
        assert stop.wait(60)  # long before the minute: the wakeup pipe ends the sleep
        timer.join()
    assert stop.signal == sig.name and stop_reason(stop) == f"signal {sig.name}"


def test_handlers_are_installed_whatever_was_inherited_and_restored_after():
    """A process started with `cmd &` by a script inherits SIGINT ignored (FACTS 23)."""
    def own(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, own)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    before_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before_fd)
    with SignalStop.installed() as stop:
        handlers = {signal.getsignal(s) for s in STOP_SIGNALS}
        assert len(handlers) == 1 and handlers.isdisjoint({signal.SIG_IGN, signal.SIG_DFL, own})
        ours = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(ours)
        assert ours not in (-1, before_fd)
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.wait(60) and stop.signal == "SIGINT"
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is own
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL
    assert signal.set_wakeup_fd(before_fd) == before_fd


def test_another_signal_wakes_the_wait_but_does_not_stop_it():
    woken = []
    signal.signal(signal.SIGUSR1, lambda signum, frame: woken.append(signum))
    with SignalStop.installed() as stop:
        timer = _signal_soon(signal.SIGUSR1)
        start = time.monotonic()
        assert not stop.wait(0.5)
        assert time.monotonic() - start >= 0.5  # it slept on after the wakeup
        timer.join()
    assert woken == [signal.SIGUSR1] and stop.signal is None


def test_stop_flag_is_the_callers_else_signals_in_the_main_thread_else_a_flag_nobody_sets():
    given = threading.Event()
    with stop_flag(given) as flag:
        assert flag is given
    with stop_flag(None) as flag:
        assert isinstance(flag, SignalStop)
    in_thread: list[Stop] = []

    def other() -> None:
        with stop_flag(None) as flag:
            in_thread.append(flag)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert isinstance(in_thread[0], threading.Event) and not in_thread[0].is_set()
    given.set()
    assert stop_reason(given) == "asked to stop"
