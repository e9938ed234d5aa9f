"""The range every float parameter of every config section must lie in (one rule for all).

A NaN parameter hangs the event loop (no comparison with it is true, so a wait never ends) and
an infinite or huge one (1e308) makes infinite times: a run of 0 req/s that exits 0. So every
float parameter, in any section (policy, workload, slo, kv), from TOML, `--set` or a sweep's
`--policy NAME:key=value`, is a finite number within the bound of its unit, named by its
suffix (STYLE.md: units in names): a time (`_ms`, `_us`: at most one hour; `_s`: at most one
year, a trace's length) is >= 0; any other float is at most 1e9 in size. A field may take
infinity only where its docstring gives it a meaning (`workload.rate` and `workload.cv`: every
arrival at t = 0; both must also be > 0, which the message of a too-large one says). A bounded
field declares its own range in its metadata (`RANGE`, e.g. a fraction in (0, 1]) and is
checked, NaN included, against that instead, so the message names the range that is valid;
each section's own checks come after this one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

HOUR_S = 3600.0
YEAR_S = 365 * 24 * HOUR_S
MAX_PLAIN = 1e9  # a float without a time unit: rates, scales, GiB, fractions
# suffix -> (largest value, unit shown in messages); the smallest is 0 for times
TIME_BOUNDS = {"_ms": (HOUR_S * 1e3, "ms (one hour)"), "_us": (HOUR_S * 1e6, "us (one hour)"),
               "_s": (YEAR_S, "s (one year)")}  # fmt: skip
ALLOWS_INF = "allow_inf"  # dataclass field metadata key: infinity has a documented meaning
RANGE = "range"  # dataclass field metadata key: (lo, hi, lo included, hi included)
FRACTION = {RANGE: (0.0, 1.0, False, True)}  # (0, 1]: a share that must be positive


def range_text(rng: tuple[float, float, bool, bool]) -> str:
    """`(0, 1]` from (0, 1, False, True)."""
    lo, hi, lo_in, hi_in = rng
    return f"{'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def in_range(value: float, rng: tuple[float, float, bool, bool]) -> bool:
    lo, hi, lo_in, hi_in = rng
    return (lo <= value if lo_in else lo < value) and (value <= hi if hi_in else value < hi)


def check_float(
    path: str,
    value: float,
    allow_inf: bool = False,
    rng: tuple[float, float, bool, bool] | None = None,
) -> float:
    """`value` if it is in range for the parameter named by `path` (e.g. "pdmux.handoff_ms"),
    or in `rng` where the field declares one (`RANGE`), else a one-line ValueError naming the
    parameter, its valid range and the value."""
    name = path.rsplit(".", 1)[-1]
    if rng is not None:
        if not in_range(value, rng):  # NaN is in no range
            raise ValueError(f"{path} must be in {range_text(rng)}, got {value}")
        return value
    if allow_inf and value == math.inf:
        return value
    for suffix, (hi, unit) in TIME_BOUNDS.items():
        if name.endswith(suffix):
            if not 0.0 <= value <= hi:
                raise ValueError(f"{path} must be a finite time in [0, {hi:g}] {unit}, got {value}")
            return value
    if not -MAX_PLAIN <= value <= MAX_PLAIN:
        if allow_inf:  # workload.rate and cv: their sections also require > 0
            raise ValueError(
                f"{path} must be a finite number > 0 and at most {MAX_PLAIN:g}, or inf, got {value}"
            )
        raise ValueError(
            f"{path} must be a finite number in [-{MAX_PLAIN:g}, {MAX_PLAIN:g}], got {value}"
        )
    return value


def check_float_fields(obj: Any, section: str) -> None:
    """`check_float` on every float field of dataclass instance `obj` (a policy's
    parameters built directly, not through a config file)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float):
            check_float(
                f"{section}.{f.name}",
                value,
                bool(f.metadata.get(ALLOWS_INF)),
                f.metadata.get(RANGE),
            )
