"""A producer that writes one 4x4 frame for every line on stdin and says so: a test chooses
exactly which frame is the last one before it kills it.

python tests/support/step_producer.py NAME
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from viewer import FrameWriter

if __name__ == "__main__":
    with FrameWriter(sys.argv[1], (4, 4)) as writer:
        print("ready", flush=True)
        for n, _ in enumerate(sys.stdin, 1):
            writer.write(np.full((4, 4), n, np.uint8))
            print(f"wrote {n}", flush=True)
