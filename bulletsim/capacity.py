"""Capacity: the highest request rate whose SLO attainment stays >= a target (90%).

Found by search, not read off a grid: bracket the answer by doubling or halving the rate
from a start, then bisect geometrically until the bracket is within `rel_tol`. The search is
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
    lo: float | None = None  # highest rate seen passing (below hi)
    hi: float | None = None  # lowest rate seen failing
    evaluated: dict[float, float] = field(default_factory=dict)  # rate -> attainment
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

    def record(self, rate: float, attainment: float) -> None:
        """`attainment` NaN: failed by an unknown margin (e.g. a run stopped early)."""
        before = (self.lo, self.hi)
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
        if self.expand:
            step = self.factor ** (2 ** max(0, len(self.evaluated) - 1))
        if hi is None:
            nxt = _round_rate(lo * step) if self.expand else lo * step
            return nxt if nxt <= self.max_req_s else None
        if lo is None:
            nxt = _round_rate(hi / step) if self.expand else hi / step
            return nxt if nxt >= self.min_req_s else None
        if hi / lo - 1.0 <= self.rel_tol:
            return None
        mid = math.sqrt(lo * hi)
        if not self.interpolate or self.same_end_moves >= 2:
            return _round_rate(mid)
        a_lo, a_hi = self.evaluated[lo], self.evaluated[hi]
        if math.isnan(a_lo) or math.isnan(a_hi):  # a failure of unknown depth: no slope
            return _round_rate(mid)
        u = (a_lo - self.target) / (a_lo - a_hi) if a_lo > a_hi else 0.5
        step = math.sqrt(1.0 + self.rel_tol)
        lower, upper = lo * step, hi / step
        if lower > upper:
            return _round_rate(mid)
        return _round_rate(min(max(lo * (hi / lo) ** u, lower), upper))

    @property
    def done(self) -> bool:
        return self.propose() is None

    @property
    def capacity_req_s(self) -> float:
        """Highest passing rate found (0 when even the smallest rate tried failed)."""
        return self.lo if self.lo is not None else 0.0


def _round_rate(rate: float) -> float:
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
