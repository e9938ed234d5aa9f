"""Stop an overloaded run as soon as its SLO misses already decide it fails the target.

A request's miss is certain before the run ends: its TTFT is at least `now - arrival` while
its first token has not come, and its TPOT is at least `(now - first token) / (output - 1)`
while it has not finished (TPOT is measured to the finish). Once the certain misses exceed
`(1 - target) * n` (tested as `(n - misses) / n < target`, the form the capacity search
compares), the run's attainment is below `target` whatever happens next, so a capacity
search may count it as failing and skip the rest of the run. `upper_bound` is the highest
attainment the run could still reach. Pure Python on `ServingState`; no simpy.
"""

from __future__ import annotations

from bulletsim.core import SLO, Request
from bulletsim.state import ServingState

# Simulated seconds between checks: a check scans only undecided requests, and a second is
# short next to any run a capacity search makes (thousands of requests at a few req/s).
CHECK_EVERY_S = 1.0


class MissBound:
    """Callable `(now_s) -> bool`: True once attainment < `target` is certain."""

    def __init__(self, state: ServingState, slo: SLO, target: float) -> None:
        self.state = state
        self.slo = slo
        self.num_requests = len(state.specs)
        self.target = target
        self.num_missed = 0
        self._undecided: list[Request] = []
        self._seen = 0  # state.requests[:_seen] are in _undecided or decided
        self._next_check_s = 0.0

    @property
    def upper_bound(self) -> float:
        """The best attainment the run can still reach."""
        return 1.0 - self.num_missed / self.num_requests

    def __call__(self, now_s: float) -> bool:
        if now_s < self._next_check_s:
            return False
        self._next_check_s = now_s + CHECK_EVERY_S
        reqs = self.state.requests
        self._undecided.extend(reqs[self._seen :])
        self._seen = len(reqs)
        slo, keep, missed = self.slo, [], 0
        for r in self._undecided:
            verdict = _verdict(r, slo, now_s)
            if verdict is None:
                keep.append(r)
            elif not verdict:
                missed += 1
        self._undecided = keep
        self.num_missed += missed
        # the same expression as the attainment a search compares (met / n >= target)
        return self.upper_bound < self.target


def _verdict(r: Request, slo: SLO, now_s: float) -> bool | None:
    """True: meets the SLO; False: certainly misses; None: not decided yet.

    The comparisons have the same form as `metrics.add_request_metrics`, so a decided
    request gets the verdict the metrics would give it, to the last bit.
    """
    spec = r.spec
    first_s = r.first_token_s
    if not _ttft_ok((first_s if first_s >= 0 else now_s) - spec.arrival_s, spec, slo):
        return False
    if first_s < 0:
        return None
    if spec.output_tokens <= 1:
        return True
    end_s = r.finish_s if r.finish_s >= 0 else now_s
    if (end_s - first_s) / (spec.output_tokens - 1) > slo.tpot_s:
        return False
    return True if r.finish_s >= 0 else None


def _ttft_ok(ttft_s: float, spec, slo: SLO) -> bool:
    if slo.norm_ttft_s_per_token is not None:
        return ttft_s / spec.prompt_tokens <= slo.norm_ttft_s_per_token
    return ttft_s <= slo.ttft_s
