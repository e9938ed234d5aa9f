"""The policy boundary: pure decision objects shared by the simulated and live engines.

A policy sees the serving state (queues, KV cache, decode pool), the clock and a latency
predictor, and returns the next `Work` for a lane. The engine runs it (simulated time or real
kernels) and calls `on_work_done`. A policy never imports simpy or torch, so a difference
between simulated and live results is a latency-model error, never a policy difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bulletsim.core import Work
from bulletsim.latency.base import LatencyModel
from bulletsim.state import ServingState


@dataclass(frozen=True, slots=True)
class SLO:
    """Service-level objectives; a request meets them when both hold.

    TTFT is judged per prompt token when `norm_ttft_s_per_token` is set (the Bullet paper's
    normalized TTFT), else against `ttft_s`.
    """

    tpot_s: float
    ttft_s: float | None = None
    norm_ttft_s_per_token: float | None = None

    def ttft_limit_s(self, prompt_tokens: int) -> float:
        if self.norm_ttft_s_per_token is not None:
            return self.norm_ttft_s_per_token * prompt_tokens
        assert self.ttft_s is not None
        return self.ttft_s


@dataclass(slots=True)
class PolicyContext:
    """Everything a policy is bound to at the start of a run."""

    state: ServingState
    latency: LatencyModel
    total_sms: int
    slo: SLO


class Policy(Protocol):
    """Decides what each lane runs next."""

    name: str
    lanes: tuple[str, ...]  # ("main",) for single-lane policies; ("prefill", "decode") for Bullet
    # SMs the lanes may hold beyond the GPU's together (0 unless overlap is the point, as in
    # the naive-concurrency ablation); an optional attribute, read with getattr(..., 0).
    # Optional method `stays_idle(lane) -> bool`: True only when `next_work(lane, now)` would
    # return None and change nothing; the engine then skips waking that idle lane (a speed
    # hook: a wrong True would change results, so implement it only where it is provable).

    def bind(self, ctx: PolicyContext) -> None:
        """Attach to a run's state; called once before the first `next_work`."""
        ...

    def next_work(self, lane: str, now_s: float) -> Work | None:
        """The lane's next unit of work, or None if it should idle until woken."""
        ...

    def on_work_done(self, work: Work, now_s: float) -> None:
        """Commit the progress `work` made; it finished at `now_s`."""
        ...

    def allocation(self, lane: str) -> int:
        """SMs the lane holds right now (changes between iterations for Bullet)."""
        ...
