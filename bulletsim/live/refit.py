"""Refit a latency profile on live iterations (`bulletsim calibrate --from-live`).

Every live iteration is priced again under the base profile as the parts the refit may change
(`price_run`): its kernels' memory- and compute-bound seconds on the SMs it ran on
(`ProfileLatency.time_split_s`, without the profile's own kernel scale), the co-runner's share
of the GPU, its layers, whether it was eager or a graph, and (for a layer-windowed policy's
last window) the lm_head tail the policy adds. The modelled time of an iteration is then
exactly what the simulator computes with the refitted profile:

    core  = ks_mem * f_mem * mem + ks_cmp * f_cmp * cmp + layers * (layer_overhead_s, or
            graph_layer_overhead_s for a graph) + step_overhead_s (full steps)
    f_mem = 1 + floor + mem_per_share * share,  f_cmp = 1 + floor + compute_per_share * share
            (1 without a co-runner)
    t     = overlap(core, eager_fixed_s + launch_s * kernels_per_layer * layers) (eager) or
            core + tail + work overheads; overlap = the k-norm (core ** k + launch ** k) **
            (1 / k) with k = eager_overlap_exp (`host.overlap`; max(core, launch) as k -> inf)
    tail  = max(0, P(full step) - P(the step's layers alone)) on the whole GPU, alone, with
            P = overlap(core, host launch): the lm_head tail a windowed policy adds to its last
            window (`TwoLanePolicy.start_batch`)

`fit_terms` finds ks_mem, ks_cmp (`exec.kernel_scale`), the contention terms (only when the
runs have co-run iterations), layer/step overheads and the host launch terms (with the
overlap exponent k) by robust least squares of t / measured - 1 (scipy `least_squares`,
soft-L1 loss with a 5% scale, bounded; the host launch terms bounded above by the CPU time
the GPU engine's loop measured for eager iterations, `host_launch_bounds`, so they stay
physical).
The graph decode step's per-layer overhead is its own term (it was the eager one less the
profile's measured `exec.decode_graph_saving_per_layer_s`); the refitted profile keeps it as
that saving, layer_overhead_s - graph_layer_overhead_s, which the simulator subtracts.
`fit_gaps` fits the host gap before each launch kind as fixed + per-sequence seconds on the
gaps between a lane's back-to-back launches (robust as well). `refit_profile` writes both into
a copy of the base profile whose `meta.live_refit` names the runs, the method and the
residuals before and after.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bulletsim.fidelity.live_shapes import IterationWork, iteration_work
from bulletsim.latency.graph_scale import EXEC_KEY as GRAPH_SCALE_KEY
from bulletsim.latency.graph_scale import MIN_ITERATIONS as MIN_GRAPH_ITERATIONS
from bulletsim.latency.graph_scale import Table, factors, fit_factors, table_of, to_doc
from bulletsim.latency.host import GAP_KINDS, KERNELS_PER_LAYER, MAX_OVERLAP_EXP, overlap
from bulletsim.latency.profile import ProfileLatency
from bulletsim.latency.profile_format import validate
from bulletsim.live.engine_exec import common_engine_exec, run_engine_exec
from bulletsim.live.rundir import SM_BINS, check_refit_runs, host_times_measured, read_live_run
from bulletsim.policies.batching import with_layers

# A gap longer than this between a lane's launches had the lane waiting for work, not the host
# (the live H200 runs: 95-100% of chunked prefill's gaps under load were below 3 ms).
BACK_TO_BACK_S = 5e-3
# How long another lane's eager launch may keep the host busy after it started (the H200 runs:
# eager launches took ~8-12 ms of CPU); gaps it may have covered are not fitted on.
OTHER_LAUNCH_S = 15e-3
TERMS = (
    "kernel_scale_memory",
    "kernel_scale_compute",
    "floor",
    "mem_per_share",
    "compute_per_share",
    "layer_overhead_s",
    "graph_layer_overhead_s",
    "step_overhead_s",
    "launch_s",
    "eager_fixed_s",
    "eager_overlap_exp",
)
CONTENTION = ("floor", "mem_per_share", "compute_per_share")
BOUNDS = {
    "kernel_scale_memory": (0.2, 5.0),
    "kernel_scale_compute": (0.2, 5.0),
    "floor": (0.0, 1.0),
    "mem_per_share": (0.0, 2.0),
    "compute_per_share": (0.0, 2.0),
    "layer_overhead_s": (0.0, 1e-3),
    "graph_layer_overhead_s": (0.0, 1e-3),
    "step_overhead_s": (0.0, 2e-2),
    "launch_s": (0.0, 1e-3),
    "eager_fixed_s": (0.0, 5e-2),
    "eager_overlap_exp": (1.0, MAX_OVERLAP_EXP),
}
# the overlap exponent's fit starts here (and at MAX_OVERLAP_EXP, ~max) when the base profile
# has none: between the two, the H200 runs' short eager steps (host.py docstring)
OVERLAP_START = 4.0
# A run whose median back-to-back gap is below this measured no host gaps (a percentage error
# on them would be a ratio of noise; the H200 runs' medians were 0.1-2 ms)
MIN_GAP_S = 1e-6
MIN_CO_RUN = 50  # co-run iterations needed to fit the contention terms
LOSS = ("soft_l1", 0.05)  # scipy least_squares loss and f_scale of the terms' fit


@dataclass(slots=True)
class Priced:
    """Per-iteration parts of live runs under a base profile (arrays of one length)."""

    run: np.ndarray  # run directory name
    lane: np.ndarray
    phase: np.ndarray
    num_sms: np.ndarray
    measured_s: np.ndarray
    mem_s: np.ndarray  # memory-bound kernel seconds alone on the SMs it ran on
    cmp_s: np.ndarray
    share: np.ndarray  # co-runner's share of the GPU (0 alone)
    co: np.ndarray  # bool: a co-runner was in flight
    layers: np.ndarray  # layers the launch ran
    graph: np.ndarray  # bool: decode-only (a CUDA graph)
    full: np.ndarray  # bool: a full step (pays step_overhead_s in its core)
    tail: np.ndarray  # bool: a windowed last window (pays the lm_head tail)
    full_mem_s: np.ndarray  # a tail's full step and layers-only kernel seconds (whole GPU)
    full_cmp_s: np.ndarray
    body_mem_s: np.ndarray
    body_cmp_s: np.ndarray
    other_s: np.ndarray  # the work's fixed modelled overheads (prediction, handoff)
    starts: np.ndarray  # device start times (s) of the launches
    ends: np.ndarray
    seqs: np.ndarray  # sequences in the launch (decode tokens + prefill chunks)
    tokens: np.ndarray  # new prompt tokens in the launch
    first_layer: np.ndarray
    exact: np.ndarray  # bool: the shape was recorded or replayed exactly
    host_s: np.ndarray  # CPU seconds the loop spent on the iteration (measured; NaN if absent)
    gscale: np.ndarray  # factor of the kernel seconds (graph_scale: graph decode steps; else 1)

    def __len__(self) -> int:
        return len(self.measured_s)

    def take(self, mask: np.ndarray) -> Priced:
        return Priced(**{k: getattr(self, k)[mask] for k in self.__slots__})

    @staticmethod
    def concat(parts: list[Priced]) -> Priced:
        return Priced(
            **{k: np.concatenate([getattr(p, k) for p in parts]) for k in Priced.__slots__}
        )


def neutral(doc: dict) -> ProfileLatency:
    """The base profile without fitted live terms (no kernel scale, no host section)."""
    d = copy.deepcopy(doc)
    d.pop("host", None)
    d.get("exec", {}).pop("kernel_scale", None)
    d.get("exec", {}).pop(GRAPH_SCALE_KEY, None)
    return ProfileLatency(d)


def work_overheads(meta: dict) -> tuple[float, float, int]:
    """(seconds every decision pays, seconds a batch's last window pays, layers per window) of
    the run's policy as the simulator models them: Bullet's prediction cost (a merged unit of
    windows pays one per window), its prefill-to-decode handoff, and the re-masking a launch
    pays when its lane's SMs changed (taken here as a change from the lane's previous launch)."""
    from bulletsim.hardware import get_gpu
    from bulletsim.partitioning import resolve_partitioning

    params = (meta["config"].get("policy_params") or {}).get("bullet")
    if meta["config"].get("policy") != "bullet" or not params:
        return 0.0, 0.0, 0, 0.0
    gpu = get_gpu(meta["config"]["gpu"])  # remask_us None: the mechanism's cost, as simulated
    remask = resolve_partitioning(
        params.get("mechanism", "libsmctrl"), gpu, gpu.num_sms, params.get("remask_us")
    ).remask_us
    return (params.get("predict_us", 0.0) * 1e-6, params.get("handoff_ms", 0.0) * 1e-3,
            params.get("window_layers") or 0, remask * 1e-6)  # fmt: skip


def check_run_matches(pl: ProfileLatency, meta: dict, run_dir: str | Path) -> None:
    """ValueError unless the live run was made on the profile's GPU and model."""
    cfg = meta["config"]
    from bulletsim.hardware import get_gpu

    gpu = get_gpu(cfg["gpu"]).name
    if gpu != pl.gpu.name or cfg["model"] != pl.model.name:
        raise ValueError(
            f"live run {run_dir} ran {cfg['model']} on {gpu}; the profile is for "
            f"{pl.model.name} on {pl.gpu.name}"
        )


def price_run(pl: ProfileLatency, run_dir: str | Path) -> Priced:
    """The parts of every measured iteration of `run_dir` under `pl` (see the module doc);
    ValueError when the run has no measured iterations or is for another GPU/model."""
    meta, _, req, it = read_live_run(run_dir)
    check_run_matches(pl, meta, run_dir)
    if not len(it) or not (it["measured_s"] > 0).any():
        raise ValueError(f"live run {run_dir} has no measured iterations")
    work = iteration_work(req, it, pl.num_layers)
    each_s, last_s, window, remask_s = work_overheads(meta)
    prev: dict[str, int] = {}
    total, overlap_share = pl.total_sms, pl.params.contention.overlap_share
    rows = []
    # a windowed policy prices a batch's tail once per (256-token bucket, lm_head rows) and
    # reuses it (`TwoLanePolicy.start_batch`): replay that memo
    tails: dict[tuple[int, int], tuple[float, float, float, float]] = {}
    for w, n, co_sms, lane, asked in zip(work, it["num_sms"], it["co_sms"], it["lane"],
                                          it["policy_sms"], strict=True):  # fmt: skip
        s = w.shape
        remask = remask_s if prev.get(lane, asked) != asked else 0.0
        prev[lane] = asked
        if s.num_layers is not None and w.has_head:
            key = (s.prefill_tokens // 256, s.logits_tokens)
            if key not in tails:
                tails[key] = (*pl.time_split_s(with_layers(s, None), total),
                              *pl.time_split_s(with_layers(s, pl.num_layers), total))  # fmt: skip
        tail = tails.get((s.prefill_tokens // 256, s.logits_tokens), (0.0,) * 4)
        k = 1
        if window and s.num_layers and s.prefill_tokens:
            k = max(1, -(-s.num_layers // window))
        rows.append(_parts(pl, w, int(n), int(co_sms), total, overlap_share,
                           k * each_s + remask, last_s, tail))  # fmt: skip
    a = np.array(rows, dtype=np.float64).reshape(-1, 14)
    ok = it["measured_s"].to_numpy() > 0
    name = np.full(len(it), Path(run_dir).name, dtype=object)
    p = Priced(
        run=name,
        lane=it["lane"].astype(str).to_numpy(),
        phase=it["phase"].astype(str).to_numpy(),
        num_sms=it["num_sms"].to_numpy(np.int64),
        measured_s=it["measured_s"].to_numpy(np.float64),
        mem_s=a[:, 0],
        cmp_s=a[:, 1],
        share=a[:, 2],
        co=a[:, 3] > 0,
        layers=a[:, 4],
        graph=a[:, 5] > 0,
        full=a[:, 6] > 0,
        tail=a[:, 7] > 0,
        full_mem_s=a[:, 8],
        full_cmp_s=a[:, 9],
        body_mem_s=a[:, 10],
        body_cmp_s=a[:, 11],
        other_s=a[:, 12],
        starts=it["start_s"].to_numpy(np.float64),
        ends=it["end_s"].to_numpy(np.float64),
        seqs=a[:, 13],
        tokens=it["prefill_tokens"].to_numpy(np.float64),
        first_layer=np.array([w.first_layer for w in work], dtype=np.int64),
        exact=np.array([w.exact for w in work], dtype=bool),
        host_s=_host_s(run_dir, it),
        gscale=np.ones(len(it)),
    )
    return p.take(ok)


def _host_s(run_dir: str | Path, it: pd.DataFrame) -> np.ndarray:
    """The loop's CPU seconds per iteration when a GPU engine measured them (live.json says
    `measured`); NaN otherwise (the fake executor's host times are its own, not a GPU host's)."""
    if "host_s" in it and host_times_measured(run_dir):
        return it["host_s"].to_numpy(np.float64)
    return np.full(len(it), np.nan)


def _parts(pl, w: IterationWork, n, co_sms, total, overlap_share, each_s, last_s, tail_parts):
    s = w.shape
    eff = n
    share = 0.0
    if co_sms > 0:
        share = min(co_sms, total) / total
        overlap = max(0, n + co_sms - total)
        eff = max(1, round(n - overlap * (1.0 - overlap_share)))
    mem, cmp = pl.time_split_s(s, eff)
    layers = pl.num_layers if s.num_layers is None else s.num_layers
    tail = s.num_layers is not None and w.has_head
    fm = fc = lm = lc = 0.0
    other = each_s
    if tail:
        fm, fc, lm, lc = tail_parts
        other += last_s
    seqs = s.decode_tokens + s.num_prefill_seqs
    return (mem, cmp, share, float(co_sms > 0), layers, float(not s.prefill_tokens),
            float(s.num_layers is None), float(tail), fm, fc, lm, lc, other, seqs)  # fmt: skip


def _max(a, b, smooth_s: float, k: float | None = None):
    """The eager step from GPU time `a` and host launch time `b`: their k-norm
    (`host.overlap`) when `k` is set, else max(a, b) or a smooth upper approximation within
    `smooth_s` of it (for the solver)."""
    if k is not None:
        return overlap(a, b, k)
    if not smooth_s:
        return np.maximum(a, b)
    return 0.5 * (a + b) + np.sqrt(0.25 * (a - b) ** 2 + smooth_s**2)


def model_time(theta: dict, p: Priced, graph_saving_s: float, kernels_per_layer: int,
               num_layers: int, smooth_s: float = 0.0) -> np.ndarray:  # fmt: skip
    """Modelled seconds of every iteration of `p` under the terms `theta` (module doc) for a
    model of `num_layers` layers (`smooth_s`: smooth the host bound's max, for fitting)."""
    ks_m, ks_c = theta["kernel_scale_memory"], theta["kernel_scale_compute"]
    graph_layer = theta.get("graph_layer_overhead_s")
    if graph_layer is None:
        graph_layer = theta["layer_overhead_s"] - graph_saving_s
    per_layer = np.where(p.graph, graph_layer, theta["layer_overhead_s"])
    core = p.gscale * kernel_s(theta, p) + p.layers * per_layer
    core = core + theta["step_overhead_s"] * p.full
    launch = theta["eager_fixed_s"] + theta["launch_s"] * kernels_per_layer * p.layers
    k = theta.get("eager_overlap_exp")
    t = np.where(p.graph, core, _max(core, launch, smooth_s, k))
    # the tail: a full step less its layers, both on the whole GPU alone (eager)
    body = ks_m * p.body_mem_s + ks_c * p.body_cmp_s + num_layers * theta["layer_overhead_s"]
    full = body + ks_m * (p.full_mem_s - p.body_mem_s) + ks_c * (p.full_cmp_s - p.body_cmp_s)
    full = full + theta["step_overhead_s"]
    launch_all = theta["eager_fixed_s"] + theta["launch_s"] * kernels_per_layer * num_layers
    tail = _max(full, launch_all, smooth_s, k) - _max(body, launch_all, smooth_s, k)
    tail = np.maximum(0.0, tail)
    return t + np.where(p.tail, tail, 0.0) + p.other_s


def kernel_s(theta: dict, p: Priced) -> np.ndarray:
    """The kernel seconds of every iteration of `p` under `theta` (scaled, contended; without
    `p.gscale`, overheads or the host)."""
    f_mem = np.where(p.co, 1.0 + theta["floor"] + theta["mem_per_share"] * p.share, 1.0)
    f_cmp = np.where(p.co, 1.0 + theta["floor"] + theta["compute_per_share"] * p.share, 1.0)
    ks_m, ks_c = theta["kernel_scale_memory"], theta["kernel_scale_compute"]
    return ks_m * f_mem * p.mem_s + ks_c * f_cmp * p.cmp_s


def graph_factors(doc: dict, p: Priced, buckets: Sequence[int]) -> np.ndarray:
    """Per iteration of `p`: the factor `doc`'s exec.decode_graph_bucket_scale gives its graph
    decode step padded to `buckets` (`graph_scale`), 1 for any other iteration or without a
    table. ValueError (one line) for a malformed table."""
    return factors(table_of(doc.get("exec")), p.graph, p.num_sms, p.seqs, buckets)


def fit_graph_factors(
    theta: dict, p: Priced, buckets: Sequence[int], gs: float, kpl: int, L: int
) -> tuple[Table, dict[str, dict[str, int]]]:
    """(table, iterations per key): `graph_scale.fit_factors` on `p`'s graph decode steps
    against their modelled kernel seconds under `theta` (with `p.gscale` at 1; `gs`, `kpl`,
    `L`: `model_time`'s graph saving, kernels per layer and layers)."""
    ones = dataclasses.replace(p, gscale=np.ones(len(p)))
    kern = kernel_s(theta, ones)
    rest = model_time(theta, ones, gs, kpl, L) - kern
    return fit_factors(p.graph, p.num_sms, p.seqs, buckets, kern, rest, p.measured_s)


def base_terms(pl_doc: dict) -> dict:
    """The terms as the base profile has them (host launch terms 0 without a host section)."""
    srm, exec_ = pl_doc["srm"], pl_doc.get("exec", {})
    scale = exec_.get("kernel_scale", {})
    host = pl_doc.get("host") or {}
    c = srm.get("contention", {})
    from bulletsim.latency.contention import ContentionParams
    from bulletsim.latency.roofline import SRMParams

    dc, ds = ContentionParams(), SRMParams()
    return {
        "kernel_scale_memory": scale.get("memory", 1.0),
        "kernel_scale_compute": scale.get("compute", 1.0),
        "floor": c.get("floor", dc.floor),
        "mem_per_share": c.get("mem_per_share", dc.mem_per_share),
        "compute_per_share": c.get("compute_per_share", dc.compute_per_share),
        "layer_overhead_s": srm.get("layer_overhead_s", ds.layer_overhead_s),
        # a graph decode step's per-layer overhead: the eager one less the graph saving
        "graph_layer_overhead_s": srm.get("layer_overhead_s", ds.layer_overhead_s)
        - float(exec_.get("decode_graph_saving_per_layer_s", 0.0)),
        "step_overhead_s": srm.get("step_overhead_s", ds.step_overhead_s),
        "launch_s": host.get("launch_s", 0.0),
        "eager_fixed_s": host.get("eager_fixed_s", 0.0),
        "eager_overlap_exp": host.get("eager_overlap_exp"),  # None: max
    }


def fit_terms(p: Priced, start: dict, graph_saving_s: float, kernels_per_layer: int,
              num_layers: int, bounds: dict | None = None):  # fmt: skip
    """(fitted terms, names actually fitted): robust least squares of model / measured - 1.
    The contention terms stay at `start` when `p` has fewer than MIN_CO_RUN co-run rows."""
    from scipy.optimize import least_squares

    names = [k for k in TERMS if not (k in CONTENTION and int(p.co.sum()) < MIN_CO_RUN)]
    bounds = BOUNDS | (bounds or {})
    for k in names:
        assert bounds[k][0] <= bounds[k][1], f"{k}: lower bound {bounds[k]} above upper"
    # a term whose bounds meet is not free: it is held there (scipy wants lower < upper)
    held = {k: float(bounds[k][0]) for k in names if bounds[k][0] == bounds[k][1]}
    start = dict(start) | held
    if start.get("eager_overlap_exp") is None:  # the base profile's max: start the fit inside
        start["eager_overlap_exp"] = OVERLAP_START
    names = [k for k in names if k not in held]
    lo = np.array([bounds[k][0] for k in names])
    hi = np.array([bounds[k][1] for k in names])
    # scaled so every unknown is O(1) for the solver
    unit = np.array([1e-3 if k.endswith("_s") else 1.0 for k in names])
    x0 = np.clip(np.array([start[k] for k in names], dtype=float), lo, hi) / unit

    def resid(x, smooth_s=0.0):
        theta = dict(start) | dict(zip(names, x * unit, strict=True))
        t = model_time(theta, p, graph_saving_s, kernels_per_layer, num_layers, smooth_s)
        return t / p.measured_s - 1.0

    def solve(x, smooth_s):
        # lsmr: the dense SVD of the default solver cost ~0.1 s per step on 2 busy cores
        return least_squares(
            resid,
            x,
            bounds=(lo / unit, hi / unit),
            loss=LOSS[0],
            f_scale=LOSS[1],
            tr_solver="lsmr",
            kwargs={"smooth_s": smooth_s},
        )

    # max(core, host) has no gradient in the host terms while the host bound is below every
    # step and kinks where it meets it: the solver starts from host bounds that bind or not
    # (per launch 0 / 5 / 20 us, each kept inside the term's bounds: a run's measured host
    # time may bound it lower), on a smoothed max (0.5 ms) first, then on the exact one
    starts = [x0]
    if "launch_s" in names:
        i = names.index("launch_s")
        for launch_s in (5e-6, 20e-6):
            x = x0.copy()
            x[i] = np.clip(launch_s / 1e-3, lo[i] / unit[i], hi[i] / unit[i])
            if not any(np.array_equal(x, y) for y in starts):
                starts.append(x)
    if "eager_overlap_exp" in names:  # and each of them near the max (perfect overlap)
        i = names.index("eager_overlap_exp")
        for x in list(starts):
            y = x.copy()
            y[i] = hi[i] / unit[i]
            if not any(np.array_equal(y, z) for z in starts):
                starts.append(y)
    best = None
    for x in starts:
        sol = solve(solve(x, 0.5e-3).x, 0.0)
        if best is None or sol.cost < best.cost:
            best = sol
    fitted = dict(start) | {k: float(v) for k, v in zip(names, best.x * unit, strict=True)}
    return fitted, names


def host_launch_bounds(p: Priced, kernels_per_layer: int) -> tuple[dict, dict]:
    """Upper bounds of the host launch terms from what the loop measured: the CPU an eager
    iteration cost it (`host_s`: deciding, preparing, enqueueing and committing) bounds what
    enqueueing alone can take. A robust line host_s = a + b * layers over eager iterations
    gives eager_fixed_s <= a and launch_s <= b / kernels_per_layer. ({}, {}) without
    host_s or with fewer than 20 eager iterations; else (bounds, the line in ms). When every
    eager iteration ran the same number of layers L (chunked prefill: full steps only) the
    line's two parts cannot be told apart: the robust level c bounds each alone
    (eager_fixed_s <= c, launch_s <= c / (kernels_per_layer * L))."""
    from scipy.optimize import least_squares

    m = ~p.graph & np.isfinite(p.host_s)
    if m.sum() < 20:
        return {}, {}
    x, y = p.layers[m], p.host_s[m] * 1e3
    if np.unique(x).size < 2:
        sol = least_squares(lambda c: c[0] - y, [float(np.median(y))], bounds=([0.0], [np.inf]),
                            loss="soft_l1", f_scale=0.5)  # fmt: skip
        c_ms, layers = float(sol.x[0]), float(x[0])
        bounds = {
            "eager_fixed_s": (0.0, max(c_ms * 1e-3, 1e-7)),
            "launch_s": (0.0, max(c_ms * 1e-3 / (kernels_per_layer * layers), 1e-9)),
        }
        return bounds, {"level_ms": round(c_ms, 4), "layers": int(layers),
                        "note": "one layer count: fixed and per-layer parts each bounded by "
                        "the whole"}  # fmt: skip
    sol = least_squares(
        lambda c: c[0] + c[1] * x - y,
        [float(np.median(y)), 0.0],
        bounds=([0.0, 0.0], [np.inf, np.inf]),
        loss="soft_l1",
        f_scale=0.5,
    )
    a_ms, b_ms = (float(v) for v in sol.x)
    bounds = {
        "eager_fixed_s": (0.0, max(a_ms * 1e-3, 1e-7)),
        "launch_s": (0.0, max(b_ms * 1e-3 / kernels_per_layer, 1e-9)),
    }
    return bounds, {"fixed_ms": round(a_ms, 4), "per_layer_ms": round(b_ms, 4)}


def back_to_back_gaps(p: Priced, busy_s: float = OTHER_LAUNCH_S) -> pd.DataFrame:
    """Gaps between consecutive launches of each lane of each run below BACK_TO_BACK_S, with
    the later launch's kind and sequence count. A gap in which the host also served another
    lane (one of its launches started inside the gap, or an eager one up to `busy_s` before
    it, still being enqueued) is left out: the simulator adds that wait itself."""
    df = pd.DataFrame(
        {
            "run": p.run,
            "lane": p.lane,
            "start": p.starts,
            "end": p.ends,
            "seqs": p.seqs,
            "tokens": p.tokens,
            "graph": p.graph,
            "first": p.first_layer,
        }  # fmt: skip
    ).sort_values(["run", "lane", "start"], kind="stable")
    run, lane = df["run"].to_numpy(), df["lane"].to_numpy()
    same = (run[1:] == run[:-1]) & (lane[1:] == lane[:-1])
    gap = df["start"].to_numpy()[1:] - df["end"].to_numpy()[:-1]
    nxt = df.iloc[1:]
    kind = np.where(nxt["graph"], "graph", np.where(nxt["first"] > 0, "window", "batch"))
    out = pd.DataFrame(
        {
            "kind": kind,
            "gap_s": gap,
            "seqs": nxt["seqs"].to_numpy(),
            "tokens": nxt["tokens"].to_numpy(),
        }  # fmt: skip
    )
    keep = same & (gap >= 0) & (gap < BACK_TO_BACK_S)
    lo, hi = df["end"].to_numpy()[:-1], df["start"].to_numpy()[1:]
    for r in np.unique(run):
        for ln in np.unique(lane[run == r]):
            other = df[(df["run"] == r) & (df["lane"] != ln)]
            if not len(other):
                continue
            starts = np.sort(other["start"].to_numpy())
            eager = np.sort(other.loc[~other["graph"], "start"].to_numpy())
            mine = np.flatnonzero(same & (run[:-1] == r) & (lane[:-1] == ln))
            hit = np.searchsorted(starts, hi[mine]) > np.searchsorted(starts, lo[mine])
            hit |= np.searchsorted(eager, lo[mine]) > np.searchsorted(eager, lo[mine] - busy_s)
            keep[mine[hit]] = False
    return out[keep].reset_index(drop=True)


def fit_gaps(p: Priced, min_samples: int = 20) -> tuple[dict, dict, dict, dict]:
    """(fixed s, per-sequence s, per-prefill-token s, samples) of the host gap per launch
    kind: robust linear fit (soft-L1, 0.2 ms scale) of back-to-back gaps on the launch's
    sequence and prompt-token counts (the token term only for batch starts, the launches
    that stage prompts); kinds with fewer than `min_samples` gaps get 0 (not seen)."""
    from scipy.optimize import least_squares

    gaps = back_to_back_gaps(p)
    fixed, per_seq, per_token, counts = {}, {}, {}, {}
    for kind in GAP_KINDS:
        g = gaps[gaps["kind"] == kind]
        counts[kind] = len(g)
        fixed[kind] = per_seq[kind] = per_token[kind] = 0.0
        if len(g) < min_samples:
            continue
        y = g["gap_s"].to_numpy() * 1e3
        x, t = g["seqs"].to_numpy(np.float64), g["tokens"].to_numpy(np.float64)
        if kind != "batch" or not t.any():
            t = np.zeros_like(t)
        sol = least_squares(
            lambda c, x=x, t=t, y=y: c[0] + c[1] * x + c[2] * t - y,
            [float(np.median(y)), 0.0, 0.0],
            bounds=([0.0, 0.0, 0.0], [BACK_TO_BACK_S * 1e3, 1.0, 0.1]),
            loss="soft_l1",
            f_scale=0.2,
        )
        fixed[kind], per_seq[kind] = float(sol.x[0] * 1e-3), float(sol.x[1] * 1e-3)
        per_token[kind] = float(sol.x[2] * 1e-3)
    return fixed, per_seq, per_token, counts


def error_table(p: Priced, model_s: np.ndarray) -> list[dict]:
    """Median and p90 |model / measured - 1| (%) and median signed error per phase and SM
    group (the groups of `bulletsim fidelity`), plus one row per phase over all SMs."""
    err = (model_s / p.measured_s - 1.0) * 100.0
    groups = pd.cut(p.num_sms, SM_BINS).astype(str)
    df = pd.DataFrame({"phase": p.phase, "sms": groups, "err": err})
    rows = []
    parts = list(df.groupby(["phase", "sms"])) + [((ph, "all"), g) for ph, g in df.groupby("phase")]
    for (phase, sms), g in parts:
        e = g["err"].to_numpy()
        rows.append({"phase": phase, "sms": sms, "n": len(e),
                     "median_abs_pct": round(float(np.median(np.abs(e))), 2),
                     "p90_abs_pct": round(float(np.percentile(np.abs(e), 90)), 2),
                     "median_pct": round(float(np.median(e)), 2)})  # fmt: skip
    return rows


def refit_profile(doc: dict, run_dirs: list[str | Path]) -> tuple[dict, dict]:
    """(new profile document, report) refitted on the live runs `run_dirs` (see module doc).
    ValueError (one line) for no runs, a run without measured iterations, runs of another
    GPU/model, or fake-executor runs mixed with GPU runs (`rundir.check_refit_runs`; all
    fake: the report's "note" says the fit is of predicted times); FileNotFoundError for a
    folder that is not a results directory."""
    if not run_dirs:
        raise ValueError("no live run directories given to fit on")
    fake_note = check_refit_runs([Path(d) for d in run_dirs])
    # the engine that ran (padded decode graphs, its eager prefill kernel): price and keep it
    doc = engine_doc(doc, common_engine_exec([Path(d) for d in run_dirs]))
    pl = neutral(doc)
    p = Priced.concat([price_run(pl, d) for d in run_dirs])
    gs, kpl = pl.graph_saving_s, (doc.get("host") or {}).get("kernels_per_layer")
    kpl = kpl or KERNELS_PER_LAYER
    start = base_terms(doc)
    L = pl.num_layers
    # before: with the base profile's own graph-step factors, if any; the fit: without any
    base = dataclasses.replace(p, gscale=graph_factors(doc, p, pl.graph_buckets))
    before_s = model_time(start, base, gs, kpl, L)
    bounds, host_line = host_launch_bounds(p, kpl)
    fitted, names = fit_terms(p, start, gs, kpl, L, bounds)
    # graph decode steps per (SMs, bucket) against that fit: a correction of its residuals
    # (the terms stay as fitted; a global scale and per-bucket factors are not separable)
    table, graph_counts = fit_graph_factors(fitted, p, pl.graph_buckets, gs, kpl, L)
    gscale = factors(table, p.graph, p.num_sms, p.seqs, pl.graph_buckets)
    after_s = model_time(fitted, dataclasses.replace(p, gscale=gscale), gs, kpl, L)
    fixed, per_seq, per_token, counts = fit_gaps(p)
    runs = [str(d) for d in run_dirs]
    report = {
        "runs": runs,
        "method": "robust least squares (scipy least_squares, soft_l1, f_scale 0.05) of "
        "modelled / measured - 1 over every measured live iteration; host gaps: robust "
        f"linear fit on back-to-back gaps (< {BACK_TO_BACK_S * 1e3:g} ms) per launch kind",
        "num_iterations": len(p),
        "decode_graph_buckets": list(pl.graph_buckets),
        "eager_prefill_attention": "scaled by the live engine's measured factor "
        "(exec.eager_prefill_attention)"
        if pl.eager_attn is not None
        else "as profiled",
        "exact_shapes_share": round(float(p.exact.mean()), 4),
        "fitted": names,
        "not_fitted": [k for k in TERMS if k not in names],
        "terms_before": {k: start[k] for k in TERMS},
        "terms_after": {k: fitted[k] for k in TERMS},
        "gap_samples": counts,
        "decode_graph_bucket_scale": {
            "factors": to_doc(table),
            "iterations": graph_counts,
            "method": "per (SMs, padded rows) with at least "
            f"{MIN_GRAPH_ITERATIONS} graph decode steps: median of (measured - modelled "
            "overheads) / modelled kernel seconds under the fitted terms, which stay as "
            "fitted (bulletsim.latency.graph_scale)",
        },
        "host_launch_upper_bound": host_line or "none (no host_s recorded)",
        "residuals_before": error_table(p, before_s),
        "residuals_after": error_table(p, after_s),
    } | ({"note": fake_note} if fake_note else {})
    new = copy.deepcopy(doc)
    srm = new["srm"]
    srm["layer_overhead_s"] = fitted["layer_overhead_s"]
    srm["step_overhead_s"] = fitted["step_overhead_s"]
    srm.setdefault("contention", {})
    for k in CONTENTION:
        srm["contention"][k] = fitted[k]
    # the graph decode step's per-layer overhead is fitted on its own: the profile keeps it as
    # the saving against the eager one (what ProfileLatency subtracts for decode-only work)
    new.setdefault("exec", {})["decode_graph_saving_per_layer_s"] = (
        fitted["layer_overhead_s"] - fitted["graph_layer_overhead_s"]
    )
    if table:
        new["exec"][GRAPH_SCALE_KEY] = to_doc(table)
    else:
        new["exec"].pop(GRAPH_SCALE_KEY, None)
    new.setdefault("exec", {})["kernel_scale"] = {
        "memory": fitted["kernel_scale_memory"],
        "compute": fitted["kernel_scale_compute"],
    }
    new["host"] = {
        "launch_s": fitted["launch_s"],
        "eager_fixed_s": fitted["eager_fixed_s"],
        "eager_overlap_exp": fitted["eager_overlap_exp"],
        "kernels_per_layer": kpl,
        "gap_s": fixed,
        "gap_per_seq_s": per_seq,
        "gap_per_token_s": per_token,
        "source": {"live_runs": runs, "method": report["method"]},
    }
    new["meta"] = dict(new["meta"]) | {"live_refit": report}
    try:  # odd iterations can fit terms no profile may hold (a graph step dearer per layer)
        validate(new, "the refitted profile")
    except ValueError as e:
        raise ValueError(
            f"refit on {', '.join(runs)} gives no valid profile ({e}): the runs' iterations "
            "are not what the latency model can price; check them"
        ) from None
    return new, report


def engine_doc(doc: dict, extra: dict) -> dict:
    """`doc` for the engine a run's `extra` exec keys describe (`live.engine_exec`: its
    decode graphs' batch sizes, its eager prefill kernel; they replace the profile's); `doc`
    itself when `extra` is empty."""
    if not extra:
        return doc
    return {**doc, "exec": {**doc.get("exec", {}), **extra}}


def repriced(doc: dict, run_dir: str | Path) -> pd.DataFrame:
    """`bulletsim fidelity`'s per-iteration error table of `run_dir` with every iteration
    priced under the profile `doc` for the run's engine (its decode graphs' batch sizes,
    `engine_doc`; same columns as `live.fidelity.iteration_errors`); with
    host terms, also rows "gap <kind>" (SMs "-"): the modelled host gap against every
    back-to-back gap the refit would fit on, left out (`attrs["note"]` says why) when the
    run's gaps are ~0 s (a fake-executor run priced without host terms)."""
    doc = engine_doc(doc, run_engine_exec(run_dir))
    pl = neutral(doc)
    p = price_run(pl, run_dir)
    p = dataclasses.replace(p, gscale=graph_factors(doc, p, pl.graph_buckets))
    kpl = (doc.get("host") or {}).get("kernels_per_layer") or KERNELS_PER_LAYER
    t = model_time(base_terms(doc), p, pl.graph_saving_s, kpl, pl.num_layers)
    rows = error_table(p, t)
    host, note = doc.get("host"), ""
    gaps = back_to_back_gaps(p) if host else None
    if host and len(gaps) and float(gaps["gap_s"].median()) < MIN_GAP_S:
        why = (" (the fake executor's launches follow each other with no host time)"
               if not host_times_measured(run_dir) else "")  # fmt: skip
        note = (f"gap rows left out: {Path(run_dir).name}'s host gaps are ~0 s (median below "
                f"{MIN_GAP_S * 1e6:g} us){why}, so a percentage error on them means "
                "nothing")  # fmt: skip
    if host and not note:
        for kind, g in gaps.groupby("kind"):
            fixed, per = host["gap_s"].get(kind, 0.0), host["gap_per_seq_s"].get(kind, 0.0)
            tok = (host.get("gap_per_token_s") or {}).get(kind, 0.0)
            model = fixed + per * g["seqs"].to_numpy() + tok * g["tokens"].to_numpy()
            e = (model / np.maximum(g["gap_s"].to_numpy(), 1e-9) - 1.0) * 100.0
            rows.append({"phase": f"gap {kind}", "sms": "-", "n": len(e),
                         "median_abs_pct": round(float(np.median(np.abs(e))), 2),
                         "p90_abs_pct": round(float(np.percentile(np.abs(e), 90)), 2),
                         "median_pct": round(float(np.median(e)), 2)})  # fmt: skip
    out = pd.DataFrame(rows)
    out.attrs["note"] = note
    return out
