"""One sweep point: a simulated run flattened into a table row, and the zero-load ceiling.

A point is a pure function of (sweep spec, policy variant, trace, seed, rate), so a sweep's
results do not depend on how many workers ran them or in which order.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats

from bulletsim.steady_state import steady_state

POINT_COLUMNS = (
    "label", "policy", "trace", "seed", "rate_req_s", "kind", "num_requests",
    "offered_rate_req_s", "stopped_early", "arrived_share_at_stop", "slo_attainment",
    "ttft_attainment",
    "tpot_attainment", "goodput_req_s", "throughput_req_s", "throughput_steady_req_s",
    "offered_steady_req_s", "completed_share", "queue_growing", "drain_share", "n_for_drain",
    "steady", "output_throughput_tok_s", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms",
    "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms", "num_preemptions", "gpu", "model", "tp",
    "ep", "moe_routing", "latency_model", "latency_provenance", "mechanism", "remask_us",
    "remask_kind", "profile_mechanism",
    "mechanism_caveat", "workload_source", "slo", "convention", "error",
)  # fmt: skip
# How the point's policy partitioned SMs and what its profile was measured under (run_meta)
MECHANISM_COLUMNS = ("mechanism", "remask_us", "remask_kind", "profile_mechanism",
                     "mechanism_caveat")  # fmt: skip
# The model's layout (tp, MoE ep and routing; '' for a dense model) and where the latency
# model's numbers come from (`latency.factory.transfer_note`, the lines `run` prints: measured
# vs derived parts; '' for a measured single-GPU profile): the same at every point of a label
LAYOUT_COLUMNS = ("tp", "ep", "moe_routing", "latency_provenance")

# The zero-load ceiling: this many requests of the point's workload, each run alone (spaced
# ZERO_LOAD_GAP_S apart, far beyond any request's latency), with outputs cut to
# ZERO_LOAD_OUTPUT_TOKENS: TTFT is exact for a lone request, TPOT is judged on its first
# decode steps (a lone decode step is the fastest there is; a longer context adds little).
ZERO_LOAD_REQUESTS = 1000
ZERO_LOAD_GAP_S = 1000.0
ZERO_LOAD_OUTPUT_TOKENS = 4


def point_overrides(spec: Any, v: Any, trace: str, rate: float, seed: int) -> dict:
    """Config overrides of one point: the sweep's base, the variant, trace, rate and seed."""
    from bulletsim.config import merge_overrides

    over = merge_overrides(spec.base, {"policy": v.policy, v.policy: dict(v.params)})
    return merge_overrides(
        over,
        {
            "seed": seed,
            "workload": {
                "trace": trace, "arrival": "poisson", "rate": rate,
                "num_requests": spec.num_requests,
            },
        },
    )  # fmt: skip


def slo_text(summary_slo: dict) -> str:
    """`TTFT <= 3 ms/token, TPOT <= 150 ms` from a summary's `slo` entry."""
    if summary_slo.get("norm_ttft_ms_per_token") is not None:
        ttft = f"TTFT <= {summary_slo['norm_ttft_ms_per_token']:g} ms/token"
    else:
        ttft = f"TTFT <= {summary_slo['ttft_ms']:g} ms"
    return f"{ttft}, TPOT <= {summary_slo['tpot_ms']:g} ms"


def _slo_dict(slo) -> dict:
    return {
        "tpot_ms": slo.tpot_s * 1e3,
        "ttft_ms": None if slo.ttft_s is None else slo.ttft_s * 1e3,
        "norm_ttft_ms_per_token": None
        if slo.norm_ttft_s_per_token is None
        else slo.norm_ttft_s_per_token * 1e3,
    }


def mechanism_fields(summary: dict) -> dict:
    """MECHANISM_COLUMNS of a run's summary ('' where the policy has no SM partitions)."""
    part = summary.get("partitioning") or {}
    return {
        "mechanism": part.get("mechanism", ""),
        "remask_us": part.get("remask_us", math.nan),
        "remask_kind": part.get("remask_kind", ""),
        "profile_mechanism": summary.get("profile_mechanism") or "",
        "mechanism_caveat": summary.get("mechanism_caveat") or "",
    }


def latency_provenance(cfg: Any) -> str:
    """`transfer_note` of `cfg` on one line (" | " between its lines); '' when it has none."""
    from bulletsim.hardware import get_gpu

    return _provenance(
        cfg.latency, get_gpu(cfg.gpu), cfg.model_spec(), cfg.partition_mechanism(), cfg.profile
    )


@lru_cache(maxsize=64)
def _provenance(kind: str, gpu: Any, model: Any, mechanism: Any, profile: Any) -> str:
    from bulletsim.latency.factory import transfer_note

    return " | ".join((transfer_note(kind, gpu, model, mechanism, profile) or "").splitlines())


def run_point(spec: Any, v: Any, trace: str, seed: int, rate: float) -> dict:
    """Simulate one point and flatten it into a row of POINT_COLUMNS (without `kind`, `error`).

    With `spec.early_stop`, a run whose misses already put attainment below the target stops
    there: `stopped_early` is True, `slo_attainment` holds the upper bound it could still
    reach (below the target), `arrived_share_at_stop` the share of its requests that had
    arrived by then, and the latency columns are NaN.
    """
    from bulletsim.config import load_config
    from bulletsim.simulate import simulate

    cfg = load_config(None, point_overrides(spec, v, trace, rate, seed))
    stop = spec.target_attainment if spec.early_stop else None
    res = simulate(cfg, stop_below_attainment=stop)
    s = res.summary
    arrivals = [r.arrival_s for r in res.workload.requests]
    n = len(arrivals)
    row: dict[str, Any] = dict.fromkeys(POINT_COLUMNS, math.nan)
    row.update(
        {
            "label": v.label, "policy": s["policy"], "trace": trace, "seed": seed,
            "rate_req_s": rate, "num_requests": n,
            "offered_rate_req_s": (n - 1) / (arrivals[-1] - arrivals[0]) if n > 1 else math.nan,
            "gpu": s["gpu"], "model": s["model"], "tp": s["tp"], "ep": s.get("ep", ""),
            "moe_routing": s.get("moe_routing", ""), "latency_model": s["latency_model"],
            "latency_provenance": latency_provenance(cfg),
            **mechanism_fields(s),
            "workload_source": s["workload_source"], "slo": slo_text(_slo_dict(res.slo)),
            "tpot_slo_ms": 1e3 * res.slo.tpot_s,
            "ttft_slo_ms": math.nan if res.slo.ttft_s is None else 1e3 * res.slo.ttft_s,
            "norm_ttft_slo_ms_per_token": math.nan if res.slo.norm_ttft_s_per_token is None
            else 1e3 * res.slo.norm_ttft_s_per_token,
            "convention": res.workload.convention,
            "stopped_early": bool(s.get("stopped_early", False)), "queue_growing": False,
            "steady": False,
        }
    )  # fmt: skip
    if row["stopped_early"]:
        row["slo_attainment"] = s["slo_attainment_upper_bound"]
        row["arrived_share_at_stop"] = np.searchsorted(arrivals, s["stopped_at_s"], "right") / n
        return row
    row.update(
        {
            "slo_attainment": s["slo_attainment"], "ttft_attainment": s["ttft_attainment"],
            "tpot_attainment": s["tpot_attainment"], "goodput_req_s": s["goodput_req_s"],
            "throughput_req_s": s["throughput_req_s"],
            "output_throughput_tok_s": s["output_throughput_tok_s"],
            **{f"ttft_{q}_ms": s["ttft_ms"][q] for q in ("p50", "p90", "p99")},
            **{f"tpot_{q}_ms": s["tpot_ms"][q] for q in ("p50", "p90", "p99")},
            "norm_ttft_p90_ms_per_token": s["norm_ttft_ms_per_token"]["p90"],
            "num_preemptions": s["num_preemptions"],
        }
    )  # fmt: skip
    st = steady_state(res.requests)
    row.update({k: st[k] for k in POINT_COLUMNS if k in st})
    return row


def run_zero_load(spec: Any, v: Any, trace: str, seed: int) -> dict:
    """Attainment at a vanishing rate (each request alone), with its Wilson 95% interval.

    Where this ceiling is below the target, no rate reaches the target: capacity is undefined.
    """
    from bulletsim.config import load_config
    from bulletsim.core import RequestSpec
    from bulletsim.simulate import simulate
    from bulletsim.workload import load_workload

    # any rate: only the request sample is used, re-spaced below
    cfg = load_config(None, point_overrides(spec, v, trace, 1.0, seed))
    wl = load_workload(cfg.workload, np.random.default_rng(cfg.seed), model=cfg.model)
    cut = ZERO_LOAD_OUTPUT_TOKENS
    lone = tuple(
        RequestSpec(i, i * ZERO_LOAD_GAP_S, r.prompt_tokens, min(r.output_tokens, cut))
        for i, r in enumerate(wl.requests[:ZERO_LOAD_REQUESTS])
    )
    res = simulate(cfg, workload=dataclasses.replace(wl, requests=lone))
    met = int(res.requests["meets_slo"].sum())
    ci = stats.binomtest(met, len(lone)).proportion_ci(0.95, method="wilson")
    return {
        "label": v.label, "trace": trace, "zero_load_attainment": met / len(lone),
        "zero_load_lo": float(ci.low), "zero_load_hi": float(ci.high),
        "zero_load_requests": len(lone),
    }  # fmt: skip
