"""Synthetic workloads as benchmark clients make them: `random` lengths and `fixed` lengths.

`random` (vLLM `bench serve --dataset-name random`, SGLang `bench_serving --dataset-name
random`): prompt and output lengths drawn uniformly around `input_len` / `output_len` with
a range ratio r, by either tool's rule (`range_convention`):
- vllm (vllm/benchmarks/datasets/random.py): integers in [floor(L (1 - r)), ceil(L (1 + r))],
  r in [0, 1); r = 0 gives exactly L;
- sglang (python/sglang/bench_serving.py sample_random_requests): integers in
  [max(int(L r), 1), L], r in [0, 1]; r = 1 gives exactly L, the default r = 0 spans 1..L.
Output lengths are at least 1 under both. `fixed` is every request at exactly `input_len` /
`output_len`. Lengths count tokens as the server sees them (vLLM subtracts the tokenizer's
special tokens from the prompt before drawing; that is left to the user's `input_len`).
"""

from __future__ import annotations

import math

import numpy as np

RANGE_CONVENTIONS = ("vllm", "sglang")


def length_bounds(length: int, ratio: float, convention: str) -> tuple[int, int]:
    """Inclusive [low, high] of one length under `convention`; ValueError for a bad ratio."""
    if convention == "vllm":
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"range_ratio: must be in [0, 1) for the vllm convention, got {ratio}")
        return max(math.floor(length * (1 - ratio)), 1), math.ceil(length * (1 + ratio))
    if convention == "sglang":
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(
                f"range_ratio: must be in [0, 1] for the sglang convention, got {ratio}"
            )
        return max(int(length * ratio), 1), length
    raise ValueError(
        f"range_convention: unknown {convention!r}; valid: {', '.join(RANGE_CONVENTIONS)}"
    )


def random_lengths(
    rng: np.random.Generator,
    num: int,
    input_len: int,
    output_len: int,
    ratio: float,
    convention: str,
) -> tuple[np.ndarray, np.ndarray]:
    """`num` (prompt, output) token counts, int64, drawn as the module docstring says."""
    p_lo, p_hi = length_bounds(input_len, ratio, convention)
    o_lo, o_hi = length_bounds(output_len, ratio, convention)
    prompts = rng.integers(p_lo, p_hi + 1, size=num, dtype=np.int64)
    outputs = rng.integers(o_lo, o_hi + 1, size=num, dtype=np.int64)
    return prompts, outputs
