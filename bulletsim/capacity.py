"""Capacity: the highest request rate whose SLO attainment stays >= a target (90%).

Found by search, not read off a grid: bracket the answer by doubling or halving the rate
from a start, then narrow it (geometric bisection, or interpolation of the attainment
curve) until the bracket is within `rel_tol`. The search is
a small state machine (`propose` the next rate, `record` its attainment) so a sweep can run
many searches side by side in a process pool; `find_capacity` drives one serially.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class CapacitySearch:
    """Bracketing + geometric bisection on rate; `capacity_req_s` is the best passing rate.

    Attainment is assumed to fall with rate. Noise can break that; a rate that passes above
    a failing one only raises `lo` if it lies below `hi`, so the bracket never inverts.
    """

    target: float = 0.9
    start_req_s: float = 4.0
    factor: float = 2.0
    rel_tol: float = 0.02
    min_req_s: float = 1e-3
    max_req_s: float = 1e4
    # Widen the bracketing step after each step in the same direction (factor, factor^2,
    # factor^4, ...): a narrow first bracket around a good guess that still reaches a far
    # answer in a few steps.
    expand: bool = False
    # Inside a bracket, propose where attainment crosses the target by linear interpolation
    # (in log rate) instead of the geometric midpoint, kept at least sqrt(1 + rel_tol) from
    # both ends; after two moves of the same end, one midpoint step (the Illinois idea: a
    # stuck end cannot slow it below bisection for long). Fewer runs on smooth curves.
    interpolate: bool = False
    # d(attainment) / d(ln rate) near the answer (negative), e.g. from another seed's search
    # of the same policy and workload: with one end of the bracket known, the next rate is
    # the predicted crossing, overshot by half the resolution so it most likely closes a
    # bracket (used for the second rate only; then steps as above).
    slope: float | None = None
    lo: float | None = None  # highest rate seen passing (below hi)
    hi: float | None = None  # lowest rate seen failing
    evaluated: dict[float, float] = field(default_factory=dict)  # rate -> attainment
    # rate -> an estimate of the attainment of a run whose value is unknown (NaN in
    # `evaluated`, e.g. one stopped early); used only to choose rates, never to decide
    estimates: dict[float, float] = field(default_factory=dict)
    same_end_moves: int = 0  # consecutive records that moved the same end of the bracket
    last_end: str = ""

    def __post_init__(self) -> None:
        if not 0.0 < self.target <= 1.0:
            raise ValueError(f"target attainment must be in (0, 1], got {self.target}")
        if self.factor <= 1.0 or self.rel_tol <= 0.0 or self.start_req_s <= 0.0:
            raise ValueError("factor must be > 1, rel_tol > 0 and start_req_s > 0")

    def seed(self, points: dict[float, float]) -> None:
        """Use already-measured (rate -> attainment) points, e.g. a sweep's grid."""
        for rate in sorted(points):
            self.record(rate, points[rate])

    def record(self, rate: float, attainment: float, estimate: float = math.nan) -> None:
        """`attainment` NaN: failed by an unknown margin (e.g. a run stopped early), with
        `estimate` its guessed attainment (NaN: none)."""
        before = (self.lo, self.hi)
        if math.isnan(attainment) and not math.isnan(estimate):
            self.estimates[rate] = estimate
        self._record(rate, attainment)
        end = "lo" if self.lo != before[0] else "hi" if self.hi != before[1] else ""
        self.same_end_moves = self.same_end_moves + 1 if end and end == self.last_end else 1
        self.last_end = end

    def _record(self, rate: float, attainment: float) -> None:
        self.evaluated[rate] = attainment
        if attainment >= self.target:
            if (self.hi is None or rate < self.hi) and (self.lo is None or rate > self.lo):
                self.lo = rate
        elif self.hi is None or rate < self.hi:
            self.hi = rate
            if self.lo is not None and self.lo >= rate:
                self.lo = None
                passing = [r for r, a in self.evaluated.items() if a >= self.target and r < rate]
                self.lo = max(passing) if passing else None

    def propose(self) -> float | None:
        """The next rate to evaluate, or None when the search is finished."""
        lo, hi = self.lo, self.hi
        if lo is None and hi is None:
            return self.start_req_s
        step = self.factor
        if self.expand:  # factor^(2^k), capped at the whole rate range (no float overflow)
            k = min(max(0, len(self.evaluated) - 1), 60)
            step = math.exp(min(2.0**k * math.log(self.factor), self._log_range()))
        if (lo is None or hi is None) and self.slope is not None and len(self.evaluated) == 1:
            guess = self._guess(lo if hi is None else hi, step)
            if guess is not None:
                return guess
        if hi is None:
            nxt = round_rate(lo * step) if self.expand else lo * step
            return nxt if nxt <= self.max_req_s else None
        if lo is None:
            nxt = round_rate(hi / step) if self.expand else hi / step
            return nxt if nxt >= self.min_req_s else None
        if hi / lo - 1.0 <= self.rel_tol:
            return None
        mid = math.sqrt(lo * hi)
        if not self.interpolate or self.same_end_moves >= 2:
            return round_rate(mid)
        a_lo, a_hi = self.value(lo), self.value(hi)
        if math.isnan(a_lo) or math.isnan(a_hi):  # a failure of unknown depth: no slope
            return round_rate(mid)
        u = (a_lo - self.target) / (a_lo - a_hi) if a_lo > a_hi else 0.5
        step = math.sqrt(1.0 + self.rel_tol)
        lower, upper = lo * step, hi / step
        if lower > upper:
            return round_rate(mid)
        return round_rate(min(max(lo * (hi / lo) ** u, lower), upper))

    def _log_range(self) -> float:
        """ln(max_req_s / min_req_s) + 1: no step of the search is ever wider than this."""
        return math.log(max(self.max_req_s, self.min_req_s) / self.min_req_s) + 1.0

    def value(self, rate: float) -> float:
        """The attainment at an evaluated rate, or its estimate, or NaN."""
        a = self.evaluated[rate]
        return self.estimates.get(rate, math.nan) if math.isnan(a) else a

    def _guess(self, rate: float, step: float) -> float | None:
        """The `slope`'s predicted crossing from one evaluated rate, overshot by half the
        resolution, kept within (1 + rel_tol, step) of it; None without a value there."""
        a = self.value(rate)
        if math.isnan(a) or not self.slope or self.slope >= 0:
            return None
        half = math.sqrt(1.0 + self.rel_tol)
        x = (self.target - a) / self.slope  # clamped: a tiny slope must not overflow exp
        ratio = math.exp(max(-self._log_range(), min(x, self._log_range())))
        ratio = ratio * half if a >= self.target else ratio / half
        if a >= self.target:
            return round_rate(rate * min(max(ratio, 1.0 + self.rel_tol), step))
        return round_rate(rate / min(max(1.0 / ratio, 1.0 + self.rel_tol), step))

    def local_slope(self, span: float = 1.25) -> float | None:
        """d(attainment) / d(ln rate) fitted (least squares) over the evaluated rates within a
        factor `span` of the capacity, estimates included; None with fewer than two."""
        cap = self.capacity_req_s
        if not cap > 0:
            return None
        pts = [(math.log(r), self.value(r)) for r in self.evaluated
               if cap / span <= r <= cap * span and not math.isnan(self.value(r))]  # fmt: skip
        if len(pts) < 2:
            return None
        mx = sum(x for x, _ in pts) / len(pts)
        my = sum(y for _, y in pts) / len(pts)
        sxx = sum((x - mx) ** 2 for x, _ in pts)
        if sxx <= 0:
            return None
        slope = sum((x - mx) * (y - my) for x, y in pts) / sxx
        return slope if slope < 0 else None

    @property
    def done(self) -> bool:
        return self.propose() is None

    @property
    def capacity_req_s(self) -> float:
        """Highest passing rate found (0 when even the smallest rate tried failed)."""
        return self.lo if self.lo is not None else 0.0


def round_rate(rate: float) -> float:
    """Six significant digits: rates stay readable and identical across platforms."""
    return float(f"{rate:.6g}")


def find_capacity(
    attainment_at: Callable[[float], float], search: CapacitySearch | None = None
) -> CapacitySearch:
    """Run a search to the end, evaluating `attainment_at(rate)` serially."""
    s = search or CapacitySearch()
    while (rate := s.propose()) is not None:
        s.record(rate, attainment_at(rate))
    return s
