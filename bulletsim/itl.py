"""Inter-token-latency samples, kept weighted so no per-token storage is needed.

A decode step that ends at `t` adds one sample `t - previous step end` weighted by the
members that took part in both steps, and one unweighted sample per member that just joined
(`t - its last token`); a prefill recompute after a preemption adds one sample for the gap.
The run owns the samples; the serving state only appends to them as tokens are emitted.
"""

from __future__ import annotations


class ITLSamples:
    """Values in seconds and integer weights (how many token gaps each value stands for)."""

    __slots__ = ("values", "weights")

    def __init__(self) -> None:
        self.values: list[float] = []
        self.weights: list[int] = []

    def __len__(self) -> int:
        return len(self.values)

    def add(self, value_s: float, weight: int = 1) -> None:
        self.values.append(value_s)
        self.weights.append(weight)
