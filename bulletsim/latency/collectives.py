"""Tensor-parallel all-reduce time: measured NCCL tables, the alpha-beta ring model fitted on
them, and its transfer to other group sizes and GPUs (which is *derived*, and says so).

Ring all-reduce of S bytes over n GPUs (NCCL's ring algorithm; NCCL's performance notes define
bus bandwidth from the same factor): 2(n-1) steps, each moving S/n bytes over one link, so

    t(n, S) = alpha_n + 2(n-1)/n * S / B,       alpha_n = (n-1) * alpha_2

where B is the bus bandwidth one GPU sustains on its links and alpha_2 = 2 step latencies is
the latency measured on 2 GPUs (t(2, S) = alpha_2 + S / B). On NVSwitch hosts (HGX A100 /
H100 / H200) every GPU keeps its own NVLink bandwidth whatever n is, so B carries over; the
latency grows with the step count. A group of n GPUs is then priced from the 2-GPU table:

    t_n(S, sms) = t_2,measured(S, sms) * model(n, S) / model(2, S)

(the same ratio transfer as `calibrate/derive.py`). Another GPU scales B by the datasheet
NVLink ratio (`GPUSpec.interconnect_bytes_s`) and keeps alpha. The `sms` axis is the SM count
of the green-context partition that launched NCCL's kernel (its CTAs run inside it).

A profile's `collectives.allreduce` section (`section_for`) holds: `kind` (measured |
derived), `tp`, `bytes` and `sms` axes, `time_s[bytes][sms]`, the `alpha_beta` fit and a
`source` line. `AllReduceTable` evaluates it (log-log interpolation, the model outside).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bulletsim.latency.log_grid import LogGrid
from bulletsim.latency.profile_format import validate_collectives


@dataclass(frozen=True, slots=True)
class AlphaBeta:
    """Ring all-reduce model: `alpha2_s` latency on 2 GPUs, `bus_bw_bytes_s` per GPU."""

    alpha2_s: float
    bus_bw_bytes_s: float

    def time_s(self, nbytes: float, n: int) -> float:
        """Seconds of one all-reduce of `nbytes` over `n` GPUs (n >= 2)."""
        if n < 2:
            raise ValueError(f"an all-reduce needs a group of >= 2 GPUs, got {n}")
        return (n - 1) * self.alpha2_s + 2.0 * (n - 1) / n * nbytes / self.bus_bw_bytes_s

    def to_dict(self) -> dict:
        return {"alpha2_s": self.alpha2_s, "bus_bw_bytes_s": self.bus_bw_bytes_s}


def fit_alpha_beta(nbytes, seconds, n: int = 2) -> tuple[AlphaBeta, dict]:
    """Least squares in *relative* error of t = alpha_n + f * S / B over measured points of a
    group of `n` (f = 2(n-1)/n), both terms non-negative. Returns the model (with alpha_n
    turned back into alpha_2) and its per-point errors (median / max % and each point's)."""
    from scipy.optimize import nnls

    s = np.asarray(nbytes, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if len(s) < 2 or np.any(t <= 0) or np.any(s <= 0):
        raise ValueError("alpha-beta fit needs >= 2 points with positive bytes and seconds")
    f = 2.0 * (n - 1) / n
    a = np.stack([1.0 / t, f * s / t], axis=1)  # (alpha_n, 1/B) . row = 1
    (alpha_n, inv_b), _ = nnls(a, np.ones_like(t))
    if inv_b <= 0:
        raise ValueError("alpha-beta fit found no bandwidth term (all points latency-bound)")
    model = AlphaBeta(float(alpha_n) / (n - 1), 1.0 / float(inv_b))
    pred = np.array([model.time_s(x, n) for x in s])
    err = pred / t - 1.0
    return model, {
        "median_pct": round(100 * float(np.median(np.abs(err))), 2),
        "max_pct": round(100 * float(np.max(np.abs(err))), 2),
        "points_pct": [round(100 * float(e), 2) for e in err],
    }


def section_for(
    table: dict, tp: int, interconnect_ratio: float = 1.0, gpu_note: str | None = None
) -> dict:
    """The `collectives.allreduce` section of a tp-`tp` profile from a measured 2-GPU table
    (`table`: `bytes`, `sms`, `time_s`, `alpha_beta`, `source`, `measured_gpus`).

    tp equal to the measured group size and `interconnect_ratio` 1 keep the measurement
    (`kind: measured`); anything else is the ring transfer of the module docstring
    (`kind: derived`, with the formula and the ratio stored)."""
    n0 = int(table["measured_gpus"])
    ab = AlphaBeta(**table["alpha_beta"])
    target = AlphaBeta(ab.alpha2_s, ab.bus_bw_bytes_s * interconnect_ratio)
    derived = tp != n0 or interconnect_ratio != 1.0
    times = [
        [t if not derived else t * target.time_s(b, tp) / ab.time_s(b, n0) for t in row]
        for b, row in zip(table["bytes"], table["time_s"], strict=True)
    ]
    out = {
        "kind": "derived" if derived else "measured",
        "tp": tp,
        "bytes": list(table["bytes"]),
        "sms": list(table["sms"]),
        "time_s": times,
        "alpha_beta": target.to_dict(),
        "source": table["source"],
        "measured_gpus": n0,
    }
    if derived:
        out["transfer"] = (
            f"t_{tp}(S, sms) = t_{n0},measured(S, sms) * AB({tp}, S) / AB({n0}, S); ring "
            "AB(n, S) = (n-1) alpha_2 + 2(n-1)/n S / B"
        )
        if interconnect_ratio != 1.0:
            out["transfer"] += f"; B x interconnect ratio {interconnect_ratio:.4g}" + (
                f" ({gpu_note})" if gpu_note else ""
            )
    return out


def rescale_section(
    sec: dict, interconnect_ratio: float, gpu_note: str, num_sms: tuple[int, int] | None = None
) -> dict:
    """`sec` moved to another GPU whose link bandwidth is `interconnect_ratio` times this
    one's (alpha kept): t' = t * AB'(tp, S) / AB(tp, S). Always `kind: derived`. With
    `num_sms` = (source SMs, target SMs) the SM axis keeps each column's share of the GPU."""
    tp = int(sec["tp"])
    ab = AlphaBeta(**sec["alpha_beta"])
    target = AlphaBeta(ab.alpha2_s, ab.bus_bw_bytes_s * interconnect_ratio)
    times = [
        [t * target.time_s(b, tp) / ab.time_s(b, tp) for t in row]
        for b, row in zip(sec["bytes"], sec["time_s"], strict=True)
    ]
    step = f"then B x {interconnect_ratio:.4g} ({gpu_note}), alpha kept"
    sms = list(sec["sms"])
    if num_sms is not None:
        src, dst = num_sms
        sms = [max(1, round(n * dst / src)) for n in sms]
        if len(set(sms)) != len(sms):
            raise ValueError(f"SM axis {sec['sms']} collapses on a {dst}-SM GPU")
        step += f"; SM axis x {dst}/{src} (same share of the GPU)"
    prior = sec.get("transfer", f"measured on {sec.get('measured_gpus', tp)} GPUs")
    return {
        **sec,
        "kind": "derived",
        "sms": sms,
        "time_s": times,
        "alpha_beta": target.to_dict(),
        "transfer": f"{prior}; {step}",
    }


class AllReduceTable:
    """Seconds of one all-reduce of a tp group from a profile's section: the measured (or
    derived) table inside its range, the alpha-beta model scaled from the nearest edge
    outside it; SM counts below / above the table take its edge column."""

    def __init__(self, sec: dict) -> None:
        validate_collectives(sec)
        self.kind, self.tp = sec["kind"], int(sec["tp"])
        self.model = AlphaBeta(**sec["alpha_beta"])
        self._grid = LogGrid([sec["bytes"], sec["sms"]], sec["time_s"])
        self._memo: dict[tuple[int, int], float] = {}

    def time_s(self, nbytes: float, num_sms: int) -> float:
        key = (int(nbytes), num_sms)
        t = self._memo.get(key)
        if t is None:
            inside = self._grid.clamp((nbytes, num_sms))
            t = self._grid(*inside)
            if inside[0] != nbytes:
                t *= self.model.time_s(nbytes, self.tp) / self.model.time_s(inside[0], self.tp)
            if len(self._memo) > 100_000:
                self._memo.clear()
            self._memo[key] = t
        return t


def busbw_gb_s(nbytes: float, seconds: float, n: int) -> float:
    """NCCL's bus bandwidth of an all-reduce (GB/s): S / t * 2(n-1)/n."""
    return nbytes / seconds * 2.0 * (n - 1) / n / 1e9 if seconds > 0 else math.inf
