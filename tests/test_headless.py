"""The headless viewer in process: its schedule."""

from __future__ import annotations

import math


def test_headless_schedule_starts_again_after_a_stall(monkeypatch):
    from viewer.view import headless

    clock = [100.0]
    monkeypatch.setattr(headless.time, "monotonic", lambda: clock[0])
    schedule = headless.Schedule(0.1)
    clock[0] += 0.05
    assert math.isclose(schedule.delay(), 0.05)
    clock[0] += 5.0  # the machine stalled (suspend, swap): no burst of catch-up lines
    assert schedule.delay() == 0.0
    assert math.isclose(schedule.delay(), 0.1)
