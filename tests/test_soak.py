"""CI's short run of the soak script (tests/support/soak.py; run it for 10 minutes by hand).

The seed is printed and in every failure message; SHMVIEW_SOAK_SEED=N replays a run's
schedule of signals, sleeps and kills."""

import os
import random
import subprocess
import sys
from pathlib import Path


def test_soak_20_seconds():
    seed = int(os.environ.get("SHMVIEW_SOAK_SEED") or random.SystemRandom().randrange(2**31))
    print(f"soak seed {seed} (replay: SHMVIEW_SOAK_SEED={seed} pytest tests/test_soak.py)")
    script = Path(__file__).parent / "support" / "soak.py"
    done = subprocess.run(
        [sys.executable, str(script), "--seconds", "20", "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(done.stdout)
    failed = f"soak failed with seed {seed}:\n{done.stdout}{done.stderr}"
    assert done.returncode == 0, failed
    assert "torn frames: 0" in done.stdout and "blocks leaked: 0; orphan processes: 0" in done.stdout, failed
    assert f"seed {seed}" in done.stdout.splitlines()[-1], failed
