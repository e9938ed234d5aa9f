"""SM-split arithmetic for two-lane policies: partition granularity and SLO-driven minima.

`SplitPlanner` answers two questions with a handful of `predict` calls each (bisection over
whole partition units, memoized): the fewest SMs a decode step needs to stay within its
time target, and the fewest SMs a prefill needs to meet a deadline.
"""

from __future__ import annotations

from collections.abc import Callable

from bulletsim.core import WorkShape, co_runner
from bulletsim.hardware import MECHANISMS as HW_MECHANISMS
from bulletsim.latency.base import LatencyModel

# How SMs are handed out: libsmctrl masks whole TPCs (2 SMs, Bullet's mechanism); CUDA green
# contexts split in the GPU's granularity (8 SMs on Hopper); MPS caps a process's share by
# percentage (whole TPCs on the H200; simulated as disjoint partitions, though MPS does not
# reserve SMs: its measured co-run interference is in results/mechanisms-h200/, not in the
# latency model);
# without a mechanism a lane gets the whole GPU or nothing, so sharing is temporal only. The
# vocabulary and the granularity come from `bulletsim.hardware` (shared with the GPU runtime)
# through `bulletsim.partitioning`.
MECHANISMS = HW_MECHANISMS


def round_to_units(sms: float, unit: int, total_sms: int) -> int:
    """Nearest whole number of partition units, at least one unit, at most the GPU."""
    return max(unit, min(total_sms, unit * round(sms / unit)))


_UNKNOWN = object()  # a memo miss (None is an answer: no SM count meets the target)


def _ctx_bucket(ctx_tokens: int) -> int:
    """Round up to 6 significant bits (<= 3% high): a conservative memo key for contexts."""
    shift = max(0, ctx_tokens.bit_length() - 6)
    return ((ctx_tokens >> shift) + (1 if ctx_tokens & ((1 << shift) - 1) else 0)) << shift


class SplitPlanner:
    """Minimal SM counts that keep a lane within a time target, by bisection over units."""

    def __init__(self, latency: LatencyModel, total_sms: int, unit_sms: int) -> None:
        self.latency = latency
        self.total_sms = total_sms
        self.unit_sms = unit_sms
        self._decode_memo: dict[tuple[int, int, bool, float], int | None] = {}
        self._last_query: tuple[int, int, bool, float] | None = None
        self._last_answer: int | None = None
        self.num_predicts = 0

    def _smallest(self, max_units: int, ok: Callable[[int], bool]) -> int | None:
        """Fewest units k in 1..max_units with ok(k * unit), assuming ok is monotone."""
        if max_units < 1 or not ok(max_units * self.unit_sms):
            return None
        lo, hi = 0, max_units  # ok(hi) holds; ok(lo) is taken to fail
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ok(mid * self.unit_sms):
                hi = mid
            else:
                lo = mid
        return hi * self.unit_sms

    def decode_min_sms(self, shape: WorkShape, target_s: float, prefill_busy: bool) -> int | None:
        """Fewest SMs for one decode step of `shape` to take <= target_s, None if impossible.

        With a prefill running, the decode leaves it at least one unit and is predicted beside
        it (contention); the context sum is rounded up so the memo stays small.
        """
        # The same step is asked about again at every prefill window while the pool stands
        # still: answer a repeat before bucketing.
        query = (shape.decode_tokens, shape.decode_ctx_tokens, prefill_busy, target_s)
        if query != self._last_query:
            self._last_query = query
            self._last_answer = self._decode_min(shape, target_s, prefill_busy)
        return self._last_answer

    def _decode_min(self, shape: WorkShape, target_s: float, prefill_busy: bool) -> int | None:
        ctx = _ctx_bucket(shape.decode_ctx_tokens)
        key = (shape.decode_tokens, ctx, prefill_busy, target_s)
        out = self._decode_memo.get(key, _UNKNOWN)
        if out is not _UNKNOWN:
            return out
        return self._memo_put(
            key, self._search_decode(shape.decode_tokens, ctx, prefill_busy, target_s)
        )

    def _search_decode(
        self, num_decode: int, ctx_tokens: int, prefill_busy: bool, target_s: float
    ) -> int | None:
        # Apart from _decode_min: a function holding a closure pays for its cells on every
        # call, and the memo answers most calls.
        probe = WorkShape(
            decode_tokens=num_decode, decode_ctx_tokens=ctx_tokens, logits_tokens=num_decode
        )
        total = self.total_sms

        def ok(d: int) -> bool:
            self.num_predicts += 1
            co = co_runner("prefill", total - d) if prefill_busy else None
            return self.latency.predict(probe, d, co) <= target_s

        max_units = (total - self.unit_sms if prefill_busy else total) // self.unit_sms
        return self._smallest(max_units, ok)

    def _memo_put(self, key, value: int | None) -> int | None:
        if len(self._decode_memo) > 200_000:  # bound memory on very long runs
            self._decode_memo.clear()
        self._decode_memo[key] = value
        return value

    def prefill_min_sms(
        self,
        window: WorkShape,
        num_windows: int,
        extra_s: float,
        budget_s: float,
        decode_busy: bool,
    ) -> int | None:
        """Fewest SMs for `num_windows` windows of `window` (+ extra_s) to fit in budget_s."""
        total = self.total_sms

        def ok(p: int) -> bool:
            self.num_predicts += 1
            co = co_runner("decode", total - p) if decode_busy else None
            return num_windows * self.latency.predict(window, p, co) + extra_s <= budget_s

        max_units = (total - self.unit_sms if decode_busy else total) // self.unit_sms
        return self._smallest(max_units, ok)
