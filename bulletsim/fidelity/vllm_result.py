"""Reader for `vllm bench serve --save-result --save-detailed` JSON (vllm/benchmarks/serve.py).

The file is one JSON object (several, one per line, with `--append-result`). Per-request
lists, all in request order and present only with `--save-detailed`: `input_lens` (prompt
tokens), `output_lens` (output tokens; 0 for a failed request), `ttfts` (s), `itls` (list of
s per request), `errors` ("" when the request succeeded), and, in recent versions,
`start_times` (client `time.perf_counter()` at send, s). `latencies` (E2E, s) is kept even
without `--save-detailed`. Run-level: `duration` (s), `request_rate` (req/s or "inf"),
`burstiness` (gamma shape; 1 = Poisson), `max_concurrency` (null = unlimited), and summary
figures such as `mean_ttft_ms`, `median_ttft_ms`, `p99_ttft_ms`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bulletsim.fidelity.measured import (
    MeasuredRun,
    build_run,
    completed_requests,
    left_out_notes,
    number,
    per_request_lists,
)

_HINT = "re-run `vllm bench serve` with --save-result --save-detailed"
REPORTED_KEYS = ("mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "mean_itl_ms",
                 "mean_e2el_ms", "request_throughput", "output_throughput")  # fmt: skip


def read_vllm_result(obj: dict, path: Path) -> MeasuredRun:
    """The completed requests of one vLLM result object (see the module docstring)."""
    keys = ("input_lens", "output_lens", "ttfts", "itls", "latencies")
    ins, outs, ttfts, itls, lats = per_request_lists(obj, keys, path, _HINT)
    starts = obj.get("start_times")
    if starts is not None and len(starts) != len(ins):
        raise ValueError(f"{path}: start_times has {len(starts)} entries but input_lens {len(ins)}")
    done, num_failed, num_no_token = completed_requests(obj, ins, outs, ttfts, itls, path)
    rows, gaps = [], []
    for i, prompt, out, ttft, own in done:
        e2e = number(lats[i], "latencies", i, path)
        start = number(starts[i], "start_times", i, path) if starts is not None else np.nan
        rows.append((start, prompt, out, ttft, e2e))
        gaps.extend(own)
    if not rows:
        raise ValueError(f"{path}: no completed request ({num_failed} failed)")
    notes = left_out_notes(num_failed, num_no_token)
    if starts is None:
        notes.append("the file has no start_times (older vLLM): send times are not known")
    reported = {k: float(obj[k]) for k in REPORTED_KEYS if isinstance(obj.get(k), int | float)}
    return build_run("vllm", obj, path, rows, gaps, num_failed + num_no_token, notes, reported)
