"""Simulated vs measured, metric by metric and request by request.

Latency rows: TTFT, TPOT, ITL and E2E, each as mean, p50, p90 and p99 in ms (per-request
percentiles by numpy's linear interpolation, as vLLM and SGLang report theirs). Rate rows:
request and output-token throughput (completed / duration). SLO rows: the share of requests
whose TTFT (absolute, or per prompt token) and TPOT are within the SLO, as `metrics.py`
defines it. `error_pct` = 100 * (sim - measured) / measured.

When both sides hold the same requests in the same order (a re-simulation of a measured run),
the per-request rows give the median and p90 of |sim - measured| / measured for TTFT and E2E:
a simulation can match every aggregate while getting individual requests wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bulletsim.core import SLO
from bulletsim.fidelity.observed import Observed

STATS = ("mean", "p50", "p90", "p99")
LATENCY_METRICS = (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL"), ("e2e_ms", "E2E"))


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One compared figure: `metric` (e.g. "ttft_ms"), `stat` (e.g. "p99"), both values."""

    metric: str
    stat: str
    sim: float
    measured: float

    @property
    def error_pct(self) -> float:
        """100 * (sim - measured) / measured; NaN when measured is 0 or either is unknown."""
        if not (math.isfinite(self.sim) and math.isfinite(self.measured)) or self.measured == 0:
            return float("nan")
        return 100.0 * (self.sim - self.measured) / self.measured


@dataclass(frozen=True, slots=True)
class Comparison:
    """The whole report: aggregate rows, per-request rows (may be empty) and notes."""

    sim_label: str
    measured_label: str
    num_requests: int
    rows: tuple[MetricRow, ...]
    per_request: dict[str, float]
    notes: tuple[str, ...] = ()

    def row(self, metric: str, stat: str = "value") -> MetricRow:
        """The row of `metric`/`stat`; KeyError names what exists."""
        for r in self.rows:
            if r.metric == metric and r.stat == stat:
                return r
        raise KeyError(f"no row {metric}/{stat}")

    def to_dict(self) -> dict:
        """A JSON-ready dict: {"rows": [{metric, stat, sim, measured, error_pct}], ...}."""
        rows = [
            {
                "metric": r.metric,
                "stat": r.stat,
                "sim": r.sim,
                "measured": r.measured,
                "error_pct": r.error_pct,
            }
            for r in self.rows
        ]
        return {
            "sim": self.sim_label,
            "measured": self.measured_label,
            "num_requests": self.num_requests,
            "rows": rows,
            "per_request": dict(self.per_request),
            "notes": list(self.notes),
        }


def _stats_ms(x: pd.Series) -> dict[str, float]:
    a = x.dropna().to_numpy(dtype=np.float64) * 1e3
    if a.size == 0:
        return {s: float("nan") for s in STATS}
    p50, p90, p99 = np.percentile(a, (50, 90, 99))
    return {"mean": float(a.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}


def side_summary(obs: Observed, slo: SLO) -> dict:
    """Every compared figure of one side: {"ttft_ms": {"mean":..}, ..., "slo_attainment": x}."""
    r = obs.requests
    tpot = obs.tpot_s
    n = len(r)
    if slo.norm_ttft_s_per_token is not None:
        meets_ttft = r["ttft_s"] <= slo.norm_ttft_s_per_token * r["prompt_tokens"]
    else:
        assert slo.ttft_s is not None
        meets_ttft = r["ttft_s"] <= slo.ttft_s
    meets_tpot = tpot.isna() | (tpot <= slo.tpot_s)
    dur = obs.duration_s
    return {
        "ttft_ms": _stats_ms(r["ttft_s"]),
        "tpot_ms": _stats_ms(tpot),
        "itl_ms": dict(obs.itl_ms),
        "e2e_ms": _stats_ms(r["e2e_s"]),
        "throughput_req_s": n / dur if dur > 0 else float("nan"),
        "output_throughput_tok_s": int(r["output_tokens"].sum()) / dur if dur > 0 else float("nan"),
        "slo_attainment": float((meets_ttft & meets_tpot).mean()) if n else float("nan"),
        "ttft_attainment": float(meets_ttft.mean()) if n else float("nan"),
        "tpot_attainment": float(meets_tpot.mean()) if n else float("nan"),
    }


def _per_request(sim: Observed, measured: Observed) -> dict[str, float]:
    """{"ttft_abs_rel_error_p50_pct": .., "ttft_..._p90_pct", "e2e_..."} over matched rows."""
    out = {}
    for col, name in (("ttft_s", "ttft"), ("e2e_s", "e2e")):
        m = measured.requests[col].to_numpy(dtype=np.float64)
        s = sim.requests[col].to_numpy(dtype=np.float64)
        ok = m > 0
        rel = 100.0 * np.abs(s[ok] - m[ok]) / m[ok]
        if rel.size:
            p50, p90 = np.percentile(rel, (50, 90))
            out[f"{name}_abs_rel_error_p50_pct"] = float(p50)
            out[f"{name}_abs_rel_error_p90_pct"] = float(p90)
    return out


def compare(sim: Observed, measured: Observed, slo: SLO) -> Comparison:
    """Compare two sides under `slo`.

    Per-request rows are added only when both sides hold the same number of requests with
    identical prompt and output lengths row by row (the same requests, re-simulated); a
    mismatch is reported in `notes` instead.
    """
    a, b = side_summary(sim, slo), side_summary(measured, slo)
    rows = [MetricRow(m, s, a[m][s], b[m][s]) for m, _ in LATENCY_METRICS for s in STATS]
    for key in (
        "throughput_req_s",
        "output_throughput_tok_s",
        "slo_attainment",
        "ttft_attainment",
        "tpot_attainment",
    ):
        rows.append(MetricRow(key, "value", a[key], b[key]))
    notes = []
    same = len(sim.requests) == len(measured.requests) and all(
        np.array_equal(sim.requests[c].to_numpy(), measured.requests[c].to_numpy())
        for c in ("prompt_tokens", "output_tokens")
    )
    if same:
        per_request = _per_request(sim, measured)
    else:
        per_request = {}
        notes.append(
            "per-request errors skipped: the two sides do not hold the same requests "
            f"({len(sim.requests)} vs {len(measured.requests)} rows, or different lengths)"
        )
    return Comparison(
        sim.label, measured.label, len(measured.requests), tuple(rows), per_request, tuple(notes)
    )
