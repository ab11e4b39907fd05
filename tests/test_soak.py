"""CI's short run of the soak script (tests/soak.py; run it for 10 minutes by hand)."""

import subprocess
import sys
from pathlib import Path


def test_soak_20_seconds():
    script = Path(__file__).with_name("soak.py")
    done = subprocess.run(
        [sys.executable, str(script), "--seconds", "20"], capture_output=True, text=True, timeout=300
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "torn frames: 0" in done.stdout and "blocks leaked: 0; orphan processes: 0" in done.stdout
