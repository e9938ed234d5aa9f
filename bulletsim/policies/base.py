"""The policy boundary: pure decision objects shared by the simulated and live engines.

A policy sees the serving state (queues, KV cache, decode pool), the clock and a latency
predictor, and returns the next `Work` for a lane. The engine runs it (simulated time or real
kernels) and calls `on_work_done`. A policy never imports simpy or torch, so a difference
between simulated and live results is a latency-model error, never a policy difference.

The SM split has one channel: `allocation(lane)`, what the policy says each lane holds now.
Engines read it after every `next_work` and `on_work_done` call (the only moments it can
change) and apply it (see `bulletsim.engine_api.Engine`): a new `Work` starts on
`work.num_sms`, which equals its lane's allocation at that moment; a *running* lane whose
allocation changed is resized at its next boundary. Policies never see what an engine did
with a resize except through the state and the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bulletsim.core import SLO, Work
from bulletsim.latency.base import LatencyModel
from bulletsim.state import ServingState

__all__ = ["SLO", "Policy", "PolicyContext"]  # SLO lives in core.py; re-exported for callers


@dataclass(slots=True)
class PolicyContext:
    """Everything a policy is bound to at the start of a run."""

    state: ServingState
    latency: LatencyModel
    total_sms: int
    slo: SLO


class Policy(Protocol):
    """Decides what each lane runs next and how many SMs each lane holds."""

    name: str
    lanes: tuple[str, ...]  # ("main",) for single-lane policies; ("prefill", "decode") for Bullet
    # SMs the lanes may hold beyond the GPU's together: 0 unless overlap is the point, as in
    # the naive-concurrency ablation (where both lanes hold every SM and contend).
    max_overlap_sms: int

    def bind(self, ctx: PolicyContext) -> None:
        """Attach to a run's state; called once before the first `next_work`."""
        ...

    def next_work(self, lane: str, now_s: float) -> Work | None:
        """The lane's next unit of work, or None if it should idle until woken.

        `now_s` is the engine's clock (simulated or wall seconds since the run began).
        """
        ...

    def on_work_done(self, work: Work, now_s: float) -> None:
        """Commit the progress `work` made; it finished at `now_s`."""
        ...

    def allocation(self, lane: str) -> int:
        """SMs the lane holds right now: the one channel of the SM split (see module doc)."""
        ...

    def stays_idle(self, lane: str) -> bool:
        """True only when `next_work(lane, now)` would return None and change nothing.

        An engine may then skip waking that idle lane (a speed hook: a wrong True changes
        results, so return True only where it is provable; False is always correct).
        """
        ...
