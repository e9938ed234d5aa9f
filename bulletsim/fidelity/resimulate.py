"""Re-simulate the requests of a measured benchmark run and compare.

The simulated requests are the measured run's completed requests, in send order, with the
same prompt and output lengths. When they were sent is taken, in order of preference, from:
1. a concurrency limit (`max_concurrency` N): re-simulated as the same client (N in flight,
   open-loop times as below), because the send times the file holds depend on the server's
   latencies, which the simulation is meant to predict;
2. the file's own send times (vLLM `start_times`), replayed as arrivals;
3. the client's arrival process: all at t = 0 for `request_rate` inf, else gamma with the
   client's `burstiness` as shape (vLLM; 1 = Poisson) at `request_rate`, drawn from the
   seed: the same process, not the same draws (said in a note).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from bulletsim.config import RunConfig
from bulletsim.fidelity.compare import Comparison, compare
from bulletsim.fidelity.measured import MeasuredRun
from bulletsim.fidelity.observed import observed_from_request_frame
from bulletsim.simulate import SimResult, simulate
from bulletsim.workload.arrivals import gamma_arrivals, poisson_arrivals
from bulletsim.workload.workload import Workload, make_requests


def measured_workload(run: MeasuredRun, seed: int) -> tuple[Workload, list[str]]:
    """The measured requests as a Workload (see the module docstring), and how it was made."""
    r = run.requests
    n = len(r)
    notes = list(run.notes)
    if run.has_send_times and run.max_concurrency is None:
        times = r["arrival_s"].to_numpy(dtype=np.float64)
        notes.append("arrivals: the file's send times, replayed")
    elif math.isinf(run.request_rate):
        times = np.zeros(n)
        notes.append("arrivals: all at t = 0 (request_rate inf)")
    else:
        rng = np.random.default_rng(seed)
        if run.burstiness == 1.0:
            times = poisson_arrivals(rng, run.request_rate, n)
        else:
            times = gamma_arrivals(rng, run.request_rate, 1.0 / math.sqrt(run.burstiness), n)
        notes.append(
            f"arrivals: drawn from the client's process (gamma shape {run.burstiness:g} at "
            f"{run.request_rate:g} req/s, seed {seed}): the same process, not the same draws"
        )
    if run.max_concurrency is not None:
        notes.append(f"client: at most {run.max_concurrency} requests in flight, re-simulated")
    requests = make_requests(
        times, r["prompt_tokens"].to_numpy(np.int64), r["output_tokens"].to_numpy(np.int64)
    )
    wl = Workload(f"measured-{run.tool}", run.source, False, requests, run.num_failed, 0,
                  tuple(notes))  # fmt: skip
    return wl, notes


def resimulate(run: MeasuredRun, cfg: RunConfig) -> tuple[SimResult, Comparison]:
    """Simulate `run`'s requests under `cfg` (GPU, model, policy, latency model, SLO) and
    compare with what was measured. `cfg.workload` only contributes nothing but the SLO name;
    the client's concurrency limit comes from the file."""
    wl, _ = measured_workload(run, cfg.seed)
    cfg = dataclasses.replace(
        cfg, workload=dataclasses.replace(cfg.workload, max_concurrency=run.max_concurrency)
    )
    res = simulate(cfg, workload=wl)
    label = f"simulated ({res.summary['policy']}, {res.latency.name})"
    sim = observed_from_request_frame(label, res.requests, res.summary["itl_ms"])
    return res, compare(sim, run.observed(), res.slo)
