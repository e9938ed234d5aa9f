"""A run as data: config -> built pieces -> engine -> records -> metrics -> invariants.

`build_run` turns a `RunConfig` into the pieces an engine needs (workload, GPU, model,
latency model, KV cache, serving state, policy) and touches no engine; `simulate` runs them
on the SimPy engine and `collect` turns what any engine recorded into one `RunResult`
(per-request and per-iteration tables, the SM timeline, metrics, run metadata), checking
the invariants every run must keep. A live engine reuses `build_run` and `collect`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bulletsim.client import ConcurrencyLimitedClient
from bulletsim.config import RunConfig
from bulletsim.core import SLO
from bulletsim.early_stop import MissBound
from bulletsim.engine_api import Engine
from bulletsim.hardware import GPUSpec, get_gpu
from bulletsim.invariants import check_run
from bulletsim.itl import ITLSamples
from bulletsim.kvcache import KVCache
from bulletsim.latency.base import LatencyModel
from bulletsim.latency.factory import build_latency
from bulletsim.metrics import add_request_metrics, summarize
from bulletsim.models import ModelSpec
from bulletsim.partitioning import mechanism_caveat
from bulletsim.policies.base import Policy, PolicyContext
from bulletsim.policies.registry import make_policy, partitioning_of
from bulletsim.records import request_frame, sm_timeline_frame
from bulletsim.state import ServingState
from bulletsim.workload import Workload, load_workload


@dataclass(slots=True)
class Run:
    """Everything a run is made of, before an engine runs it."""

    config: RunConfig
    workload: Workload
    gpu: GPUSpec
    model: ModelSpec
    latency: LatencyModel
    slo: SLO
    slo_source: str
    kv: KVCache
    itl: ITLSamples
    state: ServingState
    policy: Policy

    @property
    def context(self) -> PolicyContext:
        return PolicyContext(self.state, self.latency, self.gpu.num_sms, self.slo)


@dataclass(slots=True)
class RunResult:
    """One finished run. `metrics` are measured from the records; `meta` says what ran.

    `summary` (what `summary.json` holds) is the two together, so one file answers both.
    """

    config: RunConfig
    workload: Workload
    latency: LatencyModel
    slo: SLO
    slo_source: str
    requests: pd.DataFrame  # one row per request, with the metrics.add_request_metrics columns
    iterations: pd.DataFrame  # one row per lane iteration (records.ITERATION_COLUMNS)
    sm_log: pd.DataFrame  # records.SM_TIMELINE_COLUMNS, one row per allocation change
    metrics: dict
    meta: dict

    @property
    def summary(self) -> dict:
        return {**self.metrics, **self.meta}


def build_run(
    cfg: RunConfig, *, workload: Workload | None = None, latency: LatencyModel | None = None
) -> Run:
    """Build `cfg`'s pieces; `workload`/`latency` override what the config would build.

    Raises ValueError for an empty workload or a request that can never fit the KV cache.
    """
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    gpu = get_gpu(cfg.gpu)
    model = cfg.model_spec()
    if workload is None:
        workload = load_workload(
            cfg.workload, rng, context_tokens=model.max_context_tokens, model=cfg.model
        )
    if not workload.requests:
        raise ValueError(f"workload {workload.name!r} has no requests after filtering")
    if latency is None:
        latency = build_latency(cfg.latency, gpu, model, cfg.partition_mechanism(), cfg.profile)
    slo, slo_source = cfg.slo.resolve(workload.name)
    kv = KVCache(_kv_blocks(cfg, gpu, model), cfg.kv.block_size)
    _check_fits(workload, kv)
    itl = ITLSamples()
    client = None
    if cfg.workload.max_concurrency is not None:  # a benchmark client's --max-concurrency
        client = ConcurrencyLimitedClient(
            workload.requests, cfg.workload.max_concurrency, cfg.workload.think_s
        )
    state = ServingState(
        workload.requests, kv, reserve_fraction=cfg.kv.reserve_fraction, itl=itl, client=client
    )
    policy = make_policy(cfg.policy, cfg.params())
    return Run(cfg, workload, gpu, model, latency, slo, slo_source, kv, itl, state, policy)


def simulate(
    cfg: RunConfig,
    *,
    workload: Workload | None = None,
    latency: LatencyModel | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop_below_attainment: float | None = None,
    timing: LatencyModel | None = None,
) -> RunResult:
    """Build `cfg` and run it to completion on the simulated engine.

    `timing`: a latency model for the engine's clock other than the one the policy predicts
    with (`latency`, or the config's), named in the result's `timing_model` meta.

    With `stop_below_attainment` (a target in (0, 1]) the run ends early once its SLO misses
    make attainment below that target certain (`early_stop.MissBound`); its metrics then
    hold only `stopped_early`, `stopped_at_s`, `slo_attainment_upper_bound` and
    `num_requests`, and its tables cover the simulated part only (see `collect_stopped`).
    """
    from bulletsim.engine import SimEngine  # the only simpy import, kept out of build/collect

    run = build_run(cfg, workload=workload, latency=latency)
    total = len(run.workload.requests)
    tick = (lambda done: progress(done, total)) if progress else None
    bound = None
    if stop_below_attainment is not None:
        bound = MissBound(run.state, run.slo, stop_below_attainment)
    mechanism = cfg.partition_mechanism()
    engine = SimEngine(
        run.policy,
        run.context,
        progress=tick,
        stop_when=bound,
        timing=timing,
        mechanism=mechanism,
    )
    engine.run()
    if engine.stopped_at_s is not None:
        assert bound is not None
        return collect_stopped(run, engine, engine.stopped_at_s, bound.upper_bound)
    if progress:
        progress(run.state.num_finished, total)
    overlap = None
    if engine.keeps_partition and len(run.policy.lanes) > 1:
        # a launch keeps its partition while the policy already shrank its lane for the other
        overlap = max(run.policy.max_overlap_sms, run.gpu.num_sms)
    res = collect(run, engine, max_overlap_sms=overlap)
    if timing is not None:
        res.meta["timing_model"] = timing.name
    return res


def collect_stopped(
    run: Run, engine: Engine, stopped_at_s: float, attainment_upper_bound: float
) -> RunResult:
    """What a run stopped early has: no metrics beyond the bound, no invariants to check."""
    metrics = {
        "stopped_early": True,
        "stopped_at_s": stopped_at_s,
        "slo_attainment_upper_bound": attainment_upper_bound,
        "num_requests": len(run.workload.requests),
    }
    return _result(run, engine, request_frame(run.state.requests), engine.log.to_frame(), metrics)


def collect(run: Run, engine: Engine, *, max_overlap_sms: int | None = None) -> RunResult:
    """Records -> metrics -> invariants, for a run `engine` has finished.

    `max_overlap_sms` overrides the policy's allowance of SMs held by two lanes at once (a
    live engine's launch keeps its partition while a re-split already shrank it).
    Raises AssertionError naming the first broken invariant (a bug, on every run).
    """
    req = add_request_metrics(request_frame(run.state.requests), run.slo)
    it = engine.log.to_frame()
    check_run(
        req,
        it,
        num_requests=len(run.workload.requests),
        kv_capacity_blocks=run.kv.capacity_blocks,
        total_sms=run.gpu.num_sms,
        max_overlap_sms=run.policy.max_overlap_sms if max_overlap_sms is None else max_overlap_sms,
    )
    metrics = summarize(req, run.slo, run.itl)
    metrics["kv_peak_used_blocks"] = run.kv.peak_used_blocks  # inside iterations, exact
    # the same as iterations.parquet records it (kv_used_blocks at each iteration end)
    metrics["kv_peak_used_blocks_at_iteration_end"] = (
        int(it["kv_used_blocks"].max()) if len(it) else 0
    )
    metrics["num_iterations"] = len(it)
    return _result(run, engine, req, it, metrics)


def _result(
    run: Run, engine: Engine, req: pd.DataFrame, it: pd.DataFrame, metrics: dict
) -> RunResult:
    """The RunResult of `run` (both the finished and the early-stopped path build it)."""
    sm_log = sm_timeline_frame(engine.sm_log, engine.physical_sms)
    return RunResult(
        run.config, run.workload, run.latency, run.slo, run.slo_source, req, it, sm_log,
        metrics, run_meta(run),
    )  # fmt: skip


def run_meta(run: Run) -> dict:
    """What ran: policy, workload and its provenance, GPU, model, latency model, KV sizing,
    and how the policy partitions SMs (`partitioning.Partitioning.to_dict`, None without
    partitions): mechanism, granularity and re-partition cost with its kind and source; the
    mechanism the latency profile was measured under and a caveat when the two differ."""
    w = run.workload
    # a policy that resolves its own (Bullet, at bind) reports what it used
    part = getattr(run.policy, "partitioning", None) or partitioning_of(
        run.config.policy, run.config.params(), run.gpu, run.gpu.num_sms
    )
    profile_mech = getattr(run.latency, "mechanism", None)  # None: not a profile
    return {
        "policy": run.policy.name,
        "partitioning": None if part is None else part.to_dict(),
        "profile_mechanism": profile_mech,
        "mechanism_caveat": mechanism_caveat(part and part.mechanism, profile_mech),
        "workload": w.name,
        "workload_source": w.source,
        "convention": w.convention,
        "workload_is_embedded_default": w.is_embedded_default,
        "num_dropped": w.num_dropped,
        "num_clipped": w.num_clipped,
        "num_over_length": w.num_over_length,
        "length_limit_tokens": w.length_limit_tokens,
        "gpu": run.gpu.name,
        "model": run.model.name,
        "tp": run.model.tp,
        # MoE layout and routing (only for MoE models: dense runs' summaries are unchanged)
        **({"ep": run.model.ep, "moe_routing": run.model.moe_routing} if run.model.is_moe else {}),
        "latency_model": run.latency.name,
        "slo_source": run.slo_source,
        "kv_capacity_blocks": run.kv.capacity_blocks,
        "kv_block_size": run.kv.block_size,
    }


def _kv_blocks(cfg: RunConfig, gpu: GPUSpec, model: ModelSpec) -> int:
    return cfg.kv.blocks_for(gpu, model)


def _check_fits(workload: Workload, kv: KVCache) -> None:
    """A request whose prompt + output can never fit in the KV cache is an input error."""
    cap_tokens = kv.capacity_blocks * kv.block_size
    worst = max(workload.requests, key=lambda s: s.prompt_tokens + s.output_tokens)
    if worst.prompt_tokens + worst.output_tokens > cap_tokens:
        raise ValueError(
            f"request {worst.id} needs {worst.prompt_tokens + worst.output_tokens} KV tokens but "
            f"the cache holds {cap_tokens}; set workload.max_total_tokens (--max-total-tokens) "
            "to drop such requests, or use a bigger GPU / more tensor parallelism"
        )
