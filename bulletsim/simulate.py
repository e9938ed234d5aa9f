"""One simulated run: config -> workload, GPU, model, latency model, policy -> results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bulletsim.config import RunConfig
from bulletsim.core import SLO
from bulletsim.early_stop import MissBound
from bulletsim.engine import SimEngine
from bulletsim.hardware import get_gpu
from bulletsim.invariants import check_run
from bulletsim.itl import ITLSamples
from bulletsim.kvcache import KVCache, kv_capacity
from bulletsim.latency.base import LatencyModel
from bulletsim.latency.factory import build_latency
from bulletsim.metrics import add_request_metrics, summarize
from bulletsim.models import get_model
from bulletsim.policies.base import PolicyContext
from bulletsim.policies.registry import make_policy
from bulletsim.records import request_frame
from bulletsim.state import ServingState
from bulletsim.workload import Workload, load_workload


@dataclass(slots=True)
class SimResult:
    config: RunConfig
    workload: Workload
    latency: LatencyModel
    slo: SLO
    slo_source: str
    requests: pd.DataFrame
    iterations: pd.DataFrame
    sm_log: pd.DataFrame
    summary: dict


def simulate(
    cfg: RunConfig,
    *,
    workload: Workload | None = None,
    latency: LatencyModel | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop_below_attainment: float | None = None,
) -> SimResult:
    """Run `cfg` to completion. `workload`/`latency` override what the config would build.

    With `stop_below_attainment` (a target in (0, 1]) the run ends early once its SLO misses
    make attainment below that target certain (`early_stop.MissBound`); its summary then
    holds only `stopped_early`, `stopped_at_s`, `slo_attainment_upper_bound` and a few names,
    and its frames cover the simulated part only.
    """
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    gpu = get_gpu(cfg.gpu)
    model = get_model(cfg.model, tp=cfg.tp)
    if workload is None:
        workload = load_workload(cfg.workload, rng)
    if not workload.requests:
        raise ValueError(f"workload {workload.name!r} has no requests after filtering")
    if latency is None:
        latency = build_latency(cfg.latency, gpu, model)
    slo, slo_source = cfg.slo.resolve(workload.name)

    if cfg.kv.capacity_blocks is not None:
        if cfg.kv.capacity_blocks < 1:
            raise ValueError(f"kv.capacity_blocks must be >= 1, got {cfg.kv.capacity_blocks}")
        num_blocks = cfg.kv.capacity_blocks
    else:
        num_blocks = kv_capacity(
            gpu.memory_bytes,
            model.weight_bytes_per_gpu,
            model.kv_bytes_per_token_per_gpu,
            block_size=cfg.kv.block_size,
            memory_fraction=cfg.kv.memory_fraction,
            reserve_bytes=int(cfg.kv.reserve_gib * 1024**3),
        ).num_blocks
    kv = KVCache(num_blocks, cfg.kv.block_size)
    _check_fits(workload, kv)

    itl = ITLSamples()
    state = ServingState(workload.requests, kv, reserve_fraction=cfg.kv.reserve_fraction, itl=itl)
    policy = make_policy(cfg.policy, cfg.params())
    ctx = PolicyContext(state, latency, gpu.num_sms, slo)
    total = len(workload.requests)
    bound = None if stop_below_attainment is None else MissBound(state, slo, stop_below_attainment)
    engine = SimEngine(
        policy,
        ctx,
        progress=(lambda done: progress(done, total)) if progress else None,
        stop_when=bound,
    )
    log = engine.run()
    if engine.stopped_at_s is not None:
        assert bound is not None
        summary = {
            "stopped_early": True,
            "stopped_at_s": engine.stopped_at_s,
            "slo_attainment_upper_bound": bound.upper_bound,
            "num_requests": total,
            "policy": policy.name,
            "workload": workload.name,
            "workload_source": workload.source,
            "gpu": gpu.name,
            "model": model.name,
            "latency_model": latency.name,
            "slo_source": slo_source,
        }
        sm_log = pd.DataFrame(engine.sm_log, columns=["time_s", "lane", "num_sms"])
        req = request_frame(state.requests)
        return SimResult(cfg, workload, latency, slo, slo_source, req, log.to_frame(), sm_log,
                         summary)  # fmt: skip
    if progress:
        progress(state.num_finished, total)

    req = add_request_metrics(request_frame(state.requests), slo)
    summary = summarize(req, slo, itl)
    it = log.to_frame()
    # every run, not only test runs, must keep the invariants; a violation is a bug
    check_run(
        req,
        it,
        num_requests=total,
        kv_capacity_blocks=kv.capacity_blocks,
        total_sms=gpu.num_sms,
        max_overlap_sms=policy.max_overlap_sms,
    )
    summary.update(
        {
            "policy": policy.name,
            "workload": workload.name,
            "workload_source": workload.source,
            "workload_is_embedded_default": workload.is_embedded_default,
            "num_dropped": workload.num_dropped,
            "num_clipped": workload.num_clipped,
            "gpu": gpu.name,
            "model": model.name,
            "tp": model.tp,
            "latency_model": latency.name,
            "slo_source": slo_source,
            "kv_capacity_blocks": kv.capacity_blocks,
            "kv_block_size": kv.block_size,
            "kv_peak_used_blocks": kv.peak_used_blocks,
            "num_iterations": len(it),
        }
    )
    sm_log = pd.DataFrame(engine.sm_log, columns=["time_s", "lane", "num_sms"])
    return SimResult(cfg, workload, latency, slo, slo_source, req, it, sm_log, summary)


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
