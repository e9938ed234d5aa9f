"""The simulated engine: lanes as SimPy processes, one event per lane iteration.

The first implementation of `engine_api.Engine`, and the only module that imports simpy.
A lane asks the policy for work, advances simulated time by the host's launch gap (when the
latency model prices one, `latency.base.launch_gap_fn`), the latency model's prediction and
the work's modelled overhead, and reports back. With several lanes the host is one thread: a
lane's launch waits while the host still enqueues another lane's eager launch
(`latency.base.host_launch_fn`). When a policy call changes a running
lane's allocation (the resize request of `engine_api`), what happens follows the partition
mechanism (`partitioning.keeps_partition`):

- libsmctrl, mps (the paper's model): the lane is interrupted at once and the remaining
  fraction of its work is rescaled to the new SM count (a TPC mask or MPS context applies to
  the next kernel launch, which comes within microseconds);
- green-ctx (the live engine's): the running work keeps the partition it launched on until it
  ends, as a CUDA-graph decode step or an eager window on a green-context stream does on the
  GPU; the other lane's new work starts at once on its own partition, priced with the running
  one as co-runner (`core.co_runner_beside`, the live loop's rule), and every launch runs on
  the green-context partition the GPU engine would make (`live.green_lanes.launch_sms`). Lanes
  may then hold more than the GPU together until the running step ends.

The `Work` is never changed: the SMs it ended on and the number of resizes go into the
iteration record.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import simpy

from bulletsim.core import CoRunner, Work, co_runner_beside
from bulletsim.latency.base import LatencyModel, host_launch_fn, launch_gap_fn
from bulletsim.live.green_lanes import launch_sms
from bulletsim.partitioning import keeps_partition
from bulletsim.policies.base import Policy, PolicyContext
from bulletsim.records import IterationLog


def bad_duration(latency: LatencyModel, work: Work, num_sms: int, seconds: float) -> str:
    """One line for an iteration priced at a negative or non-finite time (SimPy would stop
    with a bare "Negative delay"): the latency model, the work and the SMs it ran on."""
    return (
        f"latency model {latency.name} priced a {work.shape.phase} iteration ({work.shape}) on "
        f"{num_sms} SMs at {seconds!r} s (policy overhead {work.overhead_s!r} s); a duration "
        "must be finite and >= 0: check the latency model's terms (--latency roofline runs "
        "without a profile)"
    )


class SimulationStuck(RuntimeError):
    """Requests remain but no lane can make progress (a policy or capacity bug)."""


class _StopRun(Exception):
    """Raised inside a lane when `stop_when` says the rest of the run cannot matter."""


class SimEngine:
    def __init__(
        self,
        policy: Policy,
        ctx: PolicyContext,
        *,
        progress: Callable[[int], None] | None = None,
        progress_every: int = 2000,
        stop_when: Callable[[float], bool] | None = None,
        timing: LatencyModel | None = None,
        mechanism: str | None = None,
    ) -> None:
        """`stop_when(now_s)` is asked after every iteration; True ends the run there (the
        state is left as it is, `stopped_at_s` is set and the invariants no longer apply).
        `timing`: the latency model that advances the clock, when it is not the one the policy
        predicts with (`ctx.latency`): as on a real GPU, whose times the policy only predicts
        (re-simulating a live run whose policy predicted with another profile).
        `mechanism`: the policy's SM partition mechanism (`RunConfig.partition_mechanism`;
        None: no partitions, a running lane is rescaled at once as under libsmctrl); it
        decides what a resize does to running work (module doc)."""
        self.policy = policy
        self.ctx = ctx
        self.state = ctx.state
        self.latency = timing or ctx.latency
        self.log = IterationLog()
        self.sm_log: list[tuple[float, str, int]] = []  # (time, lane, SMs) at every change
        self._progress = progress
        self._progress_every = progress_every
        self._stop_when = stop_when
        self.stopped_at_s: float | None = None
        self._busy: dict[str, Work | None] = {}
        self._running_sms: dict[str, int] = {}  # SMs the busy lane's work runs on now
        self._idle: dict[str, simpy.Event | None] = {}
        self._procs: dict[str, simpy.Process] = {}
        self._alloc: dict[str, int] = {}  # the policy's allocation, as last applied
        self._armed: dict[str, simpy.Event | None] = {}  # the timeout that wakes an idle lane
        self._newest_timeout: tuple[str, float, simpy.Event] | None = None
        self._host_free_s = 0.0  # when the one host thread can prepare the next launch
        self.keeps_partition = keeps_partition(mechanism)
        self._mechanism = mechanism

    def run(self) -> IterationLog:
        env = self.env = simpy.Environment()
        self.policy.bind(self.ctx)
        for lane in self.policy.lanes:
            self._busy[lane] = None
            self._idle[lane] = None
            self._armed[lane] = None
            self._alloc[lane] = self.policy.allocation(lane)
            self.sm_log.append((0.0, lane, self._alloc[lane]))
        for lane in self.policy.lanes:
            self._procs[lane] = env.process(self._lane(lane))
        try:
            env.run()
        except _StopRun:
            self.stopped_at_s = env.now
            return self.log
        if not self.state.all_done:
            raise SimulationStuck(self._stuck_message())
        return self.log

    def physical_sms(self, lane: str, num_sms: int) -> int:
        """SMs a launch asking for `num_sms` on `lane` runs on: the green-context partition
        the GPU engine would make (`live.green_lanes.launch_sms`) when partitions are kept,
        else what was asked (re-masked at once)."""
        if not self.keeps_partition:
            return num_sms
        return launch_sms(self._mechanism, lane, num_sms, self.ctx.total_sms)

    def _co_runner(self, lane: str) -> CoRunner | None:
        # Rescaling: the allocation, not the SMs it runs on (a resize made at this instant has
        # already shrunk the other lane, its process just has not handled it yet). Keeping
        # partitions: the SMs the other lane's work launched on, as the live loop prices it.
        sms = self._running_sms if self.keeps_partition else self._alloc
        return co_runner_beside(
            lane,
            ((o, w.shape.phase, sms[o]) for o, w in self._busy.items() if w is not None),
        )

    def _sync_allocations(self, now_s: float) -> None:
        """Apply the policy's allocation: record changes, resize busy lanes that changed."""
        allocation = self.policy.allocation
        for lane, held in self._alloc.items():
            sms = allocation(lane)
            if sms != held:
                self._alloc[lane] = sms
                self.sm_log.append((now_s, lane, sms))
                if (
                    not self.keeps_partition
                    and self._busy[lane] is not None
                    and self._running_sms[lane] != sms
                ):
                    self._procs[lane].interrupt("resize")  # applied at once: see module doc

    def _wake_others(self, lane: str, *, skip_no_ops: bool = False) -> None:
        for other, ev in self._idle.items():
            if other != lane and ev is not None and not ev.triggered:
                if skip_no_ops and self._wake_is_no_op(other):
                    continue
                ev.succeed()

    def _wake_earlier(self, lane: str) -> bool:
        """Wake the idle lanes before `lane` in the policy's lane order (skipping no-op wakes);
        True when one was woken."""
        woken = False
        for other in self.policy.lanes:
            if other == lane:
                break
            ev = self._idle[other]
            if ev is not None and not ev.triggered and not self._wake_is_no_op(other):
                ev.succeed()
                woken = True
        return woken

    def _wake_is_no_op(self, lane: str) -> bool:
        """True when waking idle `lane` now would change nothing: the policy says its next_work
        returns None and leaves everything as it is, and the lane would wait again on the
        arrival timeout it holds. A prefill lane with nothing to admit would otherwise be
        woken at every decode step for nothing."""
        if self.state.all_done or not self.policy.stays_idle(lane):
            return False
        armed, nxt = self._armed[lane], self.state.next_arrival_s()
        if nxt is None:
            return armed is None
        now, newest = self.env.now, self._newest_timeout
        # the lane would re-arm through _wake_at_arrival: it must keep `armed` there
        return (
            newest is not None
            and newest[2] is armed
            and newest[:2] == (lane, now + (nxt - now))
            and not armed.processed
        )

    def _wake_at_arrival(self, lane: str, delay_s: float) -> None:
        """Wake idle `lane` after delay_s (the next arrival) unless another lane wakes it first.

        A callback on a timeout instead of `ev | timeout`: idle waits are frequent (a prefill
        lane that cannot admit is woken at every decode step) and a Condition per wait cost
        more than the rest of the wait. For the same reason a lane that is idle again before
        the arrival keeps the timeout it has when that fires at the same instant and no other
        arrival timeout was set since (so events at one instant keep their order).
        """
        at = self.env.now + delay_s
        newest = self._newest_timeout
        if newest is not None and newest[:2] == (lane, at) and not newest[2].processed:
            self._armed[lane] = newest[2]
            return
        timeout = self._armed[lane] = self.env.timeout(delay_s)
        timeout.callbacks.append(functools.partial(self._arrival, lane))
        self._newest_timeout = (lane, at, timeout)

    def _arrival(self, lane: str, timeout: simpy.Event) -> None:
        if self._armed[lane] is not timeout:  # the lane has waited on another one since
            return
        self._armed[lane] = None
        ev = self._idle[lane]
        if ev is not None and not ev.triggered:
            ev.succeed()

    def _lane(self, lane: str):
        env, st, policy, latency = self.env, self.state, self.policy, self.latency
        gap_fn, busy_fn = launch_gap_fn(latency), host_launch_fn(latency)
        multi = len(policy.lanes) > 1
        log = self.log
        iters = 0
        # Waking the other lanes after an iteration waits until this lane has its next work:
        # an idle lane's poll comes after that anyway, and only then is it known whether the
        # poll would do anything (no events are scheduled in between).
        wake = False
        while True:
            now = env.now
            st.admit_arrivals(now)
            work = policy.next_work(lane, now)
            if multi:
                self._sync_allocations(now)
            if work is None:
                if wake:
                    self._wake_others(lane)
                    wake = False
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
                if nxt is not None:
                    self._wake_at_arrival(lane, nxt - now)
                else:
                    self._armed[lane] = None
                yield ev
                self._idle[lane] = None
                continue

            if wake:
                self._wake_others(lane, skip_no_ops=True)
                wake = False
            self._busy[lane] = work
            sms = self.physical_sms(lane, work.num_sms)
            self._running_sms[lane] = sms
            co = self._co_runner(lane) if multi else None
            # the host prepares the launch first (0 without host terms); the iteration's
            # record starts when its kernels do, as a live engine's does
            gap = gap_fn(work.shape, work.layers[0] if work.layers else 0)
            if multi:
                # one host thread serves every lane: it may still be enqueueing the other
                # lane's eager launch (0 without host terms: the other lane started by now)
                gap += max(0.0, self._host_free_s - now)
                self._host_free_s = now + gap + busy_fn(work.shape)
            start = now + gap
            total = gap + latency.predict(work.shape, sms, co) + work.overhead_s
            if not 0.0 <= total < math.inf:
                raise ValueError(bad_duration(latency, work, sms, total))
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
                    sms = self._running_sms[lane] = self._alloc[lane]
                    num_rescales += 1
                    co = self._co_runner(lane)
                    total = gap + latency.predict(work.shape, sms, co) + work.overhead_s
                    if not 0.0 <= total < math.inf:
                        raise ValueError(bad_duration(latency, work, sms, total)) from None
            self._busy[lane] = None
            end = env.now
            policy.on_work_done(work, end)
            log.append(lane, start, end, work, sms, st, num_rescales)
            iters += 1
            if self._progress is not None and iters % self._progress_every == 0:
                self._progress(st.num_finished)
            if self._stop_when is not None and self._stop_when(end):
                raise _StopRun
            if multi:
                self._sync_allocations(end)
                wake = True
                if self.keeps_partition and self._wake_earlier(lane):
                    # the live loop asks idle lanes in the policy's lane order after a
                    # completion: an earlier lane launches (and is priced) first
                    yield env.timeout(0.0)

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
