"""One live run: config -> workload, policy, executor -> the results `bulletsim run` writes.

The setup mirrors `bulletsim.simulate.simulate` (same workload, SLO, KV capacity, policy and
latency model from the same config), so a live run and its re-simulation differ only in what
runs the work. The result is a `SimResult` (same tables and summary, checked by the same
invariants) plus `live`: executor metadata and loop figures, written to `live.json`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bulletsim.config import RunConfig
from bulletsim.hardware import get_gpu
from bulletsim.invariants import check_run
from bulletsim.kvcache import KVCache, kv_capacity
from bulletsim.latency.base import LatencyModel
from bulletsim.latency.factory import build_latency
from bulletsim.live.engine import LiveEngine
from bulletsim.live.executor import Executor
from bulletsim.metrics import add_request_metrics, summarize
from bulletsim.models import get_model
from bulletsim.policies.base import PolicyContext
from bulletsim.policies.registry import make_policy
from bulletsim.records import request_frame
from bulletsim.state import ServingState
from bulletsim.workload import Workload, load_workload


@dataclass(slots=True)
class LiveResult:
    sim: object  # bulletsim.simulate.SimResult-shaped: config, workload, tables, summary
    live: dict


def kv_blocks_for(cfg: RunConfig) -> int:
    """The run's KV capacity in blocks (the config's override, else what fits the GPU)."""
    if cfg.kv.capacity_blocks is not None:
        if cfg.kv.capacity_blocks < 1:
            raise ValueError(f"kv.capacity_blocks must be >= 1, got {cfg.kv.capacity_blocks}")
        return cfg.kv.capacity_blocks
    gpu, model = get_gpu(cfg.gpu), get_model(cfg.model, tp=cfg.tp)
    return kv_capacity(
        gpu.memory_bytes,
        model.weight_bytes_per_gpu,
        model.kv_bytes_per_token_per_gpu,
        block_size=cfg.kv.block_size,
        memory_fraction=cfg.kv.memory_fraction,
        reserve_bytes=int(cfg.kv.reserve_gib * 1024**3),
    ).num_blocks


def live_run(
    cfg: RunConfig,
    executor: Executor,
    *,
    workload: Workload | None = None,
    latency: LatencyModel | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LiveResult:
    """Serve `cfg`'s workload with `cfg`'s policy on `executor`; wall-clock (or fake) time."""
    from bulletsim.simulate import SimResult  # the shared result shape (no simpy needed)

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
    kv = KVCache(kv_blocks_for(cfg), cfg.kv.block_size)
    worst = max(workload.requests, key=lambda s: s.prompt_tokens + s.output_tokens)
    if worst.prompt_tokens + worst.output_tokens > kv.capacity_blocks * kv.block_size:
        raise ValueError(
            f"request {worst.id} needs {worst.prompt_tokens + worst.output_tokens} KV tokens "
            f"but the cache holds {kv.capacity_blocks * kv.block_size}"
        )
    state = ServingState(workload.requests, kv, reserve_fraction=cfg.kv.reserve_fraction)
    policy = make_policy(cfg.policy, cfg.params())
    ctx = PolicyContext(state, latency, gpu.num_sms, slo)
    total = len(workload.requests)
    engine = LiveEngine(
        policy, ctx, executor, progress=(lambda d: progress(d, total)) if progress else None
    )
    log = engine.run()

    req = add_request_metrics(request_frame(state.requests), slo)
    summary = summarize(req, slo, state.itl_values, state.itl_weights)
    it = log.to_frame()
    lanes_overlap = len(policy.lanes) > 1  # a launch keeps its partition while a re-split
    check_run(  # shrinks it in the policy, so two lanes may briefly hold more than the GPU
        req,
        it,
        num_requests=total,
        kv_capacity_blocks=kv.capacity_blocks,
        total_sms=gpu.num_sms,
        max_overlap_sms=gpu.num_sms if lanes_overlap else getattr(policy, "max_overlap_sms", 0),
    )
    live = loop_figures(it, engine) | {"executor": executor.describe()}
    summary.update(
        {
            "engine": f"live:{executor.name}",
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
    res = SimResult(cfg, workload, latency, slo, slo_source, req, it, sm_log, summary)
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
        "host_over_device": float(host.sum() / dev.sum()) if dev.sum() > 0 else None,
        "notice_lag_ms_p50": float(np.percentile(it["notice_lag_s"], 50) * 1e3),
    }
