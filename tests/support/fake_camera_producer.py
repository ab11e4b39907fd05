"""`shmview produce camera ...` with FakeCapture in place of cv2.VideoCapture.

python tests/support/fake_camera_producer.py CUE_DIR produce camera --name cam --device 0
"""

import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import producers.camera
from tests.support.fakes import FakeCapture
from viewer.cli.main import main

if __name__ == "__main__":
    producers.camera._capture_class = lambda: functools.partial(FakeCapture, cue_dir=sys.argv[1])
    sys.exit(main(sys.argv[2:]))
