"""Decode steps replayed as CUDA graphs run at a padded batch size.

An engine captures its decode step once per batch size of a fixed list (the live engine's
`LIVE_ENGINE_BUCKETS`; SGLang's `cuda_graph_bs`, vLLM's `cudagraph_capture_sizes`) and
replays the smallest captured size that holds the batch: the GEMMs, norms and lm_head of a
33-request step run 48 rows (padded rows attend to a scratch page, so attention stays at the
real requests). A profile that names its engine's sizes (`exec.decode_graph_buckets`) prices a
decode-only step's row-proportional kernels at the padded size (`ProfileLatency`); without
them it prices the exact rows (an engine with a graph per batch size).

Measured on the H200 (results/live-h200/README.md, session S4): in the live chunked-prefill
run on splitwise at 19 req/s, decode steps of 32 requests took 6.19 ms and of 33 requests
6.92 ms (median): the step to bucket 48 (the GEMM path chosen for 48 rows).
"""

from __future__ import annotations

from collections.abc import Sequence

# The live engine's decode-graph batch sizes (bulletsim/live/gpu/graphs.py replays these;
# live.json records them as executor.decode_graph_buckets). Larger batches run eager.
LIVE_ENGINE_BUCKETS: tuple[int, ...] = (8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
# Bounds of a capture-size list: engines capture up to a few thousand rows (vLLM's default
# largest size 512, SGLang's cuda_graph_max_bs up to 1024 on large GPUs): anything past these
# is a corrupt file, not an engine.
MAX_BUCKET = 65536
MAX_BUCKETS = 1024


def check_buckets(value: object, where: str) -> tuple[int, ...]:
    """`value` as a tuple of strictly increasing positive ints (empty: no padding), at most
    `MAX_BUCKETS` of them, each at most `MAX_BUCKET`. ValueError (one line naming `where`)
    for anything else."""
    if not isinstance(value, (list, tuple)) or any(
        isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in value
    ):
        raise ValueError(f"{where} must be a list of positive integers (batch sizes), "
                         f"got {value!r}")  # fmt: skip
    out = tuple(int(b) for b in value)
    if len(out) > MAX_BUCKETS or any(b > MAX_BUCKET for b in out):
        raise ValueError(f"{where}: at most {MAX_BUCKETS} sizes, each at most {MAX_BUCKET} rows "
                         f"(got {len(out)} sizes, largest {max(out)})")  # fmt: skip
    if any(a >= b for a, b in zip(out, out[1:], strict=False)):
        raise ValueError(f"{where} must be strictly increasing, got {list(out)}")
    return out


def padded_rows(rows: int, buckets: Sequence[int]) -> int:
    """Rows a decode graph of `rows` requests runs: the smallest bucket >= rows; `rows` itself
    when `buckets` is empty or rows exceed the largest (such a step runs eager)."""
    for b in buckets:
        if b >= rows:
            return b
    return rows
