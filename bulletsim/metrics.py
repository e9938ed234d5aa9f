"""Serving metrics, defined from timestamps (SGLang bench_serving compatible, plus SLOs).

Per request: TTFT = first token - arrival; TPOT = (finish - first token) / (output - 1) for
output > 1; E2E = finish - arrival; normalized TTFT = TTFT / prompt tokens. ITL = gaps
between consecutive tokens of a request (kept as weighted samples, one per decode step and
lane, so no per-token storage is needed). Throughput = completed requests (and tokens) /
(last finish - first arrival). A request meets the SLO when its TTFT (or normalized TTFT) and
its TPOT are both within limits (TPOT counts as met for single-token outputs). SLO attainment
= share meeting both; goodput = SLO-meeting requests per second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bulletsim.core import SLO
from bulletsim.itl import ITLSamples

PERCENTILES = (50, 90, 99)


def add_request_metrics(df: pd.DataFrame, slo: SLO) -> pd.DataFrame:
    """Add ttft_s, tpot_s, e2e_s, norm_ttft_s, meets_ttft, meets_tpot, meets_slo columns."""
    out = df.copy()
    out["ttft_s"] = out["first_token_s"] - out["arrival_s"]
    out["e2e_s"] = out["finish_s"] - out["arrival_s"]
    out["norm_ttft_s"] = out["ttft_s"] / out["prompt_tokens"]
    multi = out["output_tokens"] > 1
    tpot = (out["finish_s"] - out["first_token_s"]) / (out["output_tokens"] - 1).where(multi)
    out["tpot_s"] = tpot
    if slo.norm_ttft_s_per_token is not None:
        out["meets_ttft"] = out["norm_ttft_s"] <= slo.norm_ttft_s_per_token
    else:
        out["meets_ttft"] = out["ttft_s"] <= slo.ttft_s
    out["meets_tpot"] = ~multi | (tpot <= slo.tpot_s)
    out["meets_slo"] = out["meets_ttft"] & out["meets_tpot"]
    return out


def weighted_percentiles(
    values: Sequence[float], weights: Sequence[int], qs: Sequence[float]
) -> list[float]:
    """Percentiles of a sample where value i occurs weights[i] times (inverted CDF)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return [float("nan")] * len(qs)
    w = np.asarray(weights, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    v, cum = v[order], np.cumsum(w[order])
    ranks = np.asarray(qs, dtype=np.float64) / 100.0 * cum[-1]
    idx = np.searchsorted(cum, np.maximum(ranks, 1e-12), side="left")
    return [float(x) for x in v[np.minimum(idx, v.size - 1)]]


def exact_mean(a: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean (weighted by `weights`) from correctly rounded sums (`math.fsum`): the same float
    whatever numpy's summation order (numpy 2.4 moved `mean` and `dot` by an ulp, which
    moved golden summaries), so a summary depends on the run alone."""
    if weights is None:
        return math.fsum(a.tolist()) / a.size
    return math.fsum((a * weights).tolist()) / math.fsum(weights.tolist())


def _stats(x: pd.Series, scale: float = 1.0) -> dict[str, float]:
    a = x.dropna().to_numpy(dtype=np.float64) * scale
    if a.size == 0:
        return {"mean": float("nan"), **{f"p{q}": float("nan") for q in PERCENTILES}}
    ps = np.percentile(a, PERCENTILES)
    return {
        "mean": exact_mean(a),
        **{f"p{q}": float(p) for q, p in zip(PERCENTILES, ps, strict=True)},
    }


def summarize(
    req: pd.DataFrame,
    slo: SLO,
    itl: ITLSamples,
) -> dict:
    """The run's metrics (times in ms, rates per second), from the per-request table with
    `add_request_metrics` columns and the run's inter-token-latency samples."""
    itl_values, itl_weights = itl.values, itl.weights
    n = len(req)
    span_s = float(req["finish_s"].max() - req["arrival_s"].min()) if n else 0.0
    out_tokens = int(req["output_tokens"].sum())
    in_tokens = int(req["prompt_tokens"].sum())
    met = int(req["meets_slo"].sum())
    itl_ps = weighted_percentiles(itl_values, itl_weights, PERCENTILES)
    w = np.asarray(itl_weights, dtype=np.float64)
    itl_mean = exact_mean(np.asarray(itl_values, dtype=np.float64), w) if w.size else math.nan
    # Offered rate: (n - 1) gaps over the arrival span. All arrivals at t = 0 (a burst, vLLM's
    # --request-rate inf) is an infinite rate; one request has no rate (NaN).
    arrival_span_s = float(req["arrival_s"].max() - req["arrival_s"].min()) if n else 0.0
    if n < 2:
        offered, offered_note = float("nan"), "undefined: fewer than 2 requests"
    elif arrival_span_s == 0.0:
        offered, offered_note = float("inf"), "infinite: every request arrives at once"
    else:
        offered, offered_note = (n - 1) / arrival_span_s, "(n - 1) / arrival span"
    return {
        "num_requests": n,
        "duration_s": span_s,
        "offered_rate_req_s": offered,
        "offered_rate_note": offered_note,
        "throughput_req_s": n / span_s if span_s > 0 else float("nan"),
        "input_throughput_tok_s": in_tokens / span_s if span_s > 0 else float("nan"),
        "output_throughput_tok_s": out_tokens / span_s if span_s > 0 else float("nan"),
        "slo_attainment": met / n if n else float("nan"),
        "ttft_attainment": float(req["meets_ttft"].mean()) if n else float("nan"),
        "tpot_attainment": float(req["meets_tpot"].mean()) if n else float("nan"),
        "goodput_req_s": met / span_s if span_s > 0 else float("nan"),
        "ttft_ms": _stats(req["ttft_s"], 1e3),
        "tpot_ms": _stats(req["tpot_s"], 1e3),
        "itl_ms": {
            "mean": itl_mean * 1e3,
            **{f"p{q}": p * 1e3 for q, p in zip(PERCENTILES, itl_ps, strict=True)},
        },
        "e2e_ms": _stats(req["e2e_s"], 1e3),
        "norm_ttft_ms_per_token": _stats(req["norm_ttft_s"], 1e3),
        "num_preemptions": int(req["num_preemptions"].sum()),
        "slo": {
            "tpot_ms": slo.tpot_s * 1e3,
            "ttft_ms": None if slo.ttft_s is None else slo.ttft_s * 1e3,
            "norm_ttft_ms_per_token": None
            if slo.norm_ttft_s_per_token is None
            else slo.norm_ttft_s_per_token * 1e3,
        },
    }
