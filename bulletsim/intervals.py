"""Confidence intervals over seeds: capacity, and Bullet-vs-baseline capacity ratios.

Each seed is an independent replication (its own arrivals and request sample), so the
per-seed capacities are treated as i.i.d. draws and summarised by their mean and a two-sided
Student-t interval, mean +- t(1 - alpha/2, k - 1) * s / sqrt(k) (`scipy.stats.t`). A ratio
between two policies is *paired* by seed (both saw the same requests); its interval is the
t-interval of the per-seed log ratios, exponentiated (a geometric mean and an asymmetric
interval that never crosses zero). With one seed there is no interval (NaN bounds).

Each per-seed capacity is itself located only to the capacity search's resolution
(`rel_tol`: the bracket the bisection stops at), an error that seeds do not average away: the
intervals are widened by it, `resolution_rel * mean` on each side of a mean and a factor
`1 + resolution_rel` on each side of a ratio, so two seeds that land on the same bisection
steps cannot report a gain more precisely than the search located it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate and its two-sided interval at `CONFIDENCE` over `num_seeds` seeds."""

    point: float
    lo: float
    hi: float
    num_seeds: int

    @property
    def half_width_rel(self) -> float:
        """(hi - lo) / 2 / point: the interval's half-width relative to the point."""
        if not self.point > 0 or math.isnan(self.lo):
            return float("nan")
        return (self.hi - self.lo) / 2 / self.point


def mean_interval(values: list[float] | np.ndarray, resolution_rel: float = 0.0) -> Interval:
    """Mean of per-seed values and its Student-t interval (NaN bounds for one value), widened
    by `resolution_rel * mean` on each side (see the module docstring)."""
    x = np.asarray(values, dtype=np.float64)
    k = len(x)
    if k == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(x.mean())
    if k < 2:
        return Interval(mean, float("nan"), float("nan"), k)
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, k - 1) * x.std(ddof=1) / math.sqrt(k))
    half += resolution_rel * abs(mean)
    return Interval(mean, mean - half, mean + half, k)


def ratio_interval(
    num: list[float] | np.ndarray, den: list[float] | np.ndarray, resolution_rel: float = 0.0
) -> Interval:
    """Geometric-mean ratio num/den over paired seeds, t-interval on the log scale, widened by
    a factor `1 + resolution_rel` on each side (see the module docstring).

    Seeds where either capacity is not positive are left out (a ratio to 0 is undefined).
    """
    a, b = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    ok = (a > 0) & (b > 0)
    if not ok.any():
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    logs = mean_interval(np.log(a[ok] / b[ok]))
    widen = math.log1p(resolution_rel)
    return Interval(
        math.exp(logs.point),
        math.exp(logs.lo - widen),
        math.exp(logs.hi + widen),
        logs.num_seeds,
    )


def seeds_needed(iv: Interval, max_half_width_rel: float) -> int:
    """Seeds at which the same spread would give a half-width <= `max_half_width_rel`.

    An estimate: the spread s is taken as fixed and t is re-evaluated for each k
    (width ~ t(k) / sqrt(k)).
    """
    hw = iv.half_width_rel
    if math.isnan(hw) or hw <= max_half_width_rel:
        return iv.num_seeds
    k0 = iv.num_seeds
    scale = hw * math.sqrt(k0) / stats.t.ppf(0.5 + CONFIDENCE / 2, k0 - 1)
    for k in range(k0 + 1, 1000):
        if scale * stats.t.ppf(0.5 + CONFIDENCE / 2, k - 1) / math.sqrt(k) <= max_half_width_rel:
            return k
    return 1000


def requests_needed(iv: Interval, num_requests: int, max_half_width_rel: float) -> int:
    """Requests per run at which the same seeds would give a half-width <= the limit.

    An estimate: the seed-to-seed spread of a capacity falls as 1 / sqrt(requests per run)
    (each run's attainment is a mean over its requests), so n * (hw / limit)^2.
    """
    hw = iv.half_width_rel
    if math.isnan(hw) or hw <= max_half_width_rel:
        return num_requests
    return math.ceil(num_requests * (hw / max_half_width_rel) ** 2)
