"""Timestamp units: declared by a trace's format or by the user, never guessed, and shown.

A millisecond column read as seconds spreads a trace 1000x; so every timestamped reader
converts with a declared unit and says, in a note every run prints, which unit it used and
why, and the trace's span and mean rate, so that such an error is visible at a glance.
"""

from __future__ import annotations

import numpy as np

TIME_UNITS: dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def unit_scale(unit: str) -> float:
    """Seconds per `unit`; ValueError listing the valid units."""
    if unit not in TIME_UNITS:
        raise ValueError(f"timestamp_unit: unknown {unit!r}; valid: {', '.join(TIME_UNITS)}")
    return TIME_UNITS[unit]


def choose_unit(declared: str, given: str | None, fmt: str) -> tuple[str, str]:
    """The unit to use and why: the user's `given` unit wins over the format's `declared` one."""
    if given is not None:
        unit_scale(given)
        return given, "given with timestamp_unit"
    return declared, f"declared by the {fmt} format"


def span_note(arrival_s: np.ndarray, unit: str, why: str) -> str:
    """ "timestamps in ms (declared by ...): span 12.3 s, 40 requests, 3.252 req/s"."""
    n = len(arrival_s)
    span = float(arrival_s[-1] - arrival_s[0]) if n else 0.0
    rate = f"{(n - 1) / span:.3f} req/s" if span > 0 else "all at one instant"
    return f"timestamps in {unit} ({why}): span {span:.3f} s, {n} requests, {rate}"
