"""Log-log grids of measured kernel times: the reader (`LogGrid`) and the writer (`build_grid`).

`LogGrid` interpolates log(seconds) multilinearly over log-scaled axes (the last one SMs):
piecewise power laws, exact for t ~ tokens^a * sms^-b between grid points, and measured
points (steps, non-monotonic ones included) are reproduced exactly. `build_grid` turns
training samples (plain dict rows, as `calibrate.fit` reads them) into the profile's `grid`
section: medians on regular axes, None where a cell was not measured (`fill` fills those).
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable

from bulletsim.latency.profile_format import LINEAR_OPS


def bracket(axis: list[float], x: float) -> tuple[int, int, float]:
    """Indices (i, j) around x on an increasing axis and the weight of j (x within range)."""
    if x <= axis[0]:
        return 0, 0, 0.0
    if x >= axis[-1]:
        last = len(axis) - 1
        return last, last, 0.0
    j = bisect_right(axis, x)
    i = j - 1
    return i, j, (x - axis[i]) / (axis[j] - axis[i])


class LogGrid:
    """Multilinear interpolation of log(seconds) over log-scaled axes (the last one is SMs).

    Piecewise power laws: exact for t ~ tokens^a * sms^-b between grid points, and measured
    points (steps, non-monotonic ones included) are reproduced exactly.
    """

    __slots__ = ("axes", "lo", "hi", "v")

    def __init__(self, axes: list[list[float]], seconds):
        self.axes = [[math.log(a) for a in ax] for ax in axes]
        self.lo = [ax[0] for ax in axes]
        self.hi = [ax[-1] for ax in axes]
        self.v = _log_nested(seconds)

    def clamp(self, coords: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(
            min(max(c, lo), hi) for c, lo, hi in zip(coords, self.lo, self.hi, strict=True)
        )

    def __call__(self, *coords: float) -> float:
        """Seconds at `coords`, which must lie within the axes (see `clamp`)."""
        brackets = [bracket(ax, math.log(c)) for ax, c in zip(self.axes, coords, strict=True)]
        return math.exp(interp(self.v, brackets))


def _log_nested(x):
    return [_log_nested(e) for e in x] if isinstance(x, list) else math.log(x)


def interp(v, brackets) -> float:
    i, j, w = brackets[0]
    if len(brackets) == 1:
        return v[i] if w == 0.0 else v[i] + (v[j] - v[i]) * w
    lo = interp(v[i], brackets[1:])
    return lo if w == 0.0 else lo + (interp(v[j], brackets[1:]) - lo) * w


def fill(rows: list[list[float | None]]) -> list[list[float]]:
    """Fill None cells with the nearest filled cell of the same column (then row); 1.0 if none."""
    out = [list(r) for r in rows]
    n_rows, n_cols = len(out), len(out[0]) if out else 0
    for c in range(n_cols):
        known = [i for i in range(n_rows) if out[i][c] is not None]
        for i in range(n_rows):
            if out[i][c] is None and known:
                out[i][c] = out[min(known, key=lambda k: abs(k - i))][c]
    for i in range(n_rows):
        known = [c for c in range(n_cols) if out[i][c] is not None]
        for c in range(n_cols):
            if out[i][c] is None:
                out[i][c] = out[i][min(known, key=lambda k: abs(k - c))] if known else 1.0
    return out


def _num(v):
    f = float(v)
    return int(f) if f.is_integer() else f


def _medians(rows: Iterable[dict], keys: tuple[str, ...]) -> dict[tuple, float]:
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        groups[tuple(_num(r[k]) for k in keys)].append(float(r["time_s"]))
    return {k: statistics.median(v) for k, v in groups.items()}


def _table(rows: list[dict], axis_col: str, sms: list[int]) -> tuple[list, list]:
    med = _medians(rows, (axis_col, "num_sms"))
    axis = sorted({k[0] for k in med})
    return axis, [[med.get((a, n)) for n in sms] for a in axis]


def build_grid(train: Iterable[dict], sms: list[int]) -> dict:
    """The profile's `grid` section from training op samples (rows with `op`, `num_sms`,
    `time_s` and the op's shape columns): median seconds per cell, None where unmeasured."""
    rows = list(train)
    by_op: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_op[r["op"]].append(r)
    tokens = sorted({int(r["tokens"]) for op in LINEAR_OPS for r in by_op[op]})
    ops = {}
    for op in LINEAR_OPS:
        med = _medians(by_op[op], ("tokens", "num_sms"))
        ops[op] = [[med.get((t, n)) for n in sms] for t in tokens]
    fn_axis, fn_rows = _table(by_op["final_norm"], "tokens", sms)
    lm_axis, lm_rows = _table(by_op["lm_head"], "logits_tokens", sms)
    pf_axis, pf_rows = _table(by_op["attn_prefill"], "pairs", sms)
    dec = by_op["attn_decode"]
    med = _medians(dec, ("batch", "ctx", "num_sms"))
    batches = sorted({int(r["batch"]) for r in dec})
    ctxs = sorted({int(r["ctx"]) for r in dec})
    planes = [[[med.get((b, c, n)) for n in sms] for c in ctxs] for b in batches]
    return {
        "sms": list(sms),
        "linear": {"tokens": tokens, "ops": ops},
        "final_norm": {"tokens": [int(v) for v in fn_axis], "time_s": fn_rows},
        "lm_head": {"rows": [int(v) for v in lm_axis], "time_s": lm_rows},
        "attn_prefill": {"pairs": pf_axis, "time_s": pf_rows},
        "attn_decode": {"batch": batches, "ctx": ctxs, "time_s": planes},
    }
