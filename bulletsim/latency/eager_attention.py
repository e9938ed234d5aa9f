"""Prefill attention as an engine's eager batches run it, against the kernel a profile timed.

A calibrated profile prices prefill attention with the fastest ragged kernel it measured over
new tokens only, by causal pairs (on the H200: flashinfer's FA3). The live engine runs its
eager batches (chunked prefill's mixed batches, the prefill lanes' windows) through
flashinfer's paged prefill wrapper with the FA2 kernel, prompt chunks after cached context
included. `benchmarks/eager_attention.py` timed both on the whole H200 (round S4R1,
results/live-h200/eager-attention-S4R1.json): the engine's kernel took 1.3-2.7x the profile's
at the same pairs (median 1.9x; decode rows through it cost what the tensor-core decode
kernel does, 0.99-1.19x, so only prompt tokens are scaled).

A profile whose `exec.eager_prefill_attention` holds such a table (`EagerPrefillAttention`)
multiplies its prefill-attention time by the factor at the batch's mean new tokens and mean
cached (prior) tokens per prompt, bilinear in (log2 new tokens, prior tokens) inside the
measured range and clamped outside it. The factor was measured on the whole GPU and is
assumed for every SM count; mixing decode rows into a chunk's plan cost up to 1.4x the two
apart in the same benchmark, which is not modelled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "live_engine"


class EagerPrefillAttention:
    """Factor table: `new_tokens` (ascending), `prior_tokens` (ascending, from 0), `factor`
    [len(new_tokens)][len(prior_tokens)] (> 0). ValueError (one line) for a malformed one."""

    def __init__(self, sec: dict, where: str = "exec.eager_prefill_attention") -> None:
        try:
            new = [float(x) for x in sec["new_tokens"]]
            prior = [float(x) for x in sec["prior_tokens"]]
            fac = [[float(x) for x in row] for row in sec["factor"]]
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{where} must hold new_tokens, prior_tokens and a factor table of numbers"
            ) from None
        if not new or not prior or any(a >= b for a, b in zip(new, new[1:], strict=False)):
            raise ValueError(f"{where}.new_tokens must be strictly increasing, non-empty")
        if any(a >= b for a, b in zip(prior, prior[1:], strict=False)) or new[0] <= 0:
            raise ValueError(f"{where}: prior_tokens strictly increasing, new_tokens > 0")
        if len(fac) != len(new) or any(len(r) != len(prior) for r in fac):
            raise ValueError(f"{where}.factor must be new_tokens x prior_tokens")
        if any(not (0 < f < 100) for r in fac for f in r):
            raise ValueError(f"{where}.factor values must be in (0, 100)")
        self.new, self.prior, self.fac = [math.log2(x) for x in new], prior, fac

    def factor(self, new_tokens: float, prior_tokens: float) -> float:
        """The engine/profile time ratio for prompts of `new_tokens` after `prior_tokens`
        cached tokens (means per prompt)."""
        i, wi = _bracket(self.new, math.log2(max(new_tokens, 1.0)))
        j, wj = _bracket(self.prior, max(prior_tokens, 0.0))
        f = self.fac
        lo = f[i][j] + (f[i][j + 1] - f[i][j]) * wj if wj else f[i][j]
        if not wi:
            return lo
        hi = f[i + 1][j] + (f[i + 1][j + 1] - f[i + 1][j]) * wj if wj else f[i + 1][j]
        return lo + (hi - lo) * wi


def _bracket(axis: list[float], x: float) -> tuple[int, float]:
    """(i, w): x between axis[i] and axis[i + 1] at weight w; clamped at the ends (w = 0)."""
    if x <= axis[0] or len(axis) == 1:
        return 0, 0.0
    if x >= axis[-1]:
        return len(axis) - 1, 0.0
    i = max(k for k in range(len(axis) - 1) if axis[k] <= x)
    return i, (x - axis[i]) / (axis[i + 1] - axis[i])


def table_from_bench(bench: dict, source: str) -> dict:
    """The `exec.eager_prefill_attention` section from `benchmarks/eager_attention.py`'s
    JSON: factor = the engine's paged FA2 ms / the profile kernel's ms at the same causal
    pairs (ragged FA3, `ratio_engine_to_profile`)."""
    rows = bench["prefill"]
    new = sorted({int(r["new"]) for r in rows})
    prior = sorted({int(r["prior"]) for r in rows})
    at = {(int(r["new"]), int(r["prior"])): float(r["ratio_engine_to_profile"]) for r in rows}
    missing = [(n, p) for n in new for p in prior if (n, p) not in at]
    if missing:
        raise ValueError(f"benchmark lacks (new, prior) cells {missing}")
    return {
        "kernel": "flashinfer paged prefill wrapper, FA2, causal (the live engine's eager batches)",
        "against": "the profile's prefill kernel at the same causal pairs (ragged FA3 on the H200)",
        "new_tokens": new,
        "prior_tokens": prior,
        "factor": [[round(at[(n, p)], 4) for p in prior] for n in new],
        "decode_rows_factor_median": round(
            sorted(r["ratio"] for r in bench["decode"])[len(bench["decode"]) // 2], 4
        ),
        "device": bench.get("device"),
        "flashinfer": bench.get("flashinfer"),
        "source": source,
    }


def live_engine_table(gpu: str) -> dict | None:
    """The committed table of the live engine's eager prefill attention on `gpu` (e.g.
    "h200"), or None where none was measured."""
    path = DATA / f"{gpu}__eager_prefill_attention.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())
