"""One live run: config -> the same built run as a simulation -> live engine -> results.

`bulletsim.run.build_run` makes the workload, SLO, KV capacity, serving state, policy and
latency model exactly as a simulation of the same config would, and `bulletsim.run.collect`
turns the records into the same tables, metrics and invariant checks; only what runs the
work differs. The result is a `RunResult` (meta `engine` = "live:<executor>") plus `live`:
executor metadata, loop figures and what was done with Python's GC, written to `live.json`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bulletsim.config import RunConfig
from bulletsim.latency.base import LatencyModel
from bulletsim.live.engine import LiveEngine
from bulletsim.live.executor import Executor
from bulletsim.run import RunResult, build_run, collect
from bulletsim.workload import Workload


@dataclass(slots=True)
class LiveResult:
    result: RunResult
    live: dict


def live_run(
    cfg: RunConfig,
    executor: Executor,
    *,
    workload: Workload | None = None,
    latency: LatencyModel | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LiveResult:
    """Serve `cfg`'s workload with `cfg`'s policy on `executor`, on its clock."""
    run = build_run(cfg, workload=workload, latency=latency)
    total = len(run.workload.requests)
    engine = LiveEngine(
        run.policy,
        run.context,
        executor,
        progress=(lambda d: progress(d, total)) if progress else None,
    )
    engine.run()
    # Two lanes may briefly hold more than the GPU: a launch keeps its partition until it
    # ends while the policy has already shrunk that lane for the other one.
    overlap = run.gpu.num_sms if len(run.policy.lanes) > 1 else None
    res = collect(run, engine, max_overlap_sms=overlap)
    res.meta["engine"] = f"live:{executor.name}"
    live = loop_figures(res.iterations, engine) | {
        "gc": engine.gc_note,
        "executor": executor.describe(),
    }
    return LiveResult(res, live)


def loop_figures(it: pd.DataFrame, engine: LiveEngine) -> dict:
    """How the host loop kept up: CPU per iteration against device time per iteration."""
    if not len(it):
        return {"num_iterations": 0}
    host, dev = it["host_s"].to_numpy(), it["measured_s"].to_numpy()
    return {
        "num_iterations": len(it),
        "loop_host_s": engine.loop_host_s,
        "wall_s": engine.wall_s,
        "host_ms_per_iteration": {
            "mean": float(host.mean() * 1e3),
            "p50": float(np.percentile(host, 50) * 1e3),
            "p99": float(np.percentile(host, 99) * 1e3),
        },
        "device_ms_per_iteration": {
            "mean": float(dev.mean() * 1e3),
            "p50": float(np.percentile(dev, 50) * 1e3),
        },
        "sm_clock_mhz_p50": median_sm_clock_mhz(it),
        "host_over_device": float(host.sum() / dev.sum()) if dev.sum() > 0 else None,
        "notice_lag_ms_p50": float(np.percentile(it["notice_lag_s"], 50) * 1e3),
        "back_to_back_gap_ms": back_to_back_gaps(it),
    }


def median_sm_clock_mhz(it: pd.DataFrame) -> float | None:
    """Median over the run of the SM clock (MHz, NVML) read as each iteration was seen to
    finish; None without a reading (the fake executor, no NVML, a run before the column)."""
    if "sm_clock_mhz" not in it:
        return None
    mhz = it["sm_clock_mhz"].to_numpy(dtype=float)
    mhz = mhz[np.isfinite(mhz)]
    return float(np.median(mhz)) if len(mhz) else None


def back_to_back_gaps(it: pd.DataFrame) -> dict:
    """Device idle time between consecutive iterations of one lane that both carry decode
    (the lane had work waiting, so the gap is the host's: notice, commit, decide, launch)."""
    gaps = []
    for _, g in it.sort_values("start_s").groupby("lane", observed=True):
        dec = g["decode_tokens"].to_numpy() > 0
        both = dec[1:] & dec[:-1]
        gaps.append((g["start_s"].to_numpy()[1:] - g["end_s"].to_numpy()[:-1])[both])
    gap = np.concatenate(gaps) if gaps else np.zeros(0)
    if not len(gap):
        return {"n": 0}
    return {
        "n": len(gap),
        "mean": float(gap.mean() * 1e3),
        "p50": float(np.percentile(gap, 50) * 1e3),
        "p90": float(np.percentile(gap, 90) * 1e3),
    }
