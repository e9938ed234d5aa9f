"""The live host loop: one thread drives every lane of a policy on an executor.

Each pass of the loop (1) admits requests whose arrival time has come on the run clock, (2)
commits every launch that has finished, earliest device end first, calling the policy's
`on_work_done` with that device end time (so a token's time is when the iteration producing
it finished on the GPU), (3) asks each idle lane for work when something changed (an arrival,
a completion, a launch) and launches it without waiting, and (4) sleeps in the executor until
a launch may have finished or the next arrival is due. There is no preemption of running
work: a re-split reaches a running lane at its next window or step (the partition of a launch
is fixed). The simulator does the same under green contexts (`partitioning.keeps_partition`)
and prices a launch by the same co-runner rule (`core.co_runner_beside`); under libsmctrl and
mps it shrinks a running lane at once (the paper's per-kernel re-masking), which this loop
does not.

Between the executor's setup (`begin`) and the start of the run clock (`start_clock`), the
heap is collected and frozen for the loop (`gc_freeze.frozen_heap`), so the collection's
pause falls before the first arrival and no full collection in the loop walks the setup's
objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bulletsim.core import co_runner_beside
from bulletsim.live.executor import Executor, Launch
from bulletsim.live.gc_freeze import frozen_heap
from bulletsim.live.records import LiveIterationLog
from bulletsim.policies.base import Policy, PolicyContext


class LiveStuck(RuntimeError):
    """Requests remain but no lane has work and no arrival is due (a policy or capacity bug)."""


class LiveEngine:
    def __init__(
        self,
        policy: Policy,
        ctx: PolicyContext,
        executor: Executor,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.policy = policy
        self.ctx = ctx
        self.state = ctx.state
        self.latency = ctx.latency
        self.executor = executor
        self.log = LiveIterationLog()
        self.sm_log: list[tuple[float, str, int]] = []
        self._progress = progress
        self._alloc: dict[str, int] = {}
        self.loop_host_s = 0.0  # CPU spent in the loop outside waits
        self.wall_s = 0.0
        self.gc_note = ""  # what was done with Python's GC (`gc_freeze.frozen_heap`)

    def run(self) -> LiveIterationLog:
        policy, ex = self.policy, self.executor
        lanes = tuple(policy.lanes)
        policy.bind(self.ctx)
        ex.begin(self.ctx, lanes)
        for lane in lanes:
            self._alloc[lane] = policy.allocation(lane)
            self.sm_log.append((0.0, lane, self._alloc[lane]))
        # after setup, before the run clock starts: the collection's pause is not the run's
        with frozen_heap() as self.gc_note:
            ex.start_clock()
            t_run = time.perf_counter()
            self._serve(lanes)
            self.wall_s = time.perf_counter() - t_run
        return self.log

    def _serve(self, lanes: tuple[str, ...]) -> None:
        policy, st, ex = self.policy, self.state, self.executor
        in_flight: dict[str, Launch | None] = dict.fromkeys(lanes)
        pending_host: dict[str, float] = dict.fromkeys(lanes, 0.0)
        dirty = True
        clock = time.perf_counter
        while not st.all_done:
            t0 = clock()
            if st.admit_arrivals(ex.now()):
                dirty = True
            done = [x for x in in_flight.values() if x is not None and ex.poll(x)]
            if done:
                seen_s = ex.now()
                sm_mhz = ex.sm_clock_mhz()  # one NVML read for all launches seen now
                done.sort(key=lambda x: x.end_s)
                for x in done:
                    t1 = clock()
                    in_flight[x.lane] = None
                    policy.on_work_done(x.work, x.end_s)
                    host = pending_host[x.lane] + clock() - t1
                    self.log.append(x, st, host, seen_s, sm_mhz)
                self._sync_allocations(x.end_s)
                dirty = True
                if self._progress is not None:
                    self._progress(st.num_finished)
                if st.all_done:
                    self.loop_host_s += clock() - t0
                    break
            if dirty:
                dirty = False
                for lane in lanes:
                    if in_flight[lane] is None:
                        t1 = clock()
                        x = self._launch_next(lane, in_flight)
                        if x is not None:
                            in_flight[lane] = x
                            pending_host[lane] = clock() - t1
                            dirty = True
            busy = [x for x in in_flight.values() if x is not None]
            self.loop_host_s += clock() - t0
            if dirty:
                continue
            nxt = st.next_arrival_s()
            if not busy and nxt is None:
                raise LiveStuck(
                    f"no lane has work with {len(st.specs) - st.num_finished} requests "
                    f"unfinished ({len(st.waiting)} waiting, {st.num_running} running)"
                )
            ex.wait(nxt, busy)

    def physical_sms(self, lane: str, num_sms: int) -> int:
        """SMs a launch asking for `num_sms` on `lane` runs on (the executor's partitions)."""
        return self.executor.physical_sms(lane, num_sms)

    def _launch_next(self, lane: str, in_flight: dict[str, Launch | None]) -> Launch | None:
        ex, st = self.executor, self.state
        now = ex.now()
        st.admit_arrivals(now)
        work = self.policy.next_work(lane, now)
        if len(self._alloc) > 1:
            self._sync_allocations(now)
        if work is None:
            return None
        co = co_runner_beside(
            lane,
            ((o, y.work.shape.phase, y.num_sms) for o, y in in_flight.items() if y is not None),
        )
        sms = ex.physical_sms(lane, work.num_sms)
        predicted = self.latency.predict(work.shape, sms, co) + work.overhead_s
        x = Launch(lane, work, sms, co, predicted, now)
        ex.launch(x)
        return x

    def _sync_allocations(self, now_s: float) -> None:
        for lane, held in self._alloc.items():
            sms = self.policy.allocation(lane)
            if sms != held:
                self._alloc[lane] = sms
                self.sm_log.append((now_s, lane, sms))
