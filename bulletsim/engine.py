"""The simulated engine: lanes as SimPy processes, one event per lane iteration.

Only this module imports simpy. A lane asks the policy for work, advances simulated time by
the latency model's prediction and reports back. When another lane changes this lane's SM
allocation mid-iteration, the lane is interrupted and the remaining work is rescaled to the
new allocation (re-partitioning on a real GPU applies to the next kernel launch, which comes
within microseconds).
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

from bulletsim.core import CoRunner, Work
from bulletsim.policies.base import Policy, PolicyContext
from bulletsim.records import IterationLog


class SimulationStuck(RuntimeError):
    """Requests remain but no lane can make progress (a policy or capacity bug)."""


class SimEngine:
    def __init__(
        self,
        policy: Policy,
        ctx: PolicyContext,
        *,
        progress: Callable[[int], None] | None = None,
        progress_every: int = 2000,
    ) -> None:
        self.policy = policy
        self.ctx = ctx
        self.state = ctx.state
        self.latency = ctx.latency
        self.log = IterationLog()
        self.sm_log: list[tuple[float, str, int]] = []  # (time, lane, SMs) at every change
        self._progress = progress
        self._progress_every = progress_every
        self._busy: dict[str, Work | None] = {}
        self._idle: dict[str, simpy.Event | None] = {}
        self._procs: dict[str, simpy.Process] = {}
        self._alloc: dict[str, int] = {}

    def run(self) -> IterationLog:
        env = self.env = simpy.Environment()
        self.policy.bind(self.ctx)
        for lane in self.policy.lanes:
            self._busy[lane] = None
            self._idle[lane] = None
            self._alloc[lane] = self.policy.allocation(lane)
            self.sm_log.append((0.0, lane, self._alloc[lane]))
        for lane in self.policy.lanes:
            self._procs[lane] = env.process(self._lane(lane))
        env.run()
        if not self.state.all_done:
            raise SimulationStuck(self._stuck_message())
        return self.log

    def _co_runner(self, lane: str) -> CoRunner | None:
        for other, w in self._busy.items():
            if other != lane and w is not None:
                # the allocation, not w.num_sms: a re-split made at this instant has already
                # shrunk the other lane, its process just has not handled the interrupt yet
                return CoRunner(w.shape.phase, self._alloc.get(other, w.num_sms))
        return None

    def _sync_allocations(self, now_s: float) -> None:
        """Record split changes and interrupt busy lanes whose SM count changed."""
        for lane in self.policy.lanes:
            sms = self.policy.allocation(lane)
            if sms != self._alloc[lane]:
                self._alloc[lane] = sms
                self.sm_log.append((now_s, lane, sms))
                w = self._busy[lane]
                if w is not None and w.num_sms != sms:
                    self._procs[lane].interrupt("repartition")

    def _wake_others(self, lane: str) -> None:
        for other, ev in self._idle.items():
            if other != lane and ev is not None and not ev.triggered:
                ev.succeed()

    def _lane(self, lane: str):
        env, st, policy, latency = self.env, self.state, self.policy, self.latency
        multi = len(policy.lanes) > 1
        log = self.log
        iters = 0
        while True:
            now = env.now
            st.admit_arrivals(now)
            work = policy.next_work(lane, now)
            if multi:
                self._sync_allocations(now)
            if work is None:
                if st.all_done:
                    self._wake_others(lane)
                    return
                nxt = st.next_arrival_s()
                if not multi:
                    if nxt is None:
                        raise SimulationStuck(self._stuck_message())
                    yield env.timeout(nxt - now)
                    continue
                # No early stuck check here: another idle lane may already have been woken
                # (its event triggered, not yet processed) at this same instant. If every
                # lane waits for good, env.run() drains and run() reports the stuck state.
                ev = self._idle[lane] = env.event()
                yield (ev | env.timeout(nxt - now)) if nxt is not None else ev
                self._idle[lane] = None
                continue

            self._busy[lane] = work
            co = self._co_runner(lane) if multi else None
            start = now
            total = latency.predict(work.shape, work.num_sms, co) + work.overhead_s
            left = 1.0  # fraction of the work still to run
            num_rescales = 0
            while True:
                seg_start = env.now
                try:
                    yield env.timeout(left * total)
                    break
                except simpy.Interrupt:
                    if total > 0:
                        left = max(0.0, left - (env.now - seg_start) / total)
                    work.num_sms = self._alloc[lane]
                    num_rescales += 1
                    co = self._co_runner(lane)
                    total = latency.predict(work.shape, work.num_sms, co) + work.overhead_s
            self._busy[lane] = None
            end = env.now
            policy.on_work_done(work, end)
            log.append(lane, start, end, work, st, num_rescales)
            iters += 1
            if self._progress is not None and iters % self._progress_every == 0:
                self._progress(st.num_finished)
            if multi:
                self._sync_allocations(end)
                self._wake_others(lane)

    def _stuck_message(self) -> str:
        st = self.state
        head = st.waiting[0] if st.waiting else None
        detail = ""
        if head is not None:
            need = st.kv.blocks_for(head.prefill_target_tokens)
            detail = (
                f"; first waiting request {head.id} needs {need} KV blocks, "
                f"{st.kv.free_blocks} of {st.kv.capacity_blocks} free"
            )
        return (
            f"no lane can make progress with {len(st.specs) - st.num_finished} requests "
            f"unfinished ({len(st.waiting)} waiting, {st.num_running} running){detail}"
        )
