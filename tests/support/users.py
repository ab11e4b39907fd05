"""Another local user, played by a forked child that became ``NOBODY`` (needs root)."""

from __future__ import annotations

import os

import pytest

NOBODY = 65534


as_root = pytest.mark.skipif(os.getuid() != 0, reason="needs root to play another user (setuid in a child)")


def as_user(uid: int, action) -> None:
    """Run ``action()`` in a forked child that has become user ``uid`` (a hostile neighbour)."""
    pid = os.fork()
    if pid == 0:  # the child: only OS calls from here on, then _exit
        code = 1
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            action()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
