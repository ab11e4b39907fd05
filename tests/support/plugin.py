"""The testing kit as a user's project meets it: how to load the plugin, a user's source that
misbehaves, and the sum a solid frame must have."""

from __future__ import annotations

import importlib.metadata

import numpy as np


def plugin_args() -> list[str]:
    """``-p viewer.testing.plugin`` unless the installed shmview registers it through its
    entry point already (then ``-p`` would register it a second time: an error)."""
    installed = any(ep.value == "viewer.testing.plugin" for ep in importlib.metadata.entry_points(group="pytest11"))
    return [] if installed else ["-p", "viewer.testing.plugin"]


LEAVES_A_PROCESS = """\
import subprocess
import numpy as np
from producers import FrameSource

class Forks(FrameSource):
    def open(self):
        # a helper that outlives the producer: in its own session, so nothing stops it
        subprocess.Popen(["sleep", "60"], start_new_session=True)
    def read(self):
        return np.zeros((8, 8), np.uint8)
"""


def solid_sum(index: int, shape: tuple[int, ...]) -> int:
    return (index % 256) * int(np.prod(shape))
