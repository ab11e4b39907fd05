"""viewer/durations.py: every span of time a message prints (issue 21: "after 0.00021 s")."""

from __future__ import annotations

import pytest

from viewer.durations import duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (-1.0, "0 s"),
        (0.00004, "0 s"),  # rounds to nothing
        (0.00021, "0.2 ms"),
        (0.005, "5 ms"),
        (0.0123, "12 ms"),
        (0.0996, "0.1 s"),  # not "100 ms"
        (0.25, "0.25 s"),
        (1, "1 s"),
        (2.5, "2.5 s"),
        (5.0, "5 s"),
        (12.34, "12.3 s"),
        (1800, "1,800 s"),
        (float("inf"), "inf s"),
    ],
)
def test_a_duration_reads_as_people_say_it(seconds: float, text: str):
    assert duration(seconds) == text
