"""How shmview prints a span of time for people: the one helper every message that says
"after 5 s" or "in 0.2 ms" goes through, so a timeout of 0.00021 s reads ``0.2 ms`` and
never ``0.00021 s`` or ``2.1e-04 s``. stdlib only: every layer may use it."""

from __future__ import annotations

import math


def duration(seconds: float) -> str:
    """``seconds`` rounded the way people say it: ``0 s``, ``0.2 ms``, ``12 ms``, ``0.25 s``,
    ``2.5 s``, ``12.3 s``, ``1,800 s``. Below 0.1 s in milliseconds (one decimal below
    10 ms, none above); what rounds to nothing is ``0 s``; negative is ``0 s``."""
    s = float(seconds)
    if not math.isfinite(s):
        return f"{s} s"
    if s <= 0:
        return "0 s"
    ms = s * 1000
    if ms < 99.5:  # else it rounds to 100 ms: 0.1 s
        text = _trim(f"{ms:.1f}" if ms < 9.95 else f"{ms:.0f}")
        return "0 s" if text == "0" else f"{text} ms"
    if s < 9.995:
        return f"{_trim(f'{s:.2f}')} s"
    if s < 99.95:
        return f"{_trim(f'{s:.1f}')} s"
    return f"{s:,.0f} s"


def _trim(number: str) -> str:
    """``2.50`` -> ``2.5``, ``5.00`` -> ``5``: no trailing zeros after the point."""
    return number.rstrip("0").rstrip(".") if "." in number else number
