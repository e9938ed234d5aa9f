"""One side of a fidelity comparison: per-request latencies plus an inter-token-latency sample.

Both a simulation and a measurement reduce to the same columns, defined as the benchmark
clients define them (vLLM `bench serve`, SGLang `bench_serving`): TTFT = first token - send;
E2E = last token - send; TPOT = (E2E - TTFT) / (output tokens - 1) for outputs of more than one
token; ITL = the gaps between consecutive streamed tokens of a request, pooled over requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("prompt_tokens", "output_tokens", "ttft_s", "e2e_s")


@dataclass(frozen=True, slots=True)
class Observed:
    """A run reduced to what a comparison needs.

    `requests`: one row per *completed* request in a stable order (the same order on both
    sides, so row i of the simulation is row i of the measurement), with int columns
    `prompt_tokens`, `output_tokens` and float seconds `ttft_s`, `e2e_s`.
    `itl_ms`: mean/p50/p90/p99 of the pooled inter-token latencies in ms (NaN when unknown).
    `duration_s`: the span throughput divides by (first send to last finish).
    """

    label: str
    requests: pd.DataFrame
    itl_ms: dict[str, float]
    duration_s: float

    def __post_init__(self) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in self.requests.columns]
        assert not missing, f"{self.label}: missing columns {missing}"

    @property
    def tpot_s(self) -> pd.Series:
        """Per-request TPOT in seconds; NaN for single-token outputs."""
        r = self.requests
        multi = r["output_tokens"] > 1
        return (r["e2e_s"] - r["ttft_s"]) / (r["output_tokens"] - 1).where(multi)


def itl_stats_ms(itl_s: np.ndarray) -> dict[str, float]:
    """Mean, p50, p90, p99 in ms of a pooled ITL sample in seconds (numpy's linear
    interpolation, as vLLM and SGLang compute theirs); NaN for an empty sample."""
    a = np.asarray(itl_s, dtype=np.float64)
    if a.size == 0:
        return {k: float("nan") for k in ("mean", "p50", "p90", "p99")}
    p50, p90, p99 = np.percentile(a, (50, 90, 99))
    return {"mean": float(a.mean() * 1e3), "p50": p50 * 1e3, "p90": p90 * 1e3, "p99": p99 * 1e3}


def observed_from_request_frame(
    label: str, frame: pd.DataFrame, itl_ms: dict[str, float]
) -> Observed:
    """An Observed from a results directory's `requests.parquet` layout (simulated or live).

    `frame` needs `id`, `arrival_s`, `first_token_s`, `finish_s`, `prompt_tokens`,
    `output_tokens` (seconds; see `bulletsim.records.request_frame`); rows are taken in `id`
    order. `itl_ms` values may be None (no samples, as summary.json writes it): read as NaN.
    Throughput divides by last finish - first arrival, as `metrics.summarize` does.
    """
    f = frame.sort_values("id", kind="stable")
    requests = pd.DataFrame(
        {
            "id": f["id"].to_numpy(),
            "arrival_s": f["arrival_s"].to_numpy(dtype=np.float64),
            "prompt_tokens": f["prompt_tokens"].to_numpy(dtype=np.int64),
            "output_tokens": f["output_tokens"].to_numpy(dtype=np.int64),
            "ttft_s": (f["first_token_s"] - f["arrival_s"]).to_numpy(dtype=np.float64),
            "e2e_s": (f["finish_s"] - f["arrival_s"]).to_numpy(dtype=np.float64),
        }
    )
    span = float(f["finish_s"].max() - f["arrival_s"].min()) if len(f) else 0.0
    # summary.json writes a statistic without samples as null (e.g. ITL of one-token outputs)
    itl = {k: float("nan") if v is None else float(v) for k, v in itl_ms.items()}
    return Observed(label, requests, itl, span)
