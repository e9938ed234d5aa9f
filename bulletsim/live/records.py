"""Per-iteration records of a live run: the simulator's columns plus what was measured.

The first columns are exactly `bulletsim.records.ITERATION_COLUMNS` (so every analysis of a
simulated run reads a live one); `num_sms` is the SM count the work physically ran on. The
live columns:

    policy_sms     SMs the policy asked for (a green-context partition may be coarser)
    measured_s     device time of the work (CUDA events around it; the fake: the prediction)
    predicted_s    the latency model's time for the same work on `num_sms` SMs beside the
                   co-runner in flight at launch, plus the work's overheads
    co_phase       phase of the other lane's work in flight at launch ("" if none)
    co_sms         SMs of that co-runner (0 if none)
    host_s         host CPU seconds this iteration cost the loop (policy decision, launch
                   preparation, commit)
    notice_lag_s   from the device end to the moment the loop saw it
    prefill_attn_pairs, prefill_kv_tokens, logits_tokens
                   the rest of the work's `WorkShape`, so a latency model can price the
                   iteration again (`bulletsim calibrate --from-live`, `bulletsim fidelity`)
    sm_clock_mhz   the GPU's SM clock (NVML, MHz) when the loop saw the iteration finish; NaN
                   on the fake executor or where NVML cannot be read. Optional for readers:
                   runs written before it lack the column
"""

from __future__ import annotations

from bulletsim.live.executor import Launch
from bulletsim.records import ITERATION_COLUMNS, IterationLog, iteration_row
from bulletsim.state import ServingState

LIVE_COLUMNS = (
    "policy_sms",
    "measured_s",
    "predicted_s",
    "co_phase",
    "co_sms",
    "host_s",
    "notice_lag_s",
    "prefill_attn_pairs",
    "prefill_kv_tokens",
    "logits_tokens",
    "sm_clock_mhz",
)


class LiveIterationLog(IterationLog):
    """The simulator's iteration rows plus `LIVE_COLUMNS` (what was measured and predicted)."""

    __slots__ = ()
    columns = (*ITERATION_COLUMNS, *LIVE_COLUMNS)
    categories = ("lane", "phase", "co_phase")

    def append(
        self, x: Launch, st: ServingState, host_s: float, seen_s: float, sm_clock_mhz: float
    ) -> None:
        # num_rescales 0: a launch keeps its partition until it ends
        row = iteration_row(x.lane, x.start_s, x.end_s, x.work, x.num_sms, st, 0)
        co = x.co_runner
        shape = x.work.shape
        self.rows.append(
            (
                *row,
                x.work.num_sms,
                x.measured_s,
                x.predicted_s,
                co.phase if co else "",
                co.num_sms if co else 0,
                host_s,
                max(0.0, seen_s - x.end_s),
                shape.prefill_attn_pairs,
                shape.prefill_kv_tokens,
                shape.logits_tokens,
                sm_clock_mhz,
            )
        )
