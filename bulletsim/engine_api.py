"""What an engine is: the contract the simulated engine and a live (GPU) engine both keep.

An engine owns the clock. It binds a policy to a `PolicyContext`, then for each lane of the
policy repeatedly asks `policy.next_work(lane, now_s)`, runs the `Work` (simulated: advances
time by the host's launch gap (`latency.base.launch_gap_fn`), the latency model's prediction
and `work.overhead_s`, recording the start when the kernels start; live: launches kernels on
`work.num_sms` SMs, observes completion, e.g. with CUDA events, and does not sleep the
modelled overhead) and calls `policy.on_work_done(work, now_s)` with the time it ended.

The SM split reaches the engine through one channel, `policy.allocation(lane)` (see
`bulletsim.policies.base`): after every policy call the engine compares it with what each
lane holds; a change for a lane that is running is a resize request it applies at that
lane's next boundary (the simulator at once, as re-masking applies to the next kernel launch;
a live engine at the next layer window or step) and records in the iteration record. An
engine never changes a `Work` (it is frozen).

What ran is the engine's own record, one row per lane iteration (`records.IterationLog`):
effective SMs, number of resizes, start and end on the engine's clock (predicted seconds in
the simulator, measured in a live engine), plus the SM timeline of allocation changes (the
policy's SMs, and with `physical_sms` the partition a launch then gets:
`records.sm_timeline_frame`).

The serving state reports every admit, preempt and finish to a `StateObserver` (set with
`ServingState.observe`), so an engine with physical KV pages can mirror `KVCache`'s block
accounting; decode growth is read from the decode pool at each step (`DecodePool.context_of`).
Nothing here imports simpy or torch.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bulletsim.core import Request
from bulletsim.records import IterationLog


class StateObserver(Protocol):
    """Told about KV ownership changes as `ServingState` makes them (in that order)."""

    def on_admit(self, request: Request, num_blocks: int, now_s: float) -> None:
        """`request` was admitted and now holds `num_blocks` KV blocks for its prefill."""
        ...

    def on_preempt(self, request: Request, now_s: float) -> None:
        """`request` lost all its KV blocks and went back to the front of the waiting queue."""
        ...

    def on_finish(self, request: Request, now_s: float) -> None:
        """`request` emitted its last token; its KV blocks are free again."""
        ...


@runtime_checkable
class Engine(Protocol):
    """Runs a bound policy to completion on a clock it owns."""

    log: IterationLog  # one row per lane iteration: what actually ran
    sm_log: list[tuple[float, str, int]]  # (time_s, lane, the policy's SMs) at every change

    def run(self) -> IterationLog:
        """Run until every request has finished; raise if no lane can make progress."""
        ...

    def physical_sms(self, lane: str, num_sms: int) -> int:
        """SMs a launch on `lane` asking for `num_sms` (> 0) runs on: the partition the engine
        makes (green contexts: `live.green_lanes`; else what was asked)."""
        ...
