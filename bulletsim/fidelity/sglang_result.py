"""Reader for `python -m sglang.bench_serving --output-file F --output-details` JSONL.

SGLang appends one JSON object per run to the output file. Per-request lists, in request
order and present only with `--output-details`: `input_lens` (prompt tokens), `output_lens`
(output tokens), `ttfts` (s; 0 for a failed request), `itls` (list of s per request),
`generated_texts`, `errors` ("" when the request succeeded). There are no per-request send
times or E2E latencies: E2E is derived as TTFT + the sum of the request's ITLs (the time of
its last streamed token). Run-level: `duration` (s), `request_rate` (req/s, Infinity when
unlimited), `max_concurrency` (null = unlimited), summary figures such as `mean_ttft_ms`,
`median_ttft_ms`, `p99_ttft_ms`, `mean_e2e_latency_ms`.
"""

from __future__ import annotations

import math
from pathlib import Path

from bulletsim.fidelity.measured import (
    MeasuredRun,
    build_run,
    completed_requests,
    left_out_notes,
    per_request_lists,
)

_HINT = "re-run `python -m sglang.bench_serving` with --output-details"
REPORTED_KEYS = ("mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "mean_itl_ms",
                 "mean_e2e_latency_ms", "request_throughput", "output_throughput")  # fmt: skip


def read_sglang_result(obj: dict, path: Path) -> MeasuredRun:
    """The completed requests of one SGLang result object (see the module docstring)."""
    keys = ("input_lens", "output_lens", "ttfts", "itls")
    ins, outs, ttfts, itls = per_request_lists(obj, keys, path, _HINT)
    done, num_failed, num_no_token = completed_requests(obj, ins, outs, ttfts, itls, path)
    rows = [
        (math.nan, prompt, out, ttft, ttft + math.fsum(own)) for _, prompt, out, ttft, own in done
    ]
    gaps = [g for *_, own in done for g in own]
    notes = ["SGLang saves no per-request E2E: derived as TTFT + sum of the request's ITLs",
             "SGLang saves no send times", *left_out_notes(num_failed, num_no_token)]  # fmt: skip
    reported = {k: float(obj[k]) for k in REPORTED_KEYS if isinstance(obj.get(k), int | float)}
    return build_run("sglang", obj, path, rows, gaps, num_failed + num_no_token, notes, reported)
