"""Frame sources and the loop that feeds them into a shmview stream.

Sources know nothing about shared memory: they open, hand out frames, and close.
"""

from producers.base import FrameSource, NoFrameYet, run
from producers.service import serve

__all__ = ["FrameSource", "NoFrameYet", "run", "serve"]
