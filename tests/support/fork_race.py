"""Run by tests/test_stops.py: a thread claims and releases stream names while the main
thread forks, as a bridge's mirror threads do (each starts a SharedMemoryManager by fork
while others close theirs). A child whose pipe to its parent was closed by the claims'
at-fork handler counts as bad; prints ``bad N``. Run it in a private registry."""

from __future__ import annotations

import os
import sys
import threading

from viewer.stream.registry import Claim


def main(forks: int) -> int:
    stop = threading.Event()

    def churn() -> None:
        k = 0
        while not stop.is_set():
            Claim(f"race{k % 4}").release()
            k += 1

    thread = threading.Thread(target=churn)
    thread.start()
    bad = 0
    try:
        for _ in range(forks):
            bad += not _child_reaches_parent()
    finally:
        stop.set()
        thread.join()
    print(f"bad {bad}")
    return 0


def _child_reaches_parent() -> bool:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(w, b"k")
        except OSError:
            os._exit(1)
        os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    reached = os.read(r, 1) == b"k"
    os.close(r)
    return reached and os.waitstatus_to_exitcode(status) == 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
