"""``shmview demo``: a synthetic producer in a child process and a viewer of its stream."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Callable

import viewer.arguments as T
from viewer.arguments import EXIT_CODES, EXIT_OK
from viewer.cli import view
from viewer.errors import ShmviewError
from viewer.signals import SignalStop


def register(sub: argparse._SubParsersAction) -> None:
    from producers.synthetic import PATTERNS

    demo = sub.add_parser("demo", help="a synthetic producer and a viewer in one command", epilog=EXIT_CODES)
    demo.add_argument("--name", default="demo", help="the demo stream's name")
    demo.add_argument("--pattern", choices=PATTERNS, default="bars", help="the test pattern shown")
    demo.add_argument("--headless", action="store_true", help="text instead of a window")
    demo.add_argument("--count", type=T.POSITIVE, metavar="N", help="headless: exit after N refreshes (default: never)")
    demo.set_defaults(func=run_demo)


def _stop_with(parent: int) -> Callable[[], None]:
    """For a child process: SIGTERM when ``parent`` dies, however it dies (kill -9 too).
    Linux's PR_SET_PDEATHSIG; the child checks afterwards that the parent did not die first."""

    def arm() -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def run_demo(args: argparse.Namespace) -> int:
    from viewer.stream.registry import validate_name

    validate_name(args.name)  # here, rather than as the producer's failure to start
    cmd = [sys.executable, "-m", "viewer", "produce", "synthetic", "--name", args.name, "--pattern", args.pattern]
    # A stop signal ends the view below, and so the producer too (finally).
    with SignalStop.installed() as stop:
        # The producer goes when the demo goes, even by kill -9: no stream left running forever.
        producer = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=_stop_with(os.getpid()))
        try:
            assert producer.stdout is not None
            ready = producer.stdout.readline().strip()
            if not ready:
                if stop.is_set():
                    return EXIT_OK  # stopped before there was anything to show
                raise ShmviewError(f"the demo producer failed to start (exit {producer.wait()})")
            print(ready, flush=True)
            shown = ["--headless"] if args.headless else []
            shown += ["--count", str(args.count)] if args.count else []
            code = view.run_view(
                view.arguments([args.name, *shown]), stop=stop, until=lambda: producer.poll() is not None
            )
            if stop.is_set():
                return EXIT_OK  # stopped, as a viewer is meant to be
            if producer.poll() is not None:  # it stopped by itself, or was stopped on its own
                raise ShmviewError(f"the demo producer stopped (exit {producer.returncode})")
            return code
        finally:
            producer.terminate()
            producer.wait()
